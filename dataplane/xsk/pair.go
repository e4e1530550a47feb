package xsk

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bpf"
)

// Defaults of Config.
const (
	DefaultChunks   = 4096 // 16 MiB of UMEM
	DefaultRingSize = 1024
)

// Config says which interfaces a Pair serves and how.
type Config struct {
	Downlink, Uplink string
	// Queue is the RX queue served on both interfaces (0 by default). The
	// hardware profiles reduce the NICs to one queue.
	Queue int
	// XDPMode is native (default) or generic XDP.
	XDPMode bpf.AttachMode
	// Chunks is the number of UMEM chunks, a power of two; RingSize the
	// entries of each ring, a power of two. Zero means the default.
	Chunks, RingSize int
}

// Pair is the downlink and uplink sockets over one UMEM, with the XDP
// programs attached to both interfaces.
type Pair struct {
	UMEM     *UMEM
	DL, UL   *Socket
	BPF      *bpf.Objects
	Warnings []string // conditions that work but cost traffic or speed
	links    []link.Link
}

// Open loads and attaches the XDP programs and opens both sockets. On error
// everything it did is undone.
func Open(c Config) (_ *Pair, err error) {
	if c.Chunks == 0 {
		c.Chunks = DefaultChunks
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.RingSize&(c.RingSize-1) != 0 || 2*c.RingSize > c.Chunks {
		return nil, fmt.Errorf("ring size %d must be a power of two and at most half of %d chunks", c.RingSize, c.Chunks)
	}
	if c.Downlink == c.Uplink {
		return nil, fmt.Errorf("downlink and uplink are the same interface %s", c.Downlink)
	}
	dl, err := net.InterfaceByName(c.Downlink)
	if err != nil {
		return nil, fmt.Errorf("downlink %s: %w", c.Downlink, err)
	}
	ul, err := net.InterfaceByName(c.Uplink)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: %w", c.Uplink, err)
	}
	p := &Pair{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.BPF, err = bpf.Load(); err != nil {
		return nil, err
	}
	for _, a := range []struct {
		ifname string
		attach func(string, bpf.AttachMode) (link.Link, error)
	}{{c.Downlink, p.BPF.AttachDownlink}, {c.Uplink, p.BPF.AttachUplink}} {
		l, err := a.attach(a.ifname, c.XDPMode)
		if err != nil {
			return nil, err
		}
		p.links = append(p.links, l)
		if n := rxQueues(a.ifname); n > 1 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s has %d RX queues but only queue %d is served; frames hashed to the others are dropped (ethtool -L %s combined 1)", a.ifname, n, c.Queue, a.ifname))
		}
	}
	if p.UMEM, err = NewUMEM(c.Chunks); err != nil {
		return nil, err
	}
	flags := uint16(unix.XDP_USE_NEED_WAKEUP)
	if p.DL, err = newSocket(p.UMEM, c.Downlink, dl.Index, c.Queue, uint32(c.RingSize), flags, nil); err != nil {
		return nil, fmt.Errorf("downlink %s: %w", c.Downlink, err)
	}
	if p.UL, err = newSocket(p.UMEM, c.Uplink, ul.Index, c.Queue, uint32(c.RingSize), 0, p.DL); err != nil {
		return nil, fmt.Errorf("uplink %s: %w", c.Uplink, err)
	}
	if err = p.BPF.RegisterDownlink(c.Queue, p.DL.FD()); err != nil {
		return nil, err
	}
	if err = p.BPF.RegisterUplink(c.Queue, p.UL.FD()); err != nil {
		return nil, err
	}
	return p, nil
}

// rxQueues returns the number of RX queues of ifname, 0 if unknown.
func rxQueues(ifname string) int {
	m, _ := filepath.Glob(filepath.Join("/sys/class/net", ifname, "queues", "rx-*"))
	return len(m)
}

// Close detaches the programs and closes the sockets and the UMEM. No data
// path goroutine may be running.
func (p *Pair) Close() error {
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	for _, s := range []*Socket{p.UL, p.DL} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	if p.UMEM != nil {
		errs = append(errs, p.UMEM.Close())
	}
	if p.BPF != nil {
		errs = append(errs, p.BPF.Close())
	}
	return errors.Join(errs...)
}
