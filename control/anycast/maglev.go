package anycast

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/pwgate/pwgate/control/config"
)

// DefaultTableSize is the Maglev lookup table's size: a prime, as the
// paper asks (Eisenbud et al., "Maglev", NSDI 2016, §3.4), and Katran's
// default. With N servers each owns about M/N entries, and a server that
// leaves moves only the entries it owned.
const DefaultTableSize = config.DefaultTableSize

// MaxTableSize bounds table_size (the forwarder keeps one table per VIP).
const MaxTableSize = config.MaxTableSize

// Maglev fills table (its length M, a prime) with indexes into backends:
// each backend walks its own permutation of the slots (offset and skip
// from two hashes of its name) and, in turn, takes its next free slot
// until every slot is taken. The names, not their order, decide the
// table: forwarders that see the same servers build the same table.
// With no backends, every slot is -1.
func Maglev(table []int32, backends []string) error {
	m := len(table)
	if !config.IsPrime(m) {
		return fmt.Errorf("maglev: table size %d is not a prime", m)
	}
	for i := range table {
		table[i] = -1
	}
	n := len(backends)
	if n == 0 {
		return nil
	}
	if n > m {
		return fmt.Errorf("maglev: %d servers for %d slots", n, m)
	}
	// The backends take turns in the order of their names.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(backends[a], backends[b]) })
	for k := 1; k < n; k++ {
		if backends[order[k]] == backends[order[k-1]] {
			return fmt.Errorf("maglev: server %q named twice", backends[order[k]])
		}
	}
	offset, skip, next := make([]uint64, n), make([]uint64, n), make([]uint64, n)
	for i, b := range backends {
		offset[i] = hashName("offset", b) % uint64(m)
		skip[i] = hashName("skip", b)%uint64(m-1) + 1
	}
	for filled := 0; ; {
		for _, i := range order {
			c := (offset[i] + next[i]*skip[i]) % uint64(m)
			for table[c] >= 0 {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % uint64(m)
			}
			table[c] = int32(i)
			next[i]++
			if filled++; filled == m {
				return nil
			}
		}
	}
}

func hashName(salt, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(salt))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return h.Sum64()
}

// Shares counts each backend's slots in table.
func Shares(table []int32, n int) []int {
	s := make([]int, n)
	for _, b := range table {
		if b >= 0 && int(b) < n {
			s[b]++
		}
	}
	return s
}
