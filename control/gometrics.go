package control

import (
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane"
)

// runtimeSamples are read without stopping the world.
var (
	runtimeMu      sync.Mutex
	runtimeSamples = []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/gc/heap/allocs:objects"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/goal:bytes"},
	}
)

// readRuntime reports the process as the Go runtime and the kernel see it:
// GOMAXPROCS, where the data goroutines' threads may run and last ran
// (from the kernel, not from the configuration), garbage collections,
// heap, goroutines, resident memory and open files.
func readRuntime(threads []dataplane.Thread) client.Runtime {
	r := client.Runtime{GOMAXPROCS: runtime.GOMAXPROCS(0), FDs: openFiles()}
	r.RSSBytes, r.RSSAnonBytes, r.RSSFileBytes = rss()
	runtimeMu.Lock()
	metrics.Read(runtimeSamples)
	var v [8]uint64
	for i, s := range runtimeSamples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	runtimeMu.Unlock()
	r.GCCycles, r.HeapBytes, r.Goroutines, r.Allocs = v[0], v[1], int(v[2]), v[3]
	r.GoHeldBytes = v[4] - v[5]
	r.AllocBytes, r.HeapGoalBytes = v[6], v[7]

	data := map[int]bool{}
	for _, t := range threads {
		data[t.TID] = true
		r.Threads = append(r.Threads, client.Thread{Name: t.Name, TID: t.TID, Allowed: allowedCores(t.TID), LastCore: lastCore(t.TID)})
	}
	// Every other thread is the main goroutine's, the runtime's or a
	// statistics socket's: they share the main core when one is set.
	union := map[int]bool{}
	if tasks, err := os.ReadDir("/proc/self/task"); err == nil {
		r.OSThreads = len(tasks)
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil || data[tid] {
				continue
			}
			for _, c := range allowedCores(tid) {
				union[c] = true
			}
		}
	}
	main := client.Thread{Name: "main", LastCore: -1}
	for c := 0; c < 4096 && len(main.Allowed) < len(union); c++ {
		if union[c] {
			main.Allowed = append(main.Allowed, c)
		}
	}
	r.Threads = append([]client.Thread{main}, r.Threads...)
	return r
}

// allowedCores returns the cores thread tid may run on.
func allowedCores(tid int) []int {
	var set unix.CPUSet
	if tid <= 0 || unix.SchedGetaffinity(tid, &set) != nil {
		return nil
	}
	var cores []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cores = append(cores, c)
		}
	}
	return cores
}

// lastCore returns the core thread tid last ran on (field 39 of its
// /proc stat line), or -1.
func lastCore(tid int) int {
	if tid <= 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:]) // fields 3 onwards
	if len(f) < 37 {
		return -1
	}
	c, err := strconv.Atoi(f[36])
	if err != nil {
		return -1
	}
	return c
}

// rss returns the process's resident memory in bytes: all of it, its
// anonymous pages and its file pages (/proc/self/status).
func rss() (total, anon, file uint64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, _ := strconv.ParseUint(f[0], 10, 64)
		switch k {
		case "VmRSS":
			total = n << 10
		case "RssAnon":
			anon = n << 10
		case "RssFile":
			file = n << 10
		}
	}
	return total, anon, file
}

// openFiles returns the number of the process's open file descriptors.
func openFiles() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(fds)
}
