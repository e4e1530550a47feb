package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pwgate/pwgate/bench/lab"
)

// debugAddr is where each pwgated serves its Go profiles, inside its own
// namespace.
const debugAddr = "127.0.0.1:6060"

// fetchAllocs saves the daemon's allocation profile (every allocation
// since it started) as dir/NAME.pb.gz.
func fetchAllocs(s *lab.Sites, site *lab.Site, dir, name string) (string, error) {
	file := filepath.Join(dir, name+".pb.gz")
	if _, err := s.Exec(site.PW, "curl", "-sf", "--max-time", "20", "-o", file, "http://"+debugAddr+"/debug/pprof/allocs"); err != nil {
		return "", fmt.Errorf("site %s: allocation profile: %w", site.Name, err)
	}
	return file, nil
}

// allocatedBetween is pprof's list of what allocated between two
// profiles of one daemon, heaviest first, by bytes and by count; what
// serving the profiles allocated is left out.
func allocatedBetween(base, end string) (string, error) {
	var out strings.Builder
	for _, index := range []string{"alloc_space", "alloc_objects"} {
		b, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=12", "-sample_index="+index, "-ignore=net/http/pprof", "-base", base, end).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("go tool pprof: %v: %s", err, b)
		}
		out.WriteString(trimPprof(string(b)))
	}
	return out.String(), nil
}

// trimPprof drops pprof's preamble lines (file, type, time) and keeps
// the totals and the table.
func trimPprof(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Time:") || strings.HasPrefix(line, "Duration:") {
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}
