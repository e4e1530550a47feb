package control

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/dataplane"
)

// TestReadRuntime checks what the status reports about the process: the
// runtime's counters and the kernel's view of a data thread.
func TestReadRuntime(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	runtime.GC()
	tid := unix.Gettid()
	r := readRuntime([]dataplane.Thread{{Name: "encap", TID: tid}})
	if r.GCCycles == 0 || r.Allocs == 0 || r.AllocBytes == 0 || r.HeapGoalBytes == 0 || r.HeapBytes == 0 {
		t.Errorf("runtime counters missing: %+v", r)
	}
	if r.RSSBytes == 0 || r.RSSAnonBytes == 0 || r.FDs == 0 || r.OSThreads == 0 || r.GoHeldBytes == 0 {
		t.Errorf("kernel's view missing: %+v", r)
	}
	if len(r.Threads) != 2 || r.Threads[0].Name != "main" || r.Threads[1].TID != tid {
		t.Fatalf("threads %+v, want main and encap (%d)", r.Threads, tid)
	}
	if c := r.Threads[1].LastCore; c < 0 || c >= runtime.NumCPU() || len(r.Threads[1].Allowed) == 0 {
		t.Errorf("encap thread: last core %d, allowed %v", c, r.Threads[1].Allowed)
	}
	if lastCore(0) != -1 || lastCore(1<<30) != -1 {
		t.Error("lastCore of no thread is not -1")
	}
}
