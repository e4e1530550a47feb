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

// maxFree is how many idle message buffers a recycler keeps, and how many
// the first Device makes at once (prealloc): 64 KiB each, 256 MiB of heap,
// of which only the page a packet is written to is resident (4 KiB a
// buffer with the XDP bind; the kernel's bind, with UDP GRO, writes up to
// the whole buffer). More are left to the garbage collector.
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
// takes from that list before it makes one. The first Device fills the
// list with maxFree buffers and writes to the first page of each, so that
// the memory packets take is resident from the start rather than as
// bursts reach deeper into the list. How many buffers are out is still
// wireguard-go's affair (unbounded on Linux; a bound deadlocked, see
// NewDevice); beyond maxFree, buffers are made as before.
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

// prealloc makes n buffers onto the free list and writes to the first page
// of each: the page a packet of up to 4 KiB is written to.
func (r *recycler) prealloc(n int) {
	bufs := make([]*msgBuffer, n)
	for i := range bufs {
		bufs[i] = new(msgBuffer)
		bufs[i][0] = 1
	}
	r.mu.Lock()
	r.free = append(r.free, bufs...)
	r.mu.Unlock()
	r.made.Add(uint64(n))
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

// msgBuffers recycles the message buffers of every Device in the process,
// so that a Device made anew (a changed bind) takes over the last one's.
var (
	msgBuffers         = newRecycler()
	msgBuffersPrealloc sync.Once
)

// install gives dev a message buffer pool whose New is r.get, in place of
// the one wireguard-go made (as it makes it: device.NewWaitPool). It must
// run before anything takes a buffer from dev. It changes nothing and
// returns false when the pool is not where this version of wireguard-go
// keeps it (dev.pool.messageBuffers, a *device.WaitPool);
// TestRecyclerInstalled fails then, so an upgrade cannot lose it silently.
func (r *recycler) install(dev *device.Device) bool {
	v := reflect.ValueOf(dev).Elem().FieldByName("pool")
	if v.Kind() != reflect.Struct {
		return false
	}
	v = v.FieldByName("messageBuffers")
	if !v.IsValid() || v.Type() != reflect.TypeFor[*device.WaitPool]() {
		return false
	}
	*(**device.WaitPool)(unsafe.Pointer(v.UnsafeAddr())) = device.NewWaitPool(device.PreallocatedBuffersPerPool, r.get)
	return true
}
