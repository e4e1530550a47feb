package stats

import (
	"sync"
	"testing"
)

func TestNames(t *testing.T) {
	want := []string{"ul_rx_packets", "ul_rx_bytes", "ul_rx_bpdus", "ul_tx_packets", "ul_tx_bytes", "ul_tx_errors",
		"dl_rx_packets", "dl_rx_bytes", "dl_rx_bpdus", "dl_tx_packets", "dl_tx_bytes", "dl_tx_errors"}
	for i, n := range want {
		if Counter(i).Name() != n {
			t.Errorf("counter %d is %q, the reference's is %q", i, Counter(i).Name(), n)
		}
	}
	seen := map[string]bool{}
	for c := Counter(0); c < NumCounters; c++ {
		n := c.Name()
		if n == "" || seen[n] {
			t.Errorf("counter %d: name %q empty or repeated", c, n)
		}
		seen[n] = true
		if got, ok := Lookup(n); !ok || got != c {
			t.Errorf("Lookup(%q) = %d, %v", n, got, ok)
		}
	}
	if NumCounters.Name() != "unknown" {
		t.Error("out-of-range counter has a name")
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("Lookup found an unknown name")
	}
	if p, r, ok := ULDropLoneSecond.Drop(); !ok || p != "ul" || r != "lone_second" {
		t.Errorf("Drop() = %q %q %v", p, r, ok)
	}
	if _, _, ok := ULRxBPDUs.Drop(); ok {
		t.Error("ul_rx_bpdus is not a drop counter")
	}
	if r, ok := EVPNNotImportedFamily.NotImported(); !ok || r != "family" {
		t.Errorf("NotImported() = %q %v", r, ok)
	}
	if r, ok := ULRxPackets.NotImported(); ok || r != "" {
		t.Errorf("ul_rx_packets: NotImported() = %q %v", r, ok)
	}
	if _, ok := EVPNRoutesNotImported.NotImported(); ok {
		t.Error("the total is not a reason")
	}
}

func TestShardsSum(t *testing.T) {
	var a, b Shard
	a.Add(ULRxPackets, 3)
	a.Inc(ULRxPackets)
	a.Set(ULLastBPDU, 100)
	b.Add(ULRxPackets, 10)
	b.Set(ULLastBPDU, 50)
	var s Snapshot
	s.Merge(&a, &b)
	if s[ULRxPackets] != 0 {
		t.Fatalf("unpublished counts visible: %d", s[ULRxPackets])
	}
	a.Publish()
	b.Publish()
	s = Snapshot{}
	s.Merge(&a, &b)
	if s[ULRxPackets] != 14 || s[ULLastBPDU] != 100 {
		t.Fatalf("sum %d, latest BPDU %d", s[ULRxPackets], s[ULLastBPDU])
	}
	if r := s.Reference(); r[0] != 14 || len(r) != 12 {
		t.Fatalf("reference view %v", r)
	}
}

// TestConcurrentReaders runs writers and readers at once under -race: the
// hot path's plain fields never meet a reader.
func TestConcurrentReaders(t *testing.T) {
	var sh Shard
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 10000; i++ {
			sh.Inc(DLRxPackets)
			if i%64 == 0 {
				sh.Publish()
			}
		}
		sh.Publish()
	}()
	go func() {
		defer wg.Done()
		var last uint64
		for i := 0; i < 1000; i++ {
			var s Snapshot
			s.Merge(&sh)
			if s[DLRxPackets] < last {
				t.Errorf("counter went back from %d to %d", last, s[DLRxPackets])
			}
			last = s[DLRxPackets]
		}
	}()
	wg.Wait()
	var s Snapshot
	s.Merge(&sh)
	if s[DLRxPackets] != 10000 {
		t.Fatalf("final %d", s[DLRxPackets])
	}
}

func TestCountingAllocs(t *testing.T) {
	var sh Shard
	if n := testing.AllocsPerRun(100, func() { sh.Inc(ULRxPackets); sh.Publish() }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func BenchmarkPublish(b *testing.B) {
	var sh Shard
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sh.Add(ULRxPackets, 64)
		sh.Add(ULRxBytes, 64*100)
		sh.Add(DLTxPackets, 64)
		sh.Add(DLTxBytes, 64*100)
		sh.Publish()
	}
}
