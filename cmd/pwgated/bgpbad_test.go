package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
)

// A minimal BGP speaker for feeding pwgated malformed UPDATEs.

func bgpMsg(typ byte, body []byte) []byte {
	m := bytes.Repeat([]byte{0xff}, 16)
	m = binary.BigEndian.AppendUint16(m, uint16(19+len(body)))
	return append(append(m, typ), body...)
}

func bgpOpen(asn uint32, id net.IP, hold uint16) []byte {
	caps := []byte{
		1, 4, 0, 25, 0, 70, // multiprotocol: L2VPN EVPN
		65, 4, byte(asn >> 24), byte(asn >> 16), byte(asn >> 8), byte(asn), // four-octet AS
	}
	b := []byte{4}
	b = binary.BigEndian.AppendUint16(b, 23456) // AS_TRANS
	b = binary.BigEndian.AppendUint16(b, hold)
	b = append(b, id.To4()...)
	b = append(b, byte(2+len(caps)), 2, byte(len(caps)))
	return bgpMsg(1, append(b, caps...))
}

// evpnUpdate is an UPDATE carrying one EVPN NLRI in MP_REACH_NLRI, with
// extra attributes appended.
func evpnUpdate(nh net.IP, nlri []byte, extra ...[]byte) []byte {
	reach := []byte{0, 25, 70, 4}
	reach = append(reach, nh.To4()...)
	reach = append(reach, 0)
	reach = append(reach, nlri...)
	attrs := []byte{0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 5, 4, 0, 0, 0, 100}
	attrs = append(attrs, 0x90, 14)
	attrs = binary.BigEndian.AppendUint16(attrs, uint16(len(reach)))
	attrs = append(attrs, reach...)
	for _, x := range extra {
		attrs = append(attrs, x...)
	}
	b := []byte{0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(len(attrs)))
	return bgpMsg(2, append(b, attrs...))
}

// macRouteNLRI is a well-formed EVPN type-2 NLRI (RD 10.0.0.9:1, MAC, no IP,
// label VNI 101).
func macRouteNLRI(mac []byte) []byte {
	r := []byte{0, 1, 10, 0, 0, 9, 0, 1} // RD type 1
	r = append(r, make([]byte, 10)...)   // ESI
	r = append(r, 0, 0, 0, 0)            // ethernet tag
	r = append(r, 48)
	r = append(r, mac...)
	r = append(r, 0)         // IP length
	r = append(r, 0, 0, 101) // label: the VNI (RFC 8365)
	return append([]byte{2, byte(len(r))}, r...)
}

// readMsg reads one BGP message: its type and body.
func readMsg(c net.Conn) (byte, []byte, error) {
	h := make([]byte, 19)
	if _, err := io.ReadFull(c, h); err != nil {
		return 0, nil, err
	}
	b := make([]byte, int(binary.BigEndian.Uint16(h[16:]))-19)
	_, err := io.ReadFull(c, b)
	return h[18], b, err
}

