package xsk

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Defaults of Config.
const (
	DefaultChunks   = 4096 // 16 MiB of UMEM
	DefaultRingSize = 1024
)

// BindMode says whether sockets are bound in zero-copy or copy mode.
type BindMode int

// Bind modes.
const (
	// BindAuto tries zero-copy and falls back to copy mode when a driver
	// does not offer it.
	BindAuto BindMode = iota
	// BindZeroCopy refuses to run without zero-copy.
	BindZeroCopy
	// BindCopy always copies (the kernel copies frames between its buffers
	// and the UMEM).
	BindCopy
)

// String returns "auto", "zerocopy" or "copy".
func (m BindMode) String() string {
	return [...]string{"auto", "zerocopy", "copy"}[m]
}

// ErrNoZeroCopy is returned (wrapped) by Open with BindZeroCopy when a
// driver does not offer AF_XDP zero-copy.
var ErrNoZeroCopy = errors.New("the driver offers no AF_XDP zero-copy")

// Config says which interfaces a Pair serves and how.
type Config struct {
	// Downlink is required; Uplink may be empty for a data path whose
	// other side is not an AF_XDP port.
	Downlink, Uplink string
	// Queue is the RX queue served on both interfaces (0 by default). The
	// hardware profiles reduce the NICs to one queue.
	Queue int
	Bind  BindMode
	// Chunks is the number of UMEM chunks, a power of two; RingSize the
	// entries of each ring, a power of two. Zero means the default.
	Chunks, RingSize int
}

// Pair is the downlink and uplink sockets over one UMEM. It does not
// attach XDP programs: frames reach the sockets once a program redirects
// them (register FD() in an XSKMAP).
type Pair struct {
	UMEM     *UMEM
	DL, UL   *Socket  // UL is nil without Config.Uplink
	Warnings []string // conditions that work but cost traffic or speed
}

// ZeroCopy reports whether the sockets were bound in zero-copy mode.
func (p *Pair) ZeroCopy() bool { return p.DL.ZeroCopy() }

// Open opens the sockets. With BindAuto it binds in zero-copy mode and, if
// a driver refuses, closes everything and binds in copy mode. On error
// everything it did is undone.
func Open(c Config) (*Pair, error) {
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
	switch c.Bind {
	case BindCopy:
		return open(c, unix.XDP_COPY)
	case BindZeroCopy:
		p, err := open(c, unix.XDP_ZEROCOPY)
		if isNoZeroCopy(err) {
			return nil, fmt.Errorf("%w: %w", ErrNoZeroCopy, err)
		}
		return p, err
	}
	p, err := open(c, unix.XDP_ZEROCOPY)
	if isNoZeroCopy(err) {
		return open(c, unix.XDP_COPY)
	}
	return p, err
}

// isNoZeroCopy reports whether err is a zero-copy bind the driver refused.
func isNoZeroCopy(err error) bool {
	var b *BindError
	return errors.As(err, &b) && b.Mode == "zero-copy" && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL))
}

func open(c Config, mode uint16) (_ *Pair, err error) {
	p := &Pair{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	ifs := []string{c.Downlink}
	if c.Uplink != "" {
		ifs = append(ifs, c.Uplink)
	}
	idx := make([]int, len(ifs))
	for i, name := range ifs {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		idx[i] = ifi.Index
		if n := rxQueues(name); n > 1 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s has %d RX queues but only queue %d is served; frames hashed to the others are dropped (ethtool -L %s combined 1)", name, n, c.Queue, name))
		}
	}
	if p.UMEM, err = NewUMEM(c.Chunks); err != nil {
		return nil, err
	}
	if p.DL, err = newSocket(p.UMEM, c.Downlink, idx[0], c.Queue, uint32(c.RingSize), unix.XDP_USE_NEED_WAKEUP|mode, nil); err != nil {
		return nil, fmt.Errorf("downlink: %w", err)
	}
	if c.Uplink != "" {
		if p.UL, err = newSocket(p.UMEM, c.Uplink, idx[1], c.Queue, uint32(c.RingSize), 0, p.DL); err != nil {
			return nil, fmt.Errorf("uplink: %w", err)
		}
	}
	return p, nil
}

// rxQueues returns the number of RX queues of ifname, 0 if unknown.
func rxQueues(ifname string) int {
	m, _ := filepath.Glob(filepath.Join("/sys/class/net", ifname, "queues", "rx-*"))
	return len(m)
}

// Close closes the sockets and the UMEM. No data path goroutine may be
// running.
func (p *Pair) Close() error {
	var errs []error
	for _, s := range []*Socket{p.UL, p.DL} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	if p.UMEM != nil {
		errs = append(errs, p.UMEM.Close())
	}
	return errors.Join(errs...)
}
