package wg

import (
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.zx2c4.com/wireguard/device"
)

// msgBuffer is one of wireguard-go's message buffers.
type msgBuffer = [device.MaxMessageSize]byte

// maxFree is how many idle message buffers a recycler keeps (64 KiB each:
// 256 MiB); more are left to the garbage collector.
const maxFree = 4096

// recycler keeps wireguard-go's 64 KiB message buffers once they are made.
//
// wireguard-go pools them in a sync.Pool, which lets go of what it holds
// at every other GC; under load they are made again at once. A new buffer
// gets a span Go has freed and is zeroed whole, where the first buffers'
// untouched pages never became resident: the process's resident memory
// climbs for hours toward all Go holds, +24–30 MB/h in the soak of
// bench/results/soak-20261206-124601.md.
//
// The recycler is the sync.Pool's New. A buffer carries a finalizer that
// puts it on the free list when the sync.Pool has let go of it, and New
// takes from that list before it makes one. So buffers are made while the
// load grows, and then the same ones serve. How many buffers are out is
// still wireguard-go's affair (unbounded on Linux; a bound deadlocked, see
// NewDevice).
type recycler struct {
	mu   sync.Mutex
	free []*msgBuffer
	keep int              // most idle buffers kept: maxFree
	fin  func(*msgBuffer) // recycle, made once
	made atomic.Uint64
}

func newRecycler() *recycler {
	r := &recycler{keep: maxFree}
	r.fin = r.recycle
	return r
}

// get is the pool's New: a recycled buffer, or a new one.
func (r *recycler) get() any {
	var b *msgBuffer
	r.mu.Lock()
	if n := len(r.free); n > 0 {
		b = r.free[n-1]
		r.free[n-1] = nil
		r.free = r.free[:n-1]
	}
	r.mu.Unlock()
	if b == nil {
		b = new(msgBuffer)
		r.made.Add(1)
	}
	runtime.SetFinalizer(b, r.fin)
	return b
}

// recycle runs on the finalizer goroutine when nothing holds b any more.
// A finalizer runs once, so b is now an ordinary object again.
func (r *recycler) recycle(b *msgBuffer) {
	r.mu.Lock()
	if len(r.free) < r.keep {
		r.free = append(r.free, b)
	}
	r.mu.Unlock()
}

// install makes r the New of dev's message buffer pool. It must run before
// anything takes a buffer from dev. It changes nothing and returns false
// when wireguard-go's fields are not where this version keeps them
// (dev.pool.messageBuffers, a *device.WaitPool, whose pool is a
// sync.Pool); TestRecycler fails then, so an upgrade cannot lose it
// silently.
func (r *recycler) install(dev *device.Device) bool {
	v := reflect.ValueOf(dev).Elem().FieldByName("pool")
	if v.Kind() != reflect.Struct {
		return false
	}
	v = v.FieldByName("messageBuffers")
	if !v.IsValid() || v.Type() != reflect.TypeFor[*device.WaitPool]() {
		return false
	}
	wp := *(**device.WaitPool)(unsafe.Pointer(v.UnsafeAddr()))
	if wp == nil {
		return false
	}
	p := reflect.ValueOf(wp).Elem().FieldByName("pool")
	if !p.IsValid() || p.Type() != reflect.TypeFor[sync.Pool]() {
		return false
	}
	(*sync.Pool)(unsafe.Pointer(p.UnsafeAddr())).New = r.get
	return true
}
