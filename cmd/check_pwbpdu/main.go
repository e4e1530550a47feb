// Command check_pwbpdu is a Nagios / monitoring-plugins plugin that says
// whether spanning-tree BPDUs cross a pwgate pseudowire: with MST across
// two pseudowires, the backup path must be seen alive before the main one
// fails.
//
// By default it reads the BPDU counter of one direction twice, an interval
// apart, and checks the difference against the thresholds (as the
// reference's check_gpwbpdu.pl did, with its defaults -w 4: -c 1:). With
// --max-age it reads the time of the last BPDU instead and does not sleep.
//
// Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (pwgated cannot be
// reached, bad arguments, timeout).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/client/plugin"
)

// Plugin exit codes.
const (
	OK       = plugin.OK
	Warning  = plugin.Warning
	Critical = plugin.Critical
	Unknown  = plugin.Unknown
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usageText = `Usage:
  check_pwbpdu [-w RANGE] [-c RANGE] [-i SECONDS] [-t SECONDS] [--direction ul|dl] [--socket PATH]
  check_pwbpdu --max-age SECONDS [-t SECONDS] [--direction ul|dl] [--socket PATH]
  check_pwbpdu --help | --version

Checks that spanning-tree BPDUs cross a pwgate pseudowire.

Options:
  -w, --warning RANGE    warning threshold for the BPDUs counted in the interval (default 4:)
  -c, --critical RANGE   critical threshold (default 1:)
  -i, --interval SECONDS how long to count BPDUs (default 5)
      --max-age SECONDS  instead of counting, CRITICAL when the last BPDU is older than this
  -t, --timeout SECONDS  give up with UNKNOWN after this long (default 10)
      --direction ul|dl  BPDUs from the uplink (from the far site, default) or from the LAN
      --socket PATH      pwgated's statistics socket (default /run/pwgate/pwgated.sock)
  -h, --help             print this help
  -V, --version          print the version

Ranges follow the monitoring-plugins guidelines: "4:" alerts below 4, "10"
alerts outside 0..10, "~:10" above 10, "@1:3" inside 1..3.
`

type options struct {
	plugin.Common
	warn, crit         plugin.Range
	interval           time.Duration
	maxAge             time.Duration
	timeout            time.Duration
	direction          string
	intervalS, maxAgeS string
}

func parse(args []string) (*options, error) {
	o := &options{Common: plugin.Common{Warn: "4:", Crit: "1:", Timeout: "10", Socket: client.DefaultStatsSocket}}
	fs := flag.NewFlagSet("check_pwbpdu", flag.ContinueOnError)
	for _, n := range []string{"i", "interval"} {
		fs.StringVar(&o.intervalS, n, "5", "")
	}
	fs.StringVar(&o.maxAgeS, "max-age", "", "")
	fs.StringVar(&o.direction, "direction", "ul", "")
	if err := o.Parse(fs, args); err != nil {
		return nil, err
	}
	if o.Help || o.Version {
		return o, nil
	}
	var err error
	if o.warn, err = plugin.ParseRange(o.Warn); err != nil {
		return nil, fmt.Errorf("-w: %w", err)
	}
	if o.crit, err = plugin.ParseRange(o.Crit); err != nil {
		return nil, fmt.Errorf("-c: %w", err)
	}
	if o.interval, err = seconds("-i", o.intervalS); err != nil {
		return nil, err
	}
	if o.timeout, err = seconds("-t", o.Timeout); err != nil {
		return nil, err
	}
	if o.maxAgeS != "" {
		if o.maxAge, err = seconds("--max-age", o.maxAgeS); err != nil {
			return nil, err
		}
	} else if o.interval >= o.timeout {
		return nil, fmt.Errorf("the interval (%v) must be shorter than the timeout (%v)", o.interval, o.timeout)
	}
	if o.direction != "ul" && o.direction != "dl" {
		return nil, fmt.Errorf("--direction %q: want ul or dl", o.direction)
	}
	return o, nil
}

func seconds(flag, s string) (time.Duration, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 || v > 86400 {
		return 0, fmt.Errorf("%s %q: want a number of seconds above 0", flag, s)
	}
	return time.Duration(v * float64(time.Second)), nil
}

type result = plugin.Result

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args)
	if err != nil {
		o = &options{}
	}
	return plugin.Answer(stdout, "check_pwbpdu", "BPDU", usageText, client.Version, err, o.Help, o.Version, func() result {
		ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		defer cancel()
		if o.maxAge > 0 {
			return checkAge(ctx, o)
		}
		return checkCount(ctx, o)
	})
}

func counterName(dir string) string { return dir + "_rx_bpdus" }

// readBPDUs returns the BPDU counter of the direction.
func readBPDUs(ctx context.Context, o *options) (uint64, error) {
	cs, err := client.FetchCounters(o.Socket, remaining(ctx))
	if err != nil {
		return 0, err
	}
	for _, c := range cs {
		if c.Name == counterName(o.direction) {
			return c.Value, nil
		}
	}
	return 0, fmt.Errorf("pwgated at %s has no %s counter", o.Socket, counterName(o.direction))
}

func remaining(ctx context.Context) time.Duration {
	d, _ := ctx.Deadline()
	return max(time.Until(d), time.Millisecond)
}

func unknown(ctx context.Context, o *options, err error) result {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return result{State: Unknown, Text: fmt.Sprintf("no answer within the %v timeout", o.timeout)}
	}
	return result{State: Unknown, Text: err.Error()}
}

func checkCount(ctx context.Context, o *options) result {
	first, err := readBPDUs(ctx, o)
	if err != nil {
		return unknown(ctx, o, err)
	}
	select {
	case <-time.After(o.interval):
	case <-ctx.Done():
		return unknown(ctx, o, ctx.Err())
	}
	second, err := readBPDUs(ctx, o)
	if err != nil {
		return unknown(ctx, o, err)
	}
	if second < first {
		return result{State: Unknown, Text: "the BPDU counter went back: pwgated restarted during the check"}
	}
	n := float64(second - first)
	r := result{State: OK, Text: fmt.Sprintf("%d BPDUs in %gs from the %s", second-first, o.interval.Seconds(), place(o.direction)),
		Perf: fmt.Sprintf("bpdus=%d;%s;%s;0;", second-first, o.warn, o.crit)}
	switch {
	case o.crit.Alert(n):
		r.State = Critical
	case o.warn.Alert(n):
		r.State = Warning
	}
	return r
}

func place(dir string) string {
	if dir == "ul" {
		return "uplink"
	}
	return "LAN"
}

func checkAge(ctx context.Context, o *options) result {
	s, err := client.FetchStatus(o.Socket, remaining(ctx))
	if err != nil {
		return unknown(ctx, o, err)
	}
	last := s.LastBPDU.UL
	if o.direction == "dl" {
		last = s.LastBPDU.DL
	}
	if last == nil {
		return result{State: Critical, Text: fmt.Sprintf("no BPDU from the %s since pwgated started %s ago", place(o.direction),
			(time.Duration(s.Uptime) * time.Second).String())}
	}
	a := time.Since(*last)
	r := result{State: OK, Text: fmt.Sprintf("last BPDU from the %s %.1fs ago", place(o.direction), a.Seconds()),
		Perf: fmt.Sprintf("age=%.3fs;;%g;0;", a.Seconds(), o.maxAge.Seconds())}
	if a > o.maxAge {
		r.State = Critical
	}
	return r
}
