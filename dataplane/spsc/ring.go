// Package spsc is a single-producer, single-consumer queue between two
// goroutines of the data path: the engine and wireguard-go's goroutines,
// the data goroutines and the control goroutine.
package spsc

import "sync/atomic"

// pad keeps what one goroutine writes off another's cache lines.
type pad [64]byte

// Ring is a single-producer, single-consumer queue between two goroutines:
// Push and Push1 are for the producer only, Pop and Pop1 for the consumer
// only, Len for either. Indexes run free; the capacity is a power of two.
// Nothing allocates.
type Ring[T any] struct {
	_    pad
	head atomic.Uint32 // next to pop; written by the consumer
	_    pad
	tail atomic.Uint32 // next to push; written by the producer
	_    pad
	mask uint32
	buf  []T
}

// New returns a ring of size entries, a power of two.
func New[T any](size int) *Ring[T] {
	if size <= 0 || size&(size-1) != 0 {
		panic("spsc: ring size must be a power of two")
	}
	return &Ring[T]{mask: uint32(size - 1), buf: make([]T, size)}
}

// Push appends up to len(v) entries and returns how many.
func (r *Ring[T]) Push(v []T) int {
	tail := r.tail.Load()
	n := min(uint32(len(v)), uint32(len(r.buf))-(tail-r.head.Load()))
	for i := uint32(0); i < n; i++ {
		r.buf[(tail+i)&r.mask] = v[i]
	}
	r.tail.Store(tail + n)
	return int(n)
}

// Push1 appends one entry; false when the ring is full.
func (r *Ring[T]) Push1(v T) bool {
	tail := r.tail.Load()
	if tail-r.head.Load() == uint32(len(r.buf)) {
		return false
	}
	r.buf[tail&r.mask] = v
	r.tail.Store(tail + 1)
	return true
}

// Pop removes up to len(v) entries into v and returns how many.
func (r *Ring[T]) Pop(v []T) int {
	head := r.head.Load()
	n := min(uint32(len(v)), r.tail.Load()-head)
	for i := uint32(0); i < n; i++ {
		v[i] = r.buf[(head+i)&r.mask]
	}
	r.head.Store(head + n)
	return int(n)
}

// Pop1 removes one entry; false when the ring is empty.
func (r *Ring[T]) Pop1() (T, bool) {
	var v T
	head := r.head.Load()
	if head == r.tail.Load() {
		return v, false
	}
	v = r.buf[head&r.mask]
	r.head.Store(head + 1)
	return v, true
}

// Len returns the entries queued (approximate while the other side works).
func (r *Ring[T]) Len() int { return int(r.tail.Load() - r.head.Load()) }
