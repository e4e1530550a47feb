package xsk

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Desc is an RX or TX descriptor: a UMEM address and a length.
type Desc = unix.XDPDesc

// ring is the index half of a single-producer single-consumer ring shared
// with the kernel. Indexes are free-running uint32 counters; the cached
// copies spare a shared-memory load per call.
type ring struct {
	producer   *uint32
	consumer   *uint32
	flags      *uint32
	mask       uint32
	size       uint32
	cachedProd uint32
	cachedCons uint32
}

func (r *ring) init(mem []byte, off unix.XDPRingOffset, size uint32) {
	base := unsafe.Pointer(&mem[0])
	r.producer = (*uint32)(unsafe.Add(base, off.Producer))
	r.consumer = (*uint32)(unsafe.Add(base, off.Consumer))
	r.flags = (*uint32)(unsafe.Add(base, off.Flags))
	r.size, r.mask = size, size-1
}

// prodFree returns how many entries the producer may write, reloading the
// consumer index only when the cached one says there is less than want.
func (r *ring) prodFree(want uint32) uint32 {
	free := r.size - (r.cachedProd - r.cachedCons)
	if free < want {
		r.cachedCons = atomic.LoadUint32(r.consumer)
		free = r.size - (r.cachedProd - r.cachedCons)
	}
	return free
}

// consAvail returns how many entries the consumer may read, reloading the
// producer index only when the cached one shows fewer than want.
func (r *ring) consAvail(want uint32) uint32 {
	avail := r.cachedProd - r.cachedCons
	if avail < want {
		r.cachedProd = atomic.LoadUint32(r.producer)
		avail = r.cachedProd - r.cachedCons
	}
	return avail
}

func (r *ring) submit(n uint32) {
	r.cachedProd += n
	atomic.StoreUint32(r.producer, r.cachedProd)
}

func (r *ring) release(n uint32) {
	r.cachedCons += n
	atomic.StoreUint32(r.consumer, r.cachedCons)
}

func (r *ring) needWakeup() bool { return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0 }

// outstanding returns entries produced but not yet consumed by the other side.
func (r *ring) outstanding() uint32 { return r.cachedProd - atomic.LoadUint32(r.consumer) }

// entryRing is a ring with its entries: UMEM addresses (fill and
// completion rings) or descriptors (RX and TX rings).
type entryRing[T uint64 | Desc] struct {
	ring
	entries []T
}

// addrRing is a fill or completion ring.
type addrRing = entryRing[uint64]

// descRing is an RX or TX ring.
type descRing = entryRing[Desc]

// put writes up to len(v) entries and returns how many it wrote.
func (r *entryRing[T]) put(v []T) int {
	n := min(uint32(len(v)), r.prodFree(uint32(len(v))))
	for i := uint32(0); i < n; i++ {
		r.entries[(r.cachedProd+i)&r.mask] = v[i]
	}
	if n > 0 {
		r.submit(n)
	}
	return int(n)
}

// get reads up to len(v) entries and returns how many it read.
func (r *entryRing[T]) get(v []T) int {
	n := min(uint32(len(v)), r.consAvail(uint32(len(v))))
	for i := uint32(0); i < n; i++ {
		v[i] = r.entries[(r.cachedCons+i)&r.mask]
	}
	if n > 0 {
		r.release(n)
	}
	return int(n)
}
