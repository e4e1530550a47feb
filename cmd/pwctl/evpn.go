package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pwgate/pwgate/control/client"
)

// printFDB shows the VXLAN forwarding database, one MAC a line.
func printFDB(w io.Writer, socket string, asJSON bool) error {
	f, err := client.FetchFDB(socket, timeout)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(w).Encode(f)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VNI\tMAC\tVTEP\tORIGIN\tSEQ\tIDLE\tIPS")
	for _, e := range f {
		flags := ""
		if e.Sticky {
			flags += " sticky"
		}
		if e.Duplicate {
			flags += " DUPLICATE"
		}
		idle := "-"
		if e.Origin != "evpn" {
			idle = (time.Duration(e.IdleSecs) * time.Second).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s%s\t%d\t%s\t%s\n", e.VNI, e.MAC, e.VTEP, e.Origin, flags, e.Seq, idle, strings.Join(e.IPs, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d MACs\n", len(f))
	return nil
}

// printEVPN shows the VNIs, their flood lists and the remote VTEPs.
func printEVPN(w io.Writer, socket string, asJSON bool) error {
	s, err := client.FetchStatus(socket, timeout)
	if err != nil {
		return err
	}
	if s.EVPN == nil {
		return fmt.Errorf("pwgated at %s is not a VXLAN tunnel end (mode: vxlan)", socket)
	}
	if asJSON {
		return json.NewEncoder(w).Encode(s.EVPN)
	}
	e := s.EVPN
	fmt.Fprintf(w, "local VTEP %s; MACs: %d local, %d remote, %d duplicate (limit %d)\n", e.Local, e.MACs.Local, e.MACs.Remote, e.MACs.Duplicates, e.MACs.Limit)
	if len(e.RoutesReceived)+len(e.RoutesAnnounced) > 0 && s.BGP != nil {
		fmt.Fprintf(w, "EVPN routes received: %d MAC, %d flood; announced: %d MAC, %d flood\n",
			e.RoutesReceived["macip"], e.RoutesReceived["imet"], e.RoutesAnnounced["macip"], e.RoutesAnnounced["imet"])
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "\nVNI\tVLAN\tRD\tRT\tMACS\tMAX FRAME\tFLOOD TO")
	for _, v := range e.VNIs {
		vlan := "untagged"
		if v.VLAN != 0 {
			vlan = fmt.Sprint(v.VLAN)
		}
		maxf := fmt.Sprint(v.MaxFrame)
		if v.MaxFramePwgate != v.MaxFrame {
			maxf += fmt.Sprintf(" (%d to pwgate)", v.MaxFramePwgate)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d+%d\t%s\t%s\n", v.VNI, vlan, dash(v.RD), dash(v.RT), v.LocalMACs, v.RemoteMACs, maxf, dash(strings.Join(v.Flood, " ")))
	}
	fmt.Fprintln(tw, "\nVTEP\tNEXT HOP\tMACS\tKIND")
	for _, v := range e.VTEPs {
		nh := v.NextHop
		if !v.Resolved {
			nh = "UNRESOLVED"
		}
		var kind []string
		if v.Static {
			kind = append(kind, "static")
		}
		if v.Pwgate {
			kind = append(kind, "pwgate")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", v.Address, nh, v.MACs, dash(strings.Join(kind, ",")))
	}
	return tw.Flush()
}

// printBGP shows the BGP sessions, as show bgp summary does.
func printBGP(w io.Writer, socket string, asJSON bool) error {
	s, err := client.FetchStatus(socket, timeout)
	if err != nil {
		return err
	}
	if s.BGP == nil {
		return fmt.Errorf("pwgated at %s has no bgp section", socket)
	}
	if asJSON {
		return json.NewEncoder(w).Encode(s.BGP)
	}
	fmt.Fprintf(w, "BGP router ID %s, AS %d\n\n", s.BGP.RouterID, s.BGP.ASN)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NEIGHBOR\tAS\tSTATE\tUP/DOWN\tRECEIVED\tADVERTISED\tDESCRIPTION")
	for _, n := range s.BGP.Neighbors {
		up := "-"
		if n.Since != nil {
			up = time.Since(*n.Since).Truncate(time.Second).String()
		}
		var rcv []string
		for _, f := range slices.Sorted(maps.Keys(n.Received)) {
			rcv = append(rcv, fmt.Sprintf("%s %d", f, n.Received[f]))
		}
		name := n.Neighbor
		if n.Address != "" && n.Address != n.Neighbor {
			name += " (" + n.Address + ")"
		}
		state := n.State
		if n.PrefixLimitResets > 0 {
			state += fmt.Sprintf(" (ended %d× for max_prefix)", n.PrefixLimitResets)
		}
		if n.RouterAdvertisementsIgnored > 0 {
			state += fmt.Sprintf(" (%d router advertisements ignored)", n.RouterAdvertisementsIgnored)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\n", name, n.ASN, state, up, dash(strings.Join(rcv, ", ")), n.Advertised, n.Description)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
