package wg

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// collect runs the GC until the recycler holds want idle buffers.
func collect(t *testing.T, r *recycler, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		r.mu.Lock()
		n := len(r.free)
		r.mu.Unlock()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d buffers came back, want %d", n, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRecycler runs buffers through a sync.Pool, as wireguard-go does, and
// lets the GC empty it: the buffers come back, and no new ones are made.
func TestRecycler(t *testing.T) {
	r := newRecycler()
	pool := &sync.Pool{New: r.get}
	held := make([]*msgBuffer, 50)
	for i := range held {
		held[i] = pool.Get().(*msgBuffer)
	}
	for _, b := range held {
		pool.Put(b)
	}
	clear(held)
	collect(t, r, 50) // the pool let go of them (two GCs), the finalizers ran
	for i := range held {
		held[i] = pool.Get().(*msgBuffer)
	}
	if got := r.made.Load(); got != 50 {
		t.Fatalf("made %d buffers, want 50", got)
	}
	r.mu.Lock()
	if len(r.free) != 0 {
		t.Errorf("%d buffers left idle, want 0", len(r.free))
	}
	r.mu.Unlock()
	// They went round again: a recycled buffer has its finalizer anew.
	clear(held)
	collect(t, r, 50)
	if got := r.made.Load(); got != 50 {
		t.Fatalf("made %d buffers, want 50", got)
	}
}

// TestRecyclerKeepsAtMost: idle buffers beyond keep are left to the GC.
func TestRecyclerKeepsAtMost(t *testing.T) {
	r := newRecycler()
	r.keep = 3
	var finalized atomic.Int32
	r.fin = func(b *msgBuffer) { r.recycle(b); finalized.Add(1) }
	for range 5 {
		r.get()
	}
	collect(t, r, 3)
	// Three idle need not be all five finalized: one finalized late would
	// be recycled while the gets below take the three (CI saw 6 made).
	for deadline := time.Now().Add(10 * time.Second); finalized.Load() < 5; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 5 buffers finalized", finalized.Load())
		}
		runtime.GC()
	}
	// Held, so that none of these is finalized and recycled meanwhile.
	held := make([]any, 5)
	for i := range held {
		held[i] = r.get()
	}
	if got := r.made.Load(); got != 7 {
		t.Fatalf("made %d buffers, want 7 (3 reused)", got)
	}
	runtime.KeepAlive(held)
}

// TestRecyclerInstalled: a Device's message buffers come from msgBuffers.
// This fails when a wireguard-go upgrade moves the pool.
func TestRecyclerInstalled(t *testing.T) {
	p := newPair(t)
	served := func() uint64 { // buffers msgBuffers has handed out
		msgBuffers.mu.Lock()
		defer msgBuffers.mu.Unlock()
		return msgBuffers.made.Load() - uint64(len(msgBuffers.free))
	}
	for _, d := range []*Device{p.da, p.db} {
		// More than the pool holds idle: some must come from msgBuffers.
		before := served()
		held := make([]*msgBuffer, 1000)
		for i := range held {
			held[i] = d.dev.GetMessageBuffer()
		}
		if served() == before {
			t.Error("no message buffer came from the recycler")
		}
		for _, b := range held {
			d.dev.PutMessageBuffer(b)
		}
	}
}

// TestRecyclerPrealloc: preallocated buffers serve before any is made.
func TestRecyclerPrealloc(t *testing.T) {
	r := newRecycler()
	r.prealloc(10)
	pool := &sync.Pool{New: r.get}
	for range 10 {
		pool.Get()
	}
	if got := r.made.Load(); got != 10 {
		t.Fatalf("made %d, want the 10 preallocated", got)
	}
	pool.Get()
	if got := r.made.Load(); got != 11 {
		t.Fatalf("made %d, want 11", got)
	}
}
