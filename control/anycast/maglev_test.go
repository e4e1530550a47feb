package anycast

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func names(n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("192.0.2.%d", i+1))
	}
	return s
}

func build(t testing.TB, m int, backends []string) []int32 {
	t.Helper()
	tab := make([]int32, m)
	if err := Maglev(tab, backends); err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestMaglevBalance(t *testing.T) {
	for _, n := range []int{1, 3, 8, 100} {
		tab := build(t, DefaultTableSize, names(n))
		for i, s := range Shares(tab, n) {
			want := float64(DefaultTableSize) / float64(n)
			if d := float64(s)/want - 1; d < -0.01 || d > 0.01 {
				t.Errorf("%d servers: server %d owns %d slots, want %.0f ±1%%", n, i, s, want)
			}
		}
	}
}

// A server that leaves moves only its own slots (and a few others: Maglev
// gives up perfect stability for balance); one that comes back takes
// back about 1/N.
func TestMaglevDisruption(t *testing.T) {
	for _, n := range []int{3, 8} {
		all := names(n)
		before := build(t, DefaultTableSize, all)
		for gone := range n {
			rest := append(append([]string{}, all[:gone]...), all[gone+1:]...)
			after := build(t, DefaultTableSize, rest)
			moved := 0
			for i := range before {
				if all[before[i]] != all[gone] && all[before[i]] != rest[after[i]] {
					moved++
				}
			}
			if f := float64(moved) / DefaultTableSize; f > 0.02 {
				t.Errorf("%d servers, %s leaves: %.2f%% of the others' slots moved (bound 2%%)", n, all[gone], 100*f)
			}
			back := build(t, DefaultTableSize, all)
			for i := range back {
				if back[i] != before[i] {
					t.Fatalf("the table with %s back differs from the first", all[gone])
				}
			}
		}
	}
}

// The order in which servers are named does not change the table.
func TestMaglevOrderFree(t *testing.T) {
	a := names(5)
	b := []string{a[3], a[1], a[4], a[0], a[2]}
	ta, tb := build(t, 251, a), build(t, 251, b)
	for i := range ta {
		if a[ta[i]] != b[tb[i]] {
			t.Fatalf("slot %d: %s vs %s", i, a[ta[i]], b[tb[i]])
		}
	}
}

func TestMaglevErrors(t *testing.T) {
	if err := Maglev(make([]int32, 65536), names(3)); err == nil {
		t.Error("a table size that is not a prime was taken")
	}
	if err := Maglev(make([]int32, 3), names(5)); err == nil {
		t.Error("more servers than slots were taken")
	}
	tab := build(t, 7, nil)
	for _, v := range tab {
		if v != -1 {
			t.Fatal("an empty table has a server")
		}
	}
}

func FuzzMaglev(f *testing.F) {
	f.Add(uint8(3), uint16(7))
	f.Fuzz(func(t *testing.T, n uint8, seed uint16) {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		var bs []string
		for range int(n%40) + 1 {
			bs = append(bs, fmt.Sprint(r.Uint32()))
		}
		tab := make([]int32, 251)
		if err := Maglev(tab, bs); err != nil {
			return // duplicate names, more servers than slots
		}
		for _, v := range tab {
			if v < 0 || int(v) >= len(bs) {
				t.Fatalf("slot holds %d of %d servers", v, len(bs))
			}
		}
	})
}

func BenchmarkMaglev(b *testing.B) {
	tab := make([]int32, DefaultTableSize)
	bs := names(8)
	b.ReportAllocs()
	for b.Loop() {
		Maglev(tab, bs)
	}
}
