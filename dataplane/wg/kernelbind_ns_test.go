package wg_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/dataplane/wg"
)

// transport is a WireGuard transport message of n bytes.
func transport(n int, fill byte) []byte {
	m := bytes.Repeat([]byte{fill}, n)
	copy(m, []byte{4, 0, 0, 0})
	return m
}

// Runs of datagrams of one length leave as one message (UDP GSO) and
// arrive as the datagrams they were; runs longer than the path's MTU,
// which GSO refuses, leave one by one (fragmented), and GSO stays on.
func TestKernelBindGSO(t *testing.T) {
	if testing.Short() || !lab.IsRoot() {
		t.Skip("privileged test: needs root for network namespaces, and not -short")
	}
	l := lab.New(fmt.Sprintf("pwkb%d-", os.Getpid()))
	t.Cleanup(func() { l.Close() })
	if err := l.AddNS("x", "y"); err != nil {
		t.Fatal(err)
	}
	if err := l.Veth("x", "a0", "y", "b0", 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Script("x", "ip addr add 2001:db8:9::1/64 dev a0 nodad"); err != nil {
		t.Fatal(err)
	}
	if err := l.Script("y", "ip addr add 2001:db8:9::2/64 dev b0 nodad"); err != nil {
		t.Fatal(err)
	}
	var b *wg.KernelBind
	var p *net.UDPConn
	if err := l.Do("x", func() (err error) { b = wg.NewKernelBind(); _, _, err = b.Open(0); return }); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := l.Do("y", func() (err error) {
		p, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP("2001:db8:9::2")})
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetDeadline(time.Now().Add(5 * time.Second))
	ep, err := b.ParseEndpoint(p.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	run := func(n, size, tail int) (msgs [][]byte) {
		for i := 0; i < n; i++ {
			msgs = append(msgs, transport(size, byte(i)))
		}
		if tail > 0 {
			msgs = append(msgs, transport(tail, 0xee)) // ends the run
		}
		return msgs
	}
	for _, c := range []struct {
		name string
		msgs [][]byte
	}{
		{"runs", append(run(10, 1000, 500), run(3, 1200, 0)...)},
		{"longer than the MTU", run(4, 1600, 1550)},
	} {
		msgs := c.msgs
		if err := b.Send(msgs, ep); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		buf := make([]byte, 2048)
		for i, m := range msgs {
			n, err := p.Read(buf)
			if err != nil {
				t.Fatalf("%s: datagram %d: %v", c.name, i, err)
			}
			if !bytes.Equal(buf[:n], m) {
				t.Fatalf("%s: datagram %d: %d bytes, want %d", c.name, i, n, len(m))
			}
		}
		if b.GSOOff() {
			t.Errorf("%s: GSO turned off", c.name)
		}
	}
}
