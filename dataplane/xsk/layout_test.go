package xsk

import (
	"testing"
	"unsafe"
)

// TestSocketHalvesApart: what the RX goroutine writes (fill and RX rings'
// cached indexes) and what the TX goroutine writes (TX and completion
// rings') are at least a cache line apart, so the two never share one.
func TestSocketHalvesApart(t *testing.T) {
	var s Socket
	rxStart, rxEnd := unsafe.Offsetof(s.fill), unsafe.Offsetof(s.wakeBuf)+unsafe.Sizeof(s.wakeBuf)
	txStart, txEnd := unsafe.Offsetof(s.tx), unsafe.Offsetof(s.comp)+unsafe.Sizeof(s.comp)
	if rxStart < unsafe.Offsetof(s.maps)+unsafe.Sizeof(s.maps)+64 {
		t.Errorf("RX half starts %d bytes after the shared fields", rxStart-unsafe.Offsetof(s.maps)-unsafe.Sizeof(s.maps))
	}
	if txStart < rxEnd+64 {
		t.Errorf("TX half starts %d bytes after the RX half ends, want >= 64", txStart-rxEnd)
	}
	if unsafe.Sizeof(s) < txEnd+64 {
		t.Errorf("TX half ends %d bytes before the end of Socket, want >= 64", unsafe.Sizeof(s)-txEnd)
	}
}
