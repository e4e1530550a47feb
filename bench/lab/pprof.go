package lab

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// DebugAddr is where a pwgated started with --debug-addr serves its Go
// profiles, inside its own namespace.
const DebugAddr = "127.0.0.1:6060"

// FetchAllocs saves the allocation profile (every allocation since start)
// of the pwgated serving DebugAddr in namespace ns as dir/NAME.pb.gz. The
// runtime publishes the profile up to two garbage collections late, so
// it asks twice, each time after a collection (gc=1), and keeps the
// second: two profiles taken so differ by what was allocated between them.
func (l *Lab) FetchAllocs(ns, dir, name string) (string, error) {
	file := filepath.Join(dir, name+".pb.gz")
	for range 2 {
		if _, err := l.Exec(ns, "curl", "-sf", "--max-time", "20", "-o", file, "http://"+DebugAddr+"/debug/pprof/allocs?gc=1"); err != nil {
			return "", fmt.Errorf("%s: allocation profile: %w", ns, err)
		}
	}
	return file, nil
}

// AllocatedBetween is pprof's list of what allocated between two
// profiles of one daemon, heaviest first, by bytes and by count, on
// paths through no function matching ignore (as pprof's -ignore; empty:
// none); what serving the profiles allocated (net/http) is left out.
func AllocatedBetween(base, end, ignore string) (string, error) {
	var out strings.Builder
	if ignore != "" {
		ignore = "|" + ignore
	}
	for _, index := range []string{"alloc_space", "alloc_objects"} {
		b, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=12", "-sample_index="+index, "-ignore=net/http"+ignore, "-base", base, end).CombinedOutput()
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

// ObjectsBetween returns how many objects were allocated between two
// allocation profiles on paths through no function matching ignore (a
// regular expression, as pprof's -ignore; serving the profiles, net/http,
// and the runtime's own starting of threads, newm and malg, are left out
// too). With every allocation sampled (GODEBUG=memprofilerate=1) the
// count is exact.
func ObjectsBetween(base, end, ignore string) (uint64, error) {
	b, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=1000000", "-nodefraction=0", "-edgefraction=0",
		"-sample_index=alloc_objects", "-ignore=net/http|runtime.newm|runtime.malg|"+ignore, "-base", base, end).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("go tool pprof: %v: %s", err, b)
	}
	return objectsShown(string(b))
}

var shownRE = regexp.MustCompile(`(?m)^Showing nodes accounting for (-?\d+), `)

// objectsShown reads what the nodes pprof -top shows add up to: with no
// node left out, every allocation the filter kept (pprof's "total" is
// the profile's before filtering).
func objectsShown(out string) (uint64, error) {
	m := shownRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pprof's sum not found in %q", out)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	return uint64(max(n, 0)), err
}