// fakePeer accepts site A's session on 10.0.0.9:179 in the lab's "net"
// namespace and returns it once OPENs and KEEPALIVEs are exchanged.
func fakePeer(t *testing.T, e *lab.EVPN) net.Conn {
	t.Helper()
	var ln net.Listener
	if err := e.Do("net", func() (err error) {
		ln, err = net.Listen("tcp4", "10.0.0.9:179")
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("site A did not connect: %v", err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(bgpOpen(lab.EVPNASN, net.ParseIP("10.0.0.9"), 9)); err != nil {
		t.Fatal(err)
	}
	for seenOpen, seenKA := false, false; !seenOpen || !seenKA; {
		typ, _, err := readMsg(c)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		switch typ {
		case 1:
			seenOpen = true
			c.Write(bgpMsg(4, nil))
		case 4:
			seenKA = true
		}
	}
	return c
}

// TestBGPBadInput feeds site A malformed UPDATEs from a neighbor: an
// attribute error is treated as a withdrawal (RFC 7606 §2) and the session
// stays; a broken NLRI disables the family on that session (GoBGP's choice
// among RFC 7606 §3(j)'s "session reset or AFI/SAFI disable") or resets
// it, and that neighbor's routes are gone either way. pwgated keeps running
// and its other sessions stay up.
func TestBGPBadInput(t *testing.T) {
	e := newEVPN(t, lab.EVPNOptions{MoreNeighbors: []string{"10.0.0.9"}})
	if err := e.Script("net", "ip addr add 10.0.0.9/24 dev br0"); err != nil {
		t.Fatal(err)
	}
	c := fakePeer(t, e)
	defer c.Close()
	go func() { // keep the session alive
		for range time.Tick(2 * time.Second) {
			if _, err := c.Write(bgpMsg(4, nil)); err != nil {
				return
			}
		}
	}()
	// A's session with B too: the end checks that it stayed up.
	if err := e.WaitSessions(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	nh := net.ParseIP("10.0.0.9")
	good := []byte{0x02, 0, 0, 0, 0x99, 0x01}
	rt := []byte{0xc0, 16, 16, 0x00, 0x02, 0xea, 0x00, 0, 0, 0, 101, 0x03, 0x0c, 0, 0, 0, 0, 0, 8} // RT 59904:101, encap VXLAN
	if _, err := c.Write(evpnUpdate(nh, macRouteNLRI(good), rt)); err != nil {
		t.Fatal(err)
	}
	waitFDB(t, e.A, 101, "02:00:00:00:99:01", "10.0.0.9", 5*time.Second)

	// 1. Extended communities of 7 bytes: malformed attribute, treat as
	// withdraw.
	badEC := []byte{0xc0, 16, 7, 0x00, 0x02, 0xea, 0x00, 0, 0, 0}
	if _, err := c.Write(evpnUpdate(nh, macRouteNLRI(good), badEC)); err != nil {
		t.Fatal(err)
	}
	gone := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			left := false
			for _, f := range fdbOf(t, e.A) {
				left = left || f.VTEP == "10.0.0.9"
			}
			if !left {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the neighbor's MAC route is still in the FDB", what)
			}
		}
	}
	gone("malformed extended communities (treat as withdraw)")
	if st := evpnStatus(t, e.A); !slices.ContainsFunc(st.BGP.Neighbors, func(n client.Neighbor) bool { return n.Neighbor == "10.0.0.9" && n.State == "established" }) {
		t.Errorf("treat-as-withdraw ended the session: %+v", st.BGP.Neighbors)
	}
	if _, err := c.Write(evpnUpdate(nh, macRouteNLRI(good), rt)); err != nil {
		t.Fatal(err)
	}
	waitFDB(t, e.A, 101, "02:00:00:00:99:01", "10.0.0.9", 5*time.Second)
	// 2. A type-2 NLRI whose length runs past the attribute.
	broken := macRouteNLRI([]byte{0x02, 0, 0, 0, 0x99, 0x02})
	broken[1] = 200
	c.Write(evpnUpdate(nh, broken, rt))
	notified := "no NOTIFICATION"
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		typ, body, err := readMsg(c)
		if err != nil {
			break
		}
		if typ == 3 {
			notified = fmt.Sprintf("NOTIFICATION code %d subcode %d", body[0], body[1])
			break
		}
	}
	if p := e.A.Proc; p.Exited() {
		t.Fatalf("pwgated died:\n%s", p.Out.String())
	}
	gone("broken NLRI (" + notified + ")")
	if log := e.A.Proc.Out.String(); notified == "no NOTIFICATION" && !strings.Contains(log, "Capability was disabled") {
		t.Errorf("a broken NLRI neither reset the session nor disabled the family:\n%s", log)
	}
	t.Logf("after the broken NLRI: %s", notified)
	// The other sessions are untouched and traffic flows.
	st := evpnStatus(t, e.A)
	for _, n := range st.BGP.Neighbors {
		if n.Neighbor != "10.0.0.9" && n.State != "established" {
			t.Errorf("neighbor %s: %s", n.Neighbor, n.State)
		}
	}
	evpnPing(t, e, e.A, e.B.HostIP)
}
