package xsk_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// newLab makes namespace "x" holding dl0/ul0 (the ports under test) and
// their veth peers dlp/ulp.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	if testing.Short() || !lab.IsRoot() {
		t.Skip("privileged test: needs root for network namespaces and XDP, and not -short")
	}
	l := lab.New(fmt.Sprintf("pwx%d-", os.Getpid()))
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := l.AddNS("x"); err != nil {
		t.Fatal(err)
	}
	for _, v := range [][2]string{{"dl0", "dlp"}, {"ul0", "ulp"}} {
		if err := l.Veth("x", v[0], "x", v[1], 0); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// rawSocket opens an AF_PACKET socket on ifname (inside the lab thread).
func rawSocket(ifname string) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, err
	}
	ifi, err := netInterface(ifname)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	tv := unix.Timeval{Sec: 2}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestPairForwardsInSharedUMEM sends a frame into the downlink, finds it in
// the UMEM xsk.RxHeadroom bytes into a chunk, transmits it in place with a
// header written in front on the uplink, and reads it on the other side.
func TestPairForwardsInSharedUMEM(t *testing.T) {
	l := newLab(t)
	err := l.Do("x", func() error {
		p, err := xsk.Open(xsk.Config{Downlink: "dl0", Uplink: "ul0", Chunks: 64, RingSize: 16})
		if err != nil {
			return err
		}
		defer p.Close()
		if p.ZeroCopy() {
			return fmt.Errorf("veth bound in zero-copy mode")
		}
		// The downlink program steers every frame to the downlink socket;
		// only the downlink socket is exercised for RX here.
		o, err := bpf.Load(bpf.ModeNone, false, 0)
		if err != nil {
			return err
		}
		defer o.Close()
		if err := o.RegisterDownlink(0, p.DL.FD()); err != nil {
			return err
		}
		ln, err := o.AttachDownlink("dl0", bpf.Native)
		if err != nil {
			return err
		}
		defer ln.Close()
		addrs := make([]uint64, 16)
		for i := range addrs {
			addrs[i] = uint64(i) * xsk.ChunkSize
		}
		if n := p.DL.Fill(addrs); n != 16 {
			return fmt.Errorf("filled %d of 16", n)
		}
		in, err := rawSocket("dlp")
		if err != nil {
			return err
		}
		defer unix.Close(in)
		out, err := rawSocket("ulp")
		if err != nil {
			return err
		}
		defer unix.Close(out)
		frame := append([]byte{0x02, 0xbb, 0, 0, 0, 2, 0x02, 0xaa, 0, 0, 0, 1, 0x88, 0xb5}, bytes.Repeat([]byte{0x5a}, 100)...)
		if _, err := unix.Write(in, frame); err != nil {
			return fmt.Errorf("inject: %w", err)
		}
		// The frame, among whatever else the kernel sends on a new link
		// (neighbour discovery).
		var descs [4]xsk.Desc
		var d xsk.Desc
		found := false
		for deadline := time.Now().Add(2 * time.Second); !found && time.Now().Before(deadline); {
			if e := p.DL.Wait(100 * time.Millisecond); e != 0 {
				return e
			}
			n := p.DL.Receive(descs[:])
			for _, x := range descs[:n] {
				if bytes.Equal(p.UMEM.Frame(x.Addr, x.Len), frame) {
					d, found = x, true
				}
			}
		}
		if !found {
			return fmt.Errorf("frame not received")
		}
		if off := d.Addr - p.UMEM.Base(d.Addr); off != xsk.RxHeadroom {
			return fmt.Errorf("frame at offset %d in its chunk, want %d", off, xsk.RxHeadroom)
		}
		// Prepend a 16-byte header in place and send on the uplink.
		hdr := []byte{0x02, 0xcc, 0, 0, 0, 3, 0x02, 0xdd, 0, 0, 0, 4, 0x96, 0xfc, 0, 0}
		copy(p.UMEM.Mem[d.Addr-16:], hdr)
		if p.UL.Transmit([]xsk.Desc{{Addr: d.Addr - 16, Len: d.Len + 16}}) != 1 {
			return fmt.Errorf("transmit queued nothing")
		}
		if e := p.UL.Kick(); e != 0 {
			return e
		}
		buf := make([]byte, 4096)
		for {
			m, err := unix.Read(out, buf)
			if err != nil {
				return fmt.Errorf("read uplink peer: %w", err)
			}
			if m >= 14 && buf[12] == 0x96 && buf[13] == 0xfc {
				if !bytes.Equal(buf[:m], append(hdr, frame...)) {
					return fmt.Errorf("uplink peer got %x", buf[:m])
				}
				break
			}
		}
		var comp [4]uint64
		for deadline := time.Now().Add(time.Second); ; {
			if c := p.UL.Complete(comp[:]); c == 1 {
				if comp[0] != d.Addr-16 {
					return fmt.Errorf("completion %#x, want %#x", comp[0], d.Addr-16)
				}
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no completion")
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func netInterface(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
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
		if e := p.UL.Kick(); e != unix.ENETDOWN {
			return fmt.Errorf("Kick on a down link returned %v, want ENETDOWN", e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBindModes: veth has no AF_XDP zero-copy, so auto falls back to copy
// mode and zerocopy refuses with ErrNoZeroCopy.
func TestBindModes(t *testing.T) {
	l := newLab(t)
	err := l.Do("x", func() error {
		for _, m := range []xsk.BindMode{xsk.BindAuto, xsk.BindCopy} {
			p, err := xsk.Open(xsk.Config{Downlink: "dl0", Uplink: "ul0", Chunks: 64, RingSize: 16, Bind: m})
			if err != nil {
				return fmt.Errorf("%v: %w", m, err)
			}
			zc := p.ZeroCopy() || p.UL.ZeroCopy()
			p.Close()
			if zc {
				return fmt.Errorf("%v: bound veth in zero-copy mode", m)
			}
		}
		p, err := xsk.Open(xsk.Config{Downlink: "dl0", Uplink: "ul0", Chunks: 64, RingSize: 16, Bind: xsk.BindZeroCopy})
		if err == nil {
			p.Close()
			return fmt.Errorf("zerocopy bind on veth succeeded")
		}
		if !errors.Is(err, xsk.ErrNoZeroCopy) || !strings.Contains(err.Error(), "dl0") {
			return fmt.Errorf("zerocopy bind on veth: %v, want ErrNoZeroCopy naming dl0", err)
		}
		// Nothing is left bound: a copy-mode socket can take the queue.
		p, err = xsk.Open(xsk.Config{Downlink: "dl0", Uplink: "ul0", Chunks: 64, RingSize: 16, Bind: xsk.BindCopy})
		if err != nil {
			return fmt.Errorf("after the refused zero-copy bind: %w", err)
		}
		return p.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}
