// Command check_pwbgp is a Nagios / monitoring-plugins plugin for
// pwgated's BGP speaker: CRITICAL when a session is not established, and
// the routes received (all neighbors' together, or one family's) checked
// against thresholds, in the style of check_pwbpdu.
//
// Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (pwgated cannot be
// reached, has no bgp section, bad arguments, timeout).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
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
  check_pwbgp [-w RANGE] [-c RANGE] [--family FAMILY] [--neighbor NEIGHBOR]... [-t SECONDS] [--socket PATH]
  check_pwbgp --help | --version

Checks pwgated's BGP sessions and the routes they bring.

Options:
  -w, --warning RANGE    warning threshold for the routes received (default 1:)
  -c, --critical RANGE   critical threshold for the routes received (default: none)
      --family FAMILY    count only this family's routes: l2vpn-evpn, ipv4-unicast, ipv6-unicast
      --neighbor N       check only this neighbor (its address, or if:NAME); repeatable
  -t, --timeout SECONDS  give up with UNKNOWN after this long (default 10)
      --socket PATH      pwgated's statistics socket (default /run/pwgate/pwgated.sock)
  -h, --help             print this help
  -V, --version          print the version

A session that is not established is CRITICAL. Ranges follow the
monitoring-plugins guidelines: "1:" alerts below 1, "@0" at 0.
`

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	plugin.Common
	warn, crit plugin.Range
	hasCrit    bool
	family     string
	neighbors  list
	timeout    time.Duration
}

func parse(args []string) (*options, error) {
	o := &options{Common: plugin.Common{Warn: "1:", Timeout: "10", Socket: client.DefaultStatsSocket}}
	fs := flag.NewFlagSet("check_pwbgp", flag.ContinueOnError)
	fs.StringVar(&o.family, "family", "", "")
	fs.Var(&o.neighbors, "neighbor", "")
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
	if o.Crit != "" {
		if o.crit, err = plugin.ParseRange(o.Crit); err != nil {
			return nil, fmt.Errorf("-c: %w", err)
		}
		o.hasCrit = true
	}
	v, err := strconv.ParseFloat(o.Timeout, 64)
	if err != nil || v <= 0 || v > 3600 {
		return nil, fmt.Errorf("-t %q: want a number of seconds above 0", o.Timeout)
	}
	o.timeout = time.Duration(v * float64(time.Second))
	switch o.family {
	case "", "l2vpn-evpn", "ipv4-unicast", "ipv6-unicast":
	default:
		return nil, fmt.Errorf("--family %q: want l2vpn-evpn, ipv4-unicast or ipv6-unicast", o.family)
	}
	return o, nil
}

func run(args []string, stdout io.Writer) int {
	o, err := parse(args)
	if err != nil {
		o = &options{}
	}
	return plugin.Answer(stdout, "check_pwbgp", "BGP", usageText, client.Version, err, o.Help, o.Version, func() plugin.Result { return check(o) })
}

func check(o *options) plugin.Result {
	s, err := client.FetchStatus(o.Socket, o.timeout)
	if err != nil {
		return plugin.Result{State: plugin.Unknown, Text: err.Error()}
	}
	if s.BGP == nil {
		return plugin.Result{State: plugin.Unknown, Text: fmt.Sprintf("pwgated at %s has no bgp section", o.Socket)}
	}
	var checked []client.Neighbor
	for _, n := range s.BGP.Neighbors {
		if len(o.neighbors) == 0 || slices.Contains(o.neighbors, n.Neighbor) || slices.Contains(o.neighbors, n.Address) {
			checked = append(checked, n)
		}
	}
	for _, want := range o.neighbors {
		if !slices.ContainsFunc(checked, func(n client.Neighbor) bool { return n.Neighbor == want || n.Address == want }) {
			return plugin.Result{State: plugin.Unknown, Text: fmt.Sprintf("no neighbor %s in pwgated's bgp section", want)}
		}
	}
	up, routes := 0, 0
	var down []string
	for _, n := range checked {
		if n.State == "established" {
			up++
		} else {
			down = append(down, n.Neighbor+" "+n.State)
		}
		for f, k := range n.Received {
			if o.family == "" || f == o.family {
				routes += k
			}
		}
	}
	what := "routes"
	if o.family != "" {
		what = o.family + " routes"
	}
	r := plugin.Result{State: plugin.OK, Text: fmt.Sprintf("%d of %d sessions established, %d %s received", up, len(checked), routes, what),
		Perf: fmt.Sprintf("sessions=%d;;;0;%d routes=%d;%s;%s;0;", up, len(checked), routes, o.warn, o.Crit)}
	switch {
	case len(down) > 0:
		r.State = plugin.Critical
		r.Text += "; down: " + strings.Join(down, ", ")
	case o.hasCrit && o.crit.Alert(float64(routes)):
		r.State = plugin.Critical
	case o.warn.Alert(float64(routes)):
		r.State = plugin.Warning
	}
	return r
}
