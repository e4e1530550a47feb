package lab

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
)

var sink []*[64]byte

//go:noinline
func allocInHandler(n int) {
	for range n {
		sink = append(sink[:0], new([64]byte))
	}
}

//go:noinline
func allocElsewhere(n int) {
	for range n {
		sink = append(sink[:0], new([64]byte))
	}
}

func writeAllocs(t *testing.T, file string) string {
	t.Helper()
	runtime.GC() // the profile is published up to two collections late
	runtime.GC()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestObjectsBetween counts exactly what allocated between two profiles
// outside the ignored function, as the steady-load run does with the
// status socket's handler.
func TestObjectsBetween(t *testing.T) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	sink = make([]*[64]byte, 0, 1)
	dir := t.TempDir()
	base := writeAllocs(t, filepath.Join(dir, "base.pb.gz"))
	allocInHandler(300)
	allocElsewhere(70)
	end := writeAllocs(t, filepath.Join(dir, "end.pb.gz"))
	n, err := ObjectsBetween(base, end, "lab.allocInHandler|lab.writeAllocs")
	if err != nil {
		t.Fatal(err)
	}
	// 70, and at most a few the runtime makes with stacks that name no
	// caller (seen: one or two while other tests run).
	if n < 70 || n > 74 {
		t.Errorf("%d objects outside the handler, want 70", n)
	}
	if n, err := ObjectsBetween(base, base, "nothing"); err != nil || n != 0 {
		t.Errorf("a profile less itself: %d, %v", n, err)
	}
	if _, err := ObjectsBetween(base, filepath.Join(dir, "missing"), "x"); err == nil {
		t.Error("a missing profile gave no error")
	}
}
