package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// mapping is the resident memory of one kind of mapping of a process
// (/proc/PID/smaps, summed by kind): the ranges of a kind come and go and
// merge as the runtime maps more, the kinds stay.
type mapping struct {
	Kind string `json:"kind"`
	RSS  uint64 `json:"rss_bytes"`
	Anon uint64 `json:"anon_bytes"`
}

// kindOf names a mapping's kind from its smaps header fields: anonymous
// memory (Go's heap, the runtime's own and the UMEM: Go 1.26 places its
// arenas at random, so the address does not tell them apart), a file by
// path and permissions, or a special mapping ([stack], socket:[N]) by name.
func kindOf(perms, what string) string {
	switch {
	case what == "":
		return "anonymous (Go's memory, the UMEM)"
	case strings.HasPrefix(what, "/"):
		return strings.TrimSuffix(what, " (deleted)") + " " + perms
	}
	return strings.Trim(strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, what), ":[]") + " " + perms
}

// readMappings returns the resident memory of process pid by kind of
// mapping.
func readMappings(pid int) (map[string]mapping, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]mapping{}
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if !strings.HasSuffix(fs[0], ":") { // a header: range perms offset dev inode [path]
			if len(fs) < 5 {
				continue
			}
			cur = kindOf(fs[1], strings.Join(fs[5:], " "))
			m := out[cur]
			m.Kind = cur
			out[cur] = m
			continue
		}
		if len(fs) != 3 || fs[2] != "kB" {
			continue
		}
		n, _ := strconv.ParseUint(fs[1], 10, 64)
		m := out[cur]
		switch fs[0] {
		case "Rss:":
			m.RSS += n << 10
		case "Anonymous:":
			m.Anon += n << 10
		}
		out[cur] = m
	}
	return out, sc.Err()
}

// growth is how one mapping's resident memory changed between two
// readings; a mapping that appeared counts from zero, one that went away
// down to zero.
type growth struct {
	Mapping   mapping `json:"mapping"`
	Delta     int64   `json:"delta_bytes"`
	AnonDelta int64   `json:"anon_delta_bytes"`
}

// grew returns the mappings whose resident memory changed between
// before and after, largest change first.
func grew(before, after map[string]mapping) []growth {
	var out []growth
	for k, a := range after {
		b := before[k]
		g := growth{Mapping: a, Delta: int64(a.RSS) - int64(b.RSS), AnonDelta: int64(a.Anon) - int64(b.Anon)}
		if g.Delta != 0 || g.AnonDelta != 0 {
			out = append(out, g)
		}
	}
	for k, b := range before {
		if _, ok := after[k]; !ok {
			out = append(out, growth{Mapping: mapping{Kind: b.Kind}, Delta: -int64(b.RSS), AnonDelta: -int64(b.Anon)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		ai, aj := abs(out[i].Delta)+abs(out[i].AnonDelta), abs(out[j].Delta)+abs(out[j].AnonDelta)
		if ai != aj {
			return ai > aj
		}
		return out[i].Mapping.Kind < out[j].Mapping.Kind
	})
	return out
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func kib(b int64) string { return fmt.Sprintf("%+.0f KiB", float64(b)/1024) }
