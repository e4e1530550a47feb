package dataplane

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// setAffinity pins thread tid (0: the calling thread) to core.
func setAffinity(tid, core int) error {
	var set unix.CPUSet
	set.Set(core)
	if err := unix.SchedSetaffinity(tid, &set); err != nil {
		return fmt.Errorf("pin thread to core %d: %w", core, err)
	}
	return nil
}

// PinProcess pins every thread the process has now to core. Call it before
// Start: threads the Go runtime creates later for the main goroutine's work
// come from these, while the data goroutines pin their own threads. Threads
// in except (the data goroutines', when called again after Start) are left
// as they are.
func PinProcess(core int, except ...int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil || slices.Contains(except, tid) {
			continue
		}
		if err := setAffinity(tid, core); err != nil {
			return err
		}
	}
	return nil
}

// AvailableCores returns the cores this process may run on.
func AvailableCores() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cores []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cores = append(cores, c)
		}
	}
	return cores, nil
}
