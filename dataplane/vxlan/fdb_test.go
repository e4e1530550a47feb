package vxlan

import (
	"testing"

	"github.com/pwgate/pwgate/dataplane/frame"
)

func mac(i int) frame.MAC {
	return frame.MAC{2, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

func TestFDB(t *testing.T) {
	b := NewBuilder(16)
	b.SetVNIs([]VNI{{ID: 101}, {ID: 102, VLAN: 100}})
	for i := 1; i <= 10000; i++ {
		b.Set(MakeKey(i%2, mac(i)), Entry{VTEP: int32(i % 3)})
	}
	t1 := b.Publish()
	if t1.Len() != 10000 || b.Len() != 10000 {
		t.Fatalf("%d entries published", t1.Len())
	}
	for i := 1; i <= 10000; i++ {
		if e, ok := t1.Lookup(i%2, mac(i)); !ok || e.VTEP != int32(i%3) {
			t.Fatalf("MAC %d: %+v %v", i, e, ok)
		}
	}
	if _, ok := t1.Lookup(1, mac(2)); ok {
		t.Fatal("found a MAC in the wrong VNI")
	}
	if t1.VNIForVLAN(0) != 0 || t1.VNIForVLAN(100) != 1 || t1.VNIForVLAN(7) != -1 || t1.VNIIndex(102) != 1 {
		t.Fatal("VNI indexes")
	}
	// A move rebuilds one shard; the other shards are shared.
	k := MakeKey(1, mac(1))
	b.Set(k, Entry{VTEP: Local, Seen: 3})
	b.Delete(MakeKey(0, mac(2)))
	t2 := b.Publish()
	shared := 0
	for s := range t2.shards {
		if t2.shards[s] == t1.shards[s] {
			shared++
		}
	}
	if shared < Shards-2 {
		t.Fatalf("only %d of %d shards shared after two changes", shared, Shards)
	}
	if e, _ := t2.Lookup(1, mac(1)); e.VTEP != Local || e.Seen != 3 {
		t.Fatalf("moved entry %+v", e)
	}
	if _, ok := t2.Lookup(0, mac(2)); ok || t2.Len() != 9999 {
		t.Fatal("deleted entry still there")
	}
	if e, _ := t1.Lookup(1, mac(1)); e.VTEP != 1 {
		t.Fatal("an old table changed")
	}
	if k.MAC() != mac(1) || k.VNI() != 1 {
		t.Fatal("key round trip")
	}
}

func TestLookupZeroAllocs(t *testing.T) {
	b := NewBuilder(0)
	for i := 1; i < 1000; i++ {
		b.Set(MakeKey(0, mac(i)), Entry{VTEP: 1})
	}
	tab := b.Publish()
	if a := testing.AllocsPerRun(100, func() { tab.Lookup(0, mac(500)); tab.Lookup(0, mac(5000)) }); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

func BenchmarkLookup(b *testing.B) {
	bu := NewBuilder(0)
	for i := 1; i <= 10000; i++ {
		bu.Set(MakeKey(0, mac(i)), Entry{VTEP: 1})
	}
	tab := bu.Publish()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tab.Lookup(0, mac(i%10000+1))
	}
}

func BenchmarkPublishAfterMove(b *testing.B) {
	bu := NewBuilder(0)
	for i := 1; i <= 10000; i++ {
		bu.Set(MakeKey(0, mac(i)), Entry{VTEP: 1})
	}
	bu.Publish()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bu.Set(MakeKey(0, mac(i%10000+1)), Entry{VTEP: int32(i % 2)})
		bu.Publish()
	}
}
