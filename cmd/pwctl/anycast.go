package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/pwgate/pwgate/control/client"
)

// printAnycast shows the announced VIPs with their health, and the
// forwarded VIPs with their servers, table shares and traffic.
func printAnycast(w io.Writer, socket string, asJSON bool) error {
	a, err := client.FetchAnycast(socket, timeout)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(w).Encode(a)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if len(a.VIPs) > 0 {
		fmt.Fprintln(tw, "VIP\tSTATE\tSINCE\tANNOUNCED\tMED\tCHECK\tCHECKS\tFAILED\tLAST ERROR")
		for _, v := range a.VIPs {
			med := "-"
			if v.MED != nil {
				med = fmt.Sprint(*v.MED)
			}
			state := v.State
			if !v.DrainUntil.IsZero() && v.State == "draining" {
				state += fmt.Sprintf(" (%v left)", time.Until(v.DrainUntil).Truncate(time.Second))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%d\t%d\t%s\n", v.Prefix, state, time.Since(v.Since).Truncate(time.Second),
				v.Announced, med, v.Check, v.Checks, v.Failures, dash(v.LastError))
		}
		fmt.Fprintln(tw)
	}
	for _, f := range a.Forward {
		fmt.Fprintf(tw, "forwarding %s: %d packets, %d bytes, %d dropped for want of a server\n", f.Prefix, f.Packets, f.Bytes, f.NoServers)
		fmt.Fprintln(tw, "  SERVER\tPEER\tMED\tPORT\tMAC\tSLOTS\tPACKETS\tBYTES\tWHY NOT")
		for _, s := range f.Servers {
			med := "-"
			if s.MED != nil {
				med = fmt.Sprint(*s.MED)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", s.NextHop, s.Peer, med, dash(s.Port), dash(s.MAC), s.Slots, s.Packets, s.Bytes, dash(s.Why))
		}
		fmt.Fprintln(tw)
	}
	if len(a.Counters) > 0 {
		fmt.Fprint(tw, "forwarder:")
		for _, k := range slices.Sorted(maps.Keys(a.Counters)) {
			fmt.Fprintf(tw, " %s %d", k, a.Counters[k])
		}
		fmt.Fprintln(tw)
	}
	if len(a.PathsRefused) > 0 {
		fmt.Fprint(tw, "paths refused:")
		for _, k := range slices.Sorted(maps.Keys(a.PathsRefused)) {
			fmt.Fprintf(tw, " %s %d", k, a.PathsRefused[k])
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
