package xsk_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bench/lab"
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
		// The uplink program passes everything that is not pseudowire, so
		// only the downlink socket is exercised for RX here.
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
		var descs [4]xsk.Desc
		n := 0
		for deadline := time.Now().Add(2 * time.Second); n == 0 && time.Now().Before(deadline); {
			if err := p.DL.Wait(100 * time.Millisecond); err != nil {
				return err
			}
			n = p.DL.Receive(descs[:])
		}
		if n != 1 {
			return fmt.Errorf("received %d frames, want 1", n)
		}
		d := descs[0]
		if off := d.Addr - p.UMEM.Base(d.Addr); off != xsk.RxHeadroom {
			return fmt.Errorf("frame at offset %d in its chunk, want %d", off, xsk.RxHeadroom)
		}
		got := p.UMEM.Frame(d.Addr, d.Len)
		if !bytes.Equal(got, frame) {
			return fmt.Errorf("received %x", got)
		}
		// Prepend a 16-byte header in place and send on the uplink.
		hdr := []byte{0x02, 0xcc, 0, 0, 0, 3, 0x02, 0xdd, 0, 0, 0, 4, 0x96, 0xfc, 0, 0}
		copy(p.UMEM.Mem[d.Addr-16:], hdr)
		if p.UL.Transmit([]xsk.Desc{{Addr: d.Addr - 16, Len: d.Len + 16}}) != 1 {
			return fmt.Errorf("transmit queued nothing")
		}
		if err := p.UL.Kick(); err != nil {
			return err
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
