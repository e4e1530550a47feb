package control

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pwgate/pwgate/dataplane/stats"
)

// Status is what "pwctl status" shows.
type Status struct {
	Mode      string    `json:"mode"`
	Downlink  string    `json:"downlink"`
	Uplink    string    `json:"uplink"`
	Peer      string    `json:"peer"`
	Local     string    `json:"local,omitempty"`
	Via       string    `json:"via,omitempty"`
	NextHop   string    `json:"next_hop"`
	Ready     bool      `json:"ready"`
	NotReady  string    `json:"not_ready,omitempty"`
	Poll      string    `json:"poll"`
	Config    string    `json:"config"`
	Started   time.Time `json:"started"`
	Uptime    float64   `json:"uptime_seconds"`
	LastBPDU  BPDUTimes `json:"last_bpdu"`
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	UplinkMTU int       `json:"uplink_mtu"`
	GCCycles  uint64    `json:"gc_cycles"` // Go garbage collections since start: 0 in steady state
}

// BPDUTimes is when the last BPDU was seen in each direction; nil: never.
type BPDUTimes struct {
	UL *time.Time `json:"ul"`
	DL *time.Time `json:"dl"`
}

// Version is set by the linker (-X) for releases.
var Version = "dev"

func (d *Daemon) publishStatus() {
	p := d.eng.Params()
	s := &Status{Mode: d.cfg.Mode.String(), Downlink: d.cfg.Downlink, Uplink: d.cfg.Uplink, Peer: p.PeerString(),
		NextHop: p.NextHop().String(), Ready: p.NotReady == "", NotReady: p.NotReady, Poll: d.cfg.Poll.String(),
		Config: d.cfg.Source, Started: d.started, PID: os.Getpid(), Version: Version, UplinkMTU: p.Encap.MTU}
	if p.Local().IsValid() {
		s.Local = p.Local().String()
	}
	if d.view.Via.IsValid() {
		s.Via = d.view.Via.String()
	}
	d.status.Store(s)
}

var gcSample = []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
var gcMu sync.Mutex

// gcCycles returns the number of garbage collections so far, without
// stopping the world.
func gcCycles() uint64 {
	gcMu.Lock()
	defer gcMu.Unlock()
	metrics.Read(gcSample)
	if gcSample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return gcSample[0].Value.Uint64()
}

// Status returns the daemon's status with the counters' BPDU times.
func (d *Daemon) Status() Status {
	s := *d.status.Load()
	s.Uptime = time.Since(s.Started).Seconds()
	s.GCCycles = gcCycles()
	snap := d.Snapshot()
	for _, b := range []struct {
		c   stats.Counter
		dst **time.Time
	}{{stats.ULLastBPDU, &s.LastBPDU.UL}, {stats.DLLastBPDU, &s.LastBPDU.DL}} {
		if ns := snap[b.c]; ns != 0 {
			t := time.Unix(0, int64(ns))
			*b.dst = &t
		}
	}
	return s
}

// Source is what the statistics sockets report on: the running Daemon, or
// a fake in tests. Both methods are called from the sockets' goroutines.
type Source interface {
	Snapshot() stats.Snapshot
	Status() Status
}

var _ Source = (*Daemon)(nil)

// Requests of the statistics socket: a line with one of these words; the
// answer is one JSON document, then the connection closes.
const (
	ReqStats  = "stats"  // the counters, as an object in counter order
	ReqStatus = "status" // Status
)

// MarshalCounters renders s as a JSON object in counter order, with
// timestamps in Unix seconds.
func MarshalCounters(s *stats.Snapshot) []byte {
	b := []byte{'{'}
	for c := stats.Counter(0); c < stats.NumCounters; c++ {
		if c > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, c.Name())
		b = append(b, ':')
		b = strconv.AppendUint(b, s.Value(c), 10)
	}
	return append(b, '}', '\n')
}

// serve starts the statistics endpoints of c.
func (d *Daemon) serve(c *Config) error {
	srv, err := ServeStats(c.StatsSocket, c.StatsGroup, d)
	if err != nil {
		return fmt.Errorf("stats.socket: %w", err)
	}
	d.servers = append(d.servers, srv)
	if c.GPWSocket != "" {
		srv, err := ServeGPW(c.GPWSocket, c.StatsGroup, d)
		if err != nil {
			return fmt.Errorf("stats.gpwstats_socket: %w", err)
		}
		d.servers = append(d.servers, srv)
	}
	if c.Prometheus != "" {
		srv, err := ServePrometheus(c.Prometheus, d)
		if err != nil {
			return fmt.Errorf("stats.prometheus: %w", err)
		}
		d.servers = append(d.servers, srv)
	}
	return nil
}

// ServeStats answers pwctl's requests about src on the unix socket path
// (made 0660, owned by group if not ""), until closed.
func ServeStats(path, group string, src Source) (io.Closer, error) {
	ln, err := listenUnix(path, group)
	if err != nil {
		return nil, err
	}
	return startServer(ln, func(c net.Conn) { answer(c, src) }), nil
}

// ServeGPW answers the reference's binary protocol about src on the unix
// socket path, until closed.
func ServeGPW(path, group string, src Source) (io.Closer, error) {
	ln, err := listenUnix(path, group)
	if err != nil {
		return nil, err
	}
	return startServer(ln, func(c net.Conn) { answerGPW(c, src) }), nil
}

// listenUnix listens on path, made 0660 and owned by group if given. A
// socket file left by a dead daemon is replaced; a live one is an error.
func listenUnix(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is in use: is another pwgated running?", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			ln.Close()
			return nil, err
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return ln, nil
}

// server answers connections on a listener until closed.
type server struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

func startServer(ln net.Listener, handle func(net.Conn)) *server {
	s := &server{ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = true
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				handle(c)
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s
}

// Close stops accepting, closes open connections, removes the socket file
// and waits for the handlers.
func (s *server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// answer serves pwctl: one request line, one JSON answer.
func answer(c net.Conn, src Source) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	switch strings.TrimSpace(line) {
	case ReqStats:
		s := src.Snapshot()
		c.Write(MarshalCounters(&s))
	case ReqStatus:
		json.NewEncoder(c).Encode(src.Status())
	default:
		fmt.Fprintf(c, "{\"error\":%q}\n", "unknown request (want stats or status)")
	}
}

// answerGPW speaks the reference's binary protocol: for every 4-byte
// request, the twelve reference counters as host-order uint64s.
func answerGPW(c net.Conn, src Source) {
	var req [4]byte
	for {
		c.SetDeadline(time.Now().Add(time.Minute))
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return
		}
		s := src.Snapshot()
		if _, err := c.Write(EncodeGPW(&s)); err != nil {
			return
		}
	}
}

// EncodeGPW returns the reference's 96-byte answer for s: ul_rx_packets,
// ul_rx_bytes, ul_rx_bpdus, ul_tx_packets, ul_tx_bytes, ul_tx_errors,
// dl_rx_packets, dl_rx_bytes, dl_rx_bpdus, dl_tx_packets, dl_tx_bytes,
// dl_tx_errors, each a uint64 in host byte order.
func EncodeGPW(s *stats.Snapshot) []byte {
	b := make([]byte, 0, 8*stats.NumReference)
	for _, v := range s.Reference() {
		b = binary.NativeEndian.AppendUint64(b, v)
	}
	return b
}
