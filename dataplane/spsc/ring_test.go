package spsc

import "testing"

func TestRing(t *testing.T) {
	r := New[uint64](4)
	if r.Push([]uint64{1, 2, 3, 4, 5}) != 4 || r.Push1(6) {
		t.Fatal("ring took more than it holds")
	}
	v := make([]uint64, 3)
	if r.Pop(v) != 3 || v[2] != 3 {
		t.Fatalf("pop %v", v)
	}
	if !r.Push1(7) || !r.Push1(8) || r.Len() != 3 {
		t.Fatal("wrap")
	}
	for _, want := range []uint64{4, 7, 8} {
		if got, ok := r.Pop1(); !ok || got != want {
			t.Fatalf("pop1 %d %v, want %d", got, ok, want)
		}
	}
	if _, ok := r.Pop1(); ok {
		t.Fatal("popped from an empty ring")
	}
}
