// Command check_pwpath is a Nagios / monitoring-plugins plugin for the
// path to a pwgate pseudowire's peer, as keepalives measure it
// (peer.keepalive on both pwgates): CRITICAL while the peer is silent or
// does not hear us, and the round trip and keepalive loss checked against
// thresholds, in the style of check_ping (-w RTT,LOSS%).
//
// Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (pwgated cannot be
// reached, has no keepalives configured, bad arguments, timeout).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/client/plugin"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

const usageText = `Usage:
  check_pwpath [-w RTT,LOSS%] [-c RTT,LOSS%] [-t SECONDS] [--socket PATH]
  check_pwpath --help | --version

Checks the path to the pseudowire's peer as pwgate's keepalives measure it
(peer.keepalive, on both pwgates).

Options:
  -w, --warning RTT,LOSS%   warning thresholds: round trip in milliseconds and
                            keepalive loss over the last 10 s in percent (default 50,5%)
  -c, --critical RTT,LOSS%  critical thresholds (default 200,20%)
  -t, --timeout SECONDS     give up with UNKNOWN after this long (default 10)
      --socket PATH         pwgated's statistics socket (default /run/pwgate/pwgated.sock)
  -h, --help                print this help
  -V, --version             print the version

A peer that is silent, or whose keepalives say it does not hear us, is
CRITICAL; one that sends no keepalives (or too seldom for our timeout) is
a WARNING. Each threshold is a monitoring-plugins range: "50" alerts above
50 (outside 0..50), "10:50" outside 10..50, "@0:5" inside 0..5.
`

type options struct {
	plugin.Common
	rttW, rttC, lossW, lossC plugin.Range
	timeout                  time.Duration
}

// thresholds parses "RTT,LOSS%" into two ranges.
func thresholds(flag, s string) (rtt, loss plugin.Range, err error) {
	r, l, ok := strings.Cut(s, ",")
	if !ok || !strings.HasSuffix(l, "%") {
		return rtt, loss, fmt.Errorf("%s %q: want RTT,LOSS%% such as 50,5%%", flag, s)
	}
	if rtt, err = plugin.ParseRange(r); err != nil {
		return rtt, loss, fmt.Errorf("%s: %w", flag, err)
	}
	if loss, err = plugin.ParseRange(strings.TrimSuffix(l, "%")); err != nil {
		return rtt, loss, fmt.Errorf("%s: %w", flag, err)
	}
	return rtt, loss, nil
}

func parse(args []string) (*options, error) {
	o := &options{Common: plugin.Common{Warn: "50,5%", Crit: "200,20%", Timeout: "10", Socket: client.DefaultStatsSocket}}
	if err := o.Parse(flag.NewFlagSet("check_pwpath", flag.ContinueOnError), args); err != nil {
		return nil, err
	}
	if o.Help || o.Version {
		return o, nil
	}
	var err error
	if o.rttW, o.lossW, err = thresholds("-w", o.Warn); err != nil {
		return nil, err
	}
	if o.rttC, o.lossC, err = thresholds("-c", o.Crit); err != nil {
		return nil, err
	}
	v, err := strconv.ParseFloat(o.Timeout, 64)
	if err != nil || v <= 0 || v > 3600 {
		return nil, fmt.Errorf("-t %q: want a number of seconds above 0, at most 3600", o.Timeout)
	}
	o.timeout = time.Duration(v * float64(time.Second))
	return o, nil
}

func run(args []string, stdout io.Writer) int {
	o, err := parse(args)
	if err != nil {
		o = &options{}
	}
	return plugin.Answer(stdout, "check_pwpath", "PATH", usageText, client.Version, err, o.Help, o.Version, func() plugin.Result { return check(o) })
}

func check(o *options) plugin.Result {
	s, err := client.FetchStatus(o.Socket, o.timeout)
	if err != nil {
		return plugin.Result{State: plugin.Unknown, Text: err.Error()}
	}
	p := s.Path
	if p == nil {
		return plugin.Result{State: plugin.Unknown, Text: fmt.Sprintf("pwgated at %s sends no keepalives (peer.keepalive)", o.Socket)}
	}
	rtt, loss, jitter := p.RTT*1000, p.Loss*100, p.Jitter*1000
	r := plugin.Result{State: plugin.OK,
		Text: fmt.Sprintf("peer %s %s, rtt %.2f ms, jitter %.2f ms, loss %.1f%%", s.Peer, p.State, rtt, jitter, loss),
		Perf: fmt.Sprintf("rtt=%.3fms;%s;%s;0; loss=%.1f%%;%s;%s;0;100 jitter=%.3fms;;;0;", rtt, o.rttW, o.rttC, loss, o.lossW, o.lossC, jitter)}
	switch {
	case p.State == client.PathSilent:
		r.State = plugin.Critical
		r.Text += fmt.Sprintf("; nothing heard for %s", heard(p.HeardAgo))
	case p.State == client.PathOneWay:
		r.State = plugin.Critical
		r.Text += "; the peer does not hear us"
	case p.State == client.PathWaiting: // just started
	case p.RTT > 0 && o.rttC.Alert(rtt), o.lossC.Alert(loss):
		r.State = plugin.Critical
	case p.RTT > 0 && o.rttW.Alert(rtt), o.lossW.Alert(loss), p.Warning != "":
		r.State = plugin.Warning
	}
	if p.Warning != "" {
		r.Text += "; " + p.Warning
	}
	return r
}

func heard(ago float64) string {
	if ago < 0 {
		return "ever"
	}
	return (time.Duration(ago * float64(time.Second))).Round(time.Millisecond).String()
}
