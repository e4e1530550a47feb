package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// mapping is one entry of /proc/PID/smaps: where it is, what backs it and
// how much of it is resident.
type mapping struct {
	Where string `json:"where"` // address range and permissions
	What  string `json:"what"`  // path, [heap], [stack], or "" for anonymous
	RSS   uint64 `json:"rss_bytes"`
	Anon  uint64 `json:"anon_bytes"`
}

// readMappings returns the mappings of process pid, keyed by address
// range and backing.
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
		line := sc.Text()
		fs := strings.Fields(line)
		if len(fs) == 0 {
			continue
		}
		if !strings.HasSuffix(fs[0], ":") { // a header: range perms offset dev inode [path]
			m := mapping{Where: fs[0] + " " + fs[1]}
			if len(fs) > 5 {
				m.What = strings.Join(fs[5:], " ")
			}
			cur = m.Where + " " + m.What
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
			m.RSS = n << 10
		case "Anonymous:":
			m.Anon = n << 10
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
// before and after, largest change first, and the sum of the anonymous
// changes.
func grew(before, after map[string]mapping) ([]growth, int64) {
	var out []growth
	var anon int64
	for k, a := range after {
		b := before[k]
		g := growth{Mapping: a, Delta: int64(a.RSS) - int64(b.RSS), AnonDelta: int64(a.Anon) - int64(b.Anon)}
		if g.Delta != 0 || g.AnonDelta != 0 {
			out = append(out, g)
			anon += g.AnonDelta
		}
	}
	for k, b := range before {
		if _, ok := after[k]; !ok {
			out = append(out, growth{Mapping: mapping{Where: b.Where, What: b.What + " (gone)"}, Delta: -int64(b.RSS), AnonDelta: -int64(b.Anon)})
			anon -= int64(b.Anon)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		ai, aj := abs(out[i].Delta)+abs(out[i].AnonDelta), abs(out[j].Delta)+abs(out[j].AnonDelta)
		if ai != aj {
			return ai > aj
		}
		return out[i].Mapping.Where < out[j].Mapping.Where
	})
	return out, anon
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// describe names what a mapping most likely is, for the report.
func (m mapping) describe() string {
	if m.What != "" {
		return m.What
	}
	return "anonymous"
}

func kib(b int64) string { return fmt.Sprintf("%+.0f KiB", float64(b)/1024) }
