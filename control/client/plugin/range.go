// Package plugin is what pwgate's monitoring-plugins checks
// (check_pwbpdu, check_pwbgp) share: the plugin states, threshold ranges
// and the output line of the monitoring-plugins developer guidelines. Like
// package client it uses the standard library only.
package plugin

import (
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Range is a Nagios threshold range as the monitoring-plugins developer
// guidelines define it: "start:end" alerts when the value is outside
// start..end (inclusive); "@start:end" when it is inside. A missing start
// is 0, "~" as start is minus infinity, a missing end is plus infinity, and
// a bare "end" means "0:end".
type Range struct {
	Start, End float64
	Inside     bool // "@": alert inside the range
	text       string
}

// ParseRange parses a threshold range such as "4:", "@10:20", "~:10" or "5".
func ParseRange(s string) (Range, error) {
	r := Range{text: s, End: math.Inf(1)}
	t := s
	if strings.HasPrefix(t, "@") {
		r.Inside, t = true, t[1:]
	}
	if t == "" {
		return r, fmt.Errorf("empty range %q", s)
	}
	start, end, hasColon := strings.Cut(t, ":")
	if !hasColon {
		start, end = "", t
	}
	switch start {
	case "~":
		r.Start = math.Inf(-1)
	case "":
		r.Start = 0
	default:
		v, err := strconv.ParseFloat(start, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return r, fmt.Errorf("range %q: bad start %q", s, start)
		}
		r.Start = v
	}
	if end != "" {
		v, err := strconv.ParseFloat(end, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return r, fmt.Errorf("range %q: bad end %q", s, end)
		}
		r.End = v
	}
	if r.Start > r.End {
		return r, fmt.Errorf("range %q: start is greater than end", s)
	}
	return r, nil
}

// Alert reports whether v should raise the alert this range describes.
func (r Range) Alert(v float64) bool {
	in := v >= r.Start && v <= r.End
	if r.Inside {
		return in
	}
	return !in
}

// String returns the range as written, for performance data.
func (r Range) String() string { return r.text }

// Plugin exit codes (and states).
const (
	OK = iota
	Warning
	Critical
	Unknown
)

// StateNames are the states as a plugin prints them.
var StateNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// Result is one plugin answer.
type Result struct {
	State int
	Text  string
	Perf  string // performance data, "" for none
}

// Line formats the answer for service as the guidelines want it:
// "SERVICE STATE - text | perfdata".
func (r Result) Line(service string) string {
	s := service + " " + StateNames[r.State] + " - " + r.Text
	if r.Perf != "" {
		s += " | " + r.Perf
	}
	return s
}

// Answer is a plugin's run: an argument error is UNKNOWN (with a pointer to
// --help), --help prints usage, --version the plugin's name and version;
// otherwise check's result is printed for service. It returns the exit
// status.
func Answer(w io.Writer, name, service, usage, version string, argErr error, help, showVersion bool, check func() Result) int {
	switch {
	case argErr != nil:
		fmt.Fprintln(w, Result{State: Unknown, Text: argErr.Error() + " (see --help)"}.Line(service))
		return Unknown
	case help:
		fmt.Fprint(w, usage)
		return OK
	case showVersion:
		fmt.Fprintf(w, "%s %s (pwgate)\n", name, version)
		return OK
	}
	r := check()
	fmt.Fprintln(w, r.Line(service))
	return r.State
}

// Common is the options every pwgate check takes: -w/--warning,
// -c/--critical, -t/--timeout, --socket, -h/--help and -V/--version.
type Common struct {
	Warn, Crit, Timeout, Socket string
	Help, Version               bool
}

// Parse registers c's flags on fs with c's values as defaults (more may
// already be registered), parses args and refuses positional arguments.
func (c *Common) Parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	for _, f := range []struct {
		dst   *string
		names []string
	}{{&c.Warn, []string{"w", "warning"}}, {&c.Crit, []string{"c", "critical"}}, {&c.Timeout, []string{"t", "timeout"}}, {&c.Socket, []string{"socket"}}} {
		for _, n := range f.names {
			fs.StringVar(f.dst, n, *f.dst, "")
		}
	}
	for _, n := range []string{"h", "help"} {
		fs.BoolVar(&c.Help, n, false, "")
	}
	for _, n := range []string{"V", "version"} {
		fs.BoolVar(&c.Version, n, false, "")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
