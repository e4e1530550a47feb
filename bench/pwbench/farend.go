package main

// The WireGuard cases' far end: an embedded wireguard-go (pwgate's own
// dataplane/wg Device and Tunnel) in wan, whose tunnel's "host" is a
// generator in memory. A stock wireguard-go there, fed through a raw
// socket and its kernel TUN, encrypted 20 to 40 k packets/s on the
// generator core: it, not the DUT, set the decap rows, and the injector
// counted what it dropped as the DUT's loss. From memory, in batches,
// with UDP sent by sendmmsg and GSO, the far end offers several times
// what the DUT can take.

import (
	"log/slog"
	"net/netip"
	"os"
	"sync"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/wg"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// farEnd is the far end's device and its generator.
type farEnd struct {
	dev *wg.Device
	gen *memGen
}

// startFarEnd starts the far end in wan: key, listening on wgPort, with
// the DUT (pub, at endpoint) as its peer.
func startFarEnd(l *lab.Lab, key, pub wg.Key, endpoint netip.Addr) (*farEnd, error) {
	f := &farEnd{gen: newMemGen()}
	err := l.Do("wan", func() error {
		// The tunnel's engine side is unused (no pseudowire peer set):
		// everything goes to and comes from the generator.
		t := wg.NewTunnel(xsk.NewFakeUMEM(64), wgTunMTU, f.gen)
		d, err := wg.NewDevice(t, wg.Config{PrivateKey: key, ListenPort: wgPort, Peers: []wg.PeerConfig{{
			PublicKey: pub, Endpoint: netip.AddrPortFrom(endpoint, wgPort),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(overlayDUT, 128)}, PersistentKeepalive: 25,
		}}}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		f.dev = d
		return err // NewDevice closed t on error
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (f *farEnd) close() { f.dev.Close() }

// memGen is a wg.HostTUN whose reads are the packets of the running case,
// in turn, a batch at a time, and whose writes are dropped.
type memGen struct {
	mu   sync.Mutex
	cond *sync.Cond
	pkts [][]byte // nil: paused
	next int
	done bool
}

func newMemGen() *memGen {
	g := &memGen{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// set makes pkts (a frame's packets, in order) what reads return; nil
// pauses the generator.
func (g *memGen) set(pkts [][]byte) {
	g.mu.Lock()
	g.pkts, g.next = pkts, 0
	g.mu.Unlock()
	g.cond.Broadcast()
}

func (g *memGen) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	g.mu.Lock()
	for g.pkts == nil && !g.done {
		g.cond.Wait()
	}
	if g.done {
		g.mu.Unlock()
		return 0, os.ErrClosed
	}
	pkts, next := g.pkts, g.next
	n := len(bufs) - len(bufs)%len(pkts) // whole frames only
	for i := 0; i < n; i++ {
		sizes[i] = copy(bufs[i][offset:], pkts[next])
		next = (next + 1) % len(pkts)
	}
	g.next = next
	g.mu.Unlock()
	return n, nil
}

func (g *memGen) Write(bufs [][]byte, offset int) (int, error) { return len(bufs), nil }

func (g *memGen) BatchSize() int { return 128 }

func (g *memGen) Close() error {
	g.mu.Lock()
	g.done = true
	g.mu.Unlock()
	g.cond.Broadcast()
	return nil
}

// farSource is the far end generating one case's packets.
type farSource struct {
	f      *farEnd
	pieces uint64
}

func (f *farEnd) start(pkts [][]byte) *farSource {
	f.gen.set(pkts)
	return &farSource{f: f, pieces: uint64(len(pkts))}
}

// sent returns the frames the far end sent: its UDP datagrams (handshakes
// and keepalives are few), a split frame's two counting once.
func (s *farSource) sent(*lab.Lab) (uint64, error) {
	var st stats.Snapshot
	s.f.dev.Snapshot(&st)
	return st.Value(stats.WGTxDatagrams) / s.pieces, nil
}

func (s *farSource) stop() error {
	s.f.gen.set(nil)
	return nil
}
