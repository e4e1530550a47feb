package xsk_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/asavie/xdp"

	"github.com/pwgate/pwgate/dataplane/xsk"
)

// TestAsavieTransmitPanicsOnLinkDown records why this package does not use
// github.com/asavie/xdp, which ARCHITECTURE.md names: its Socket.Transmit
// panics on any sendto error other than EINTR, EAGAIN and EBUSY, so an
// uplink going down would crash the appliance. (It also registers one UMEM
// per socket, which costs a copy per forwarded frame.) Socket.Kick returns
// the error instead; TestKickReportsLinkDown shows it. If this test starts
// failing, upstream has fixed the panic and the choice can be revisited.
func TestAsavieTransmitPanicsOnLinkDown(t *testing.T) {
	l := newLab(t)
	err := l.Do("x", func() error {
		ifi, err := net.InterfaceByName("ul0")
		if err != nil {
			return err
		}
		s, err := xdp.NewSocket(ifi.Index, 0, nil)
		if err != nil {
			return fmt.Errorf("asavie socket: %w", err)
		}
		defer s.Close()
		if _, err := l.Exec("x", "ip", "link", "set", "ul0", "down"); err != nil {
			return err
		}
		descs := s.GetDescs(1)
		descs[0].Len = 60
		defer func() {
			r := recover()
			if r == nil || !strings.Contains(fmt.Sprint(r), "sendto failed") {
				t.Errorf("asavie Transmit on a down link: recovered %v, want a sendto panic", r)
			}
		}()
		s.Transmit(descs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestKickReportsLinkDown(t *testing.T) {
	l := newLab(t)
	err := l.Do("x", func() error {
		p, err := xsk.Open(xsk.Config{Downlink: "dl0", Uplink: "ul0", Chunks: 64, RingSize: 16})
		if err != nil {
			return err
		}
		defer p.Close()
		if _, err := l.Exec("x", "ip", "link", "set", "ul0", "down"); err != nil {
			return err
		}
		if p.UL.Transmit([]xsk.Desc{{Addr: 0, Len: 60}}) != 1 {
			return fmt.Errorf("nothing queued")
		}
		if err := p.UL.Kick(); err == nil || !strings.Contains(err.Error(), "network is down") {
			return fmt.Errorf("Kick on a down link returned %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
