// Package statsrv serves what pwgated reports: the statistics socket
// (pwctl, the plugins), the reference's gpwstats protocol, and Prometheus,
// all over one Source (the daemon, or a fake in tests).
package statsrv

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// Source is what the statistics sockets report on: the running Daemon, or
// a fake in tests. Its methods are called from the sockets' goroutines.
type Source interface {
	Snapshot() stats.Snapshot
	Status() client.Status
	// FDB returns the VXLAN forwarding database (nil: not a VTEP).
	FDB() []client.FDBEntry
}

// Serve starts the statistics endpoints c configures for src: the
// socket, and the reference protocol's socket, Prometheus and the status
// page if set. On
// error the ones started are closed. Refused control requests are logged
// to log.
func Serve(c *config.Config, src Source, log *slog.Logger) (servers []io.Closer, err error) {
	defer func() {
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			servers = nil
		}
	}()
	srv, err := serveStatsSocket(c.StatsSocket, c.StatsGroup, &statsServer{src: src, log: log, peerUID: peerCredUID})
	if err != nil {
		return nil, fmt.Errorf("stats.socket: %w", err)
	}
	servers = append(servers, srv)
	if c.GPWSocket != "" {
		srv, err := ServeGPW(c.GPWSocket, c.StatsGroup, src)
		if err != nil {
			return servers, fmt.Errorf("stats.gpwstats_socket: %w", err)
		}
		servers = append(servers, srv)
	}
	if c.Prometheus != "" {
		srv, err := ServePrometheus(c.Prometheus, src)
		if err != nil {
			return servers, fmt.Errorf("stats.prometheus: %w", err)
		}
		servers = append(servers, srv)
	}
	if c.HTTP != "" {
		srv, err := ServePage(c.HTTP, src)
		if err != nil {
			return servers, fmt.Errorf("stats.http: %w", err)
		}
		servers = append(servers, srv)
	}
	return servers, nil
}

// ServeStats answers pwctl's requests about src on the unix socket path
// (made 0660, owned by group if not ""), until closed. Anyone who can
// open the socket may read; only root, or the user pwgated runs as, may
// change state (anycast drain and resume), as the peer's credentials
// (SO_PEERCRED) say. Refusals are logged to slog's default logger.
func ServeStats(path, group string, src Source) (io.Closer, error) {
	return serveStatsSocket(path, group, &statsServer{src: src, log: slog.Default(), peerUID: peerCredUID})
}

// serveStatsSocket is ServeStats with the server's logger and
// credential check given.
func serveStatsSocket(path, group string, s *statsServer) (io.Closer, error) {
	ln, err := listenUnix(path, group)
	if err != nil {
		return nil, err
	}
	return startServer(ln, s.answer), nil
}

// statsServer answers pwctl on the statistics socket.
type statsServer struct {
	src Source
	log *slog.Logger
	// peerUID returns the user id of the process at the other end of a
	// connection: peerCredUID, or a fake in tests.
	peerUID func(net.Conn) (int, error)
	// refused counts control requests refused for want of root.
	refused atomic.Uint64
	mu      sync.Mutex
	logged  time.Time // when a refusal was last logged
	since   uint64    // refused then
}

// peerCredUID returns the user id of the process that connected c, a unix
// socket connection, as the kernel recorded it at connect (SO_PEERCRED).
func peerCredUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, fmt.Errorf("not a unix socket connection (%T)", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return -1, fmt.Errorf("peer credentials: %w", credErr)
	}
	return int(cred.Uid), nil
}

// mayControl reports whether a peer of user id uid may change state: root,
// or the user pwgated runs as (who may signal or trace it anyway).
func mayControl(uid int) bool {
	return uid == 0 || uid == os.Geteuid()
}

// logEvery is how often refused control requests are logged at most (as
// often as the daemon logs the data path's failures).
const logEvery = 10 * time.Second

// refuse counts a control request refused and logs it, at most once per
// logEvery: the line says how many were refused since the last one.
func (s *statsServer) refuse(req string, uid int, why error) {
	total := s.refused.Add(1)
	s.mu.Lock()
	now := time.Now()
	if !s.logged.IsZero() && now.Sub(s.logged) < logEvery {
		s.mu.Unlock()
		return
	}
	n := total - s.since
	s.logged, s.since = now, total
	s.mu.Unlock()
	args := []any{"request", req, "uid", uid, "refused", n, "total", total}
	if why != nil {
		args = append(args, "credentials", why.Error())
	}
	s.log.Warn("stats socket: control request refused: needs root", args...)
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
// socket file left by a dead daemon is replaced; a live socket is an
// error, and so is anything at path that is not a socket: a wrong path in
// the configuration must not delete a file.
func listenUnix(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	case fi.Mode()&os.ModeSocket == 0:
		return nil, fmt.Errorf("%s exists and is not a socket: refusing to replace it", path)
	default:
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use: is another pwgated running?", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
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

// answer serves pwctl: one request line, one JSON answer. The peer's
// credentials are read once, before the request.
func (s *statsServer) answer(c net.Conn) {
	src := s.src
	c.SetDeadline(time.Now().Add(5 * time.Second))
	uid, uidErr := s.peerUID(c)
	lr := &io.LimitedReader{R: c, N: 256} // a request line
	br := bufio.NewReader(lr)
	line, err := br.ReadString('\n')
	if err != nil && line == "" {
		return
	}
	req := strings.TrimSpace(line)
	if verb, ok := strings.CutPrefix(req, client.ReqAnycast); ok {
		s.answerAnycast(c, strings.Fields(verb), uid, uidErr)
		return
	}
	if req == client.ReqConfig {
		lr.N += maxConfigRequest
		s.answerConfig(c, br, lr, uid, uidErr)
		return
	}
	switch req {
	case client.ReqStats:
		s := src.Snapshot()
		c.Write(client.MarshalCounters(&s))
	case client.ReqStatus:
		json.NewEncoder(c).Encode(src.Status())
	case client.ReqFDB:
		if f := src.FDB(); f != nil {
			json.NewEncoder(c).Encode(f)
		} else {
			fmt.Fprintf(c, "{\"error\":%q}\n", "not a VXLAN tunnel end (mode: vxlan)")
		}
	default:
		fmt.Fprintf(c, "{\"error\":%q}\n", "unknown request (want stats, status, fdb or anycast)")
	}
}

// ConfigSource is a Source whose configuration file pwctl config changes.
type ConfigSource interface {
	Config(client.ConfigRequest) client.ConfigAnswer
}

// maxConfigRequest bounds a config request's JSON: the file, each byte
// escaped at worst as \u00XX, and the other fields.
const maxConfigRequest = 6*client.MaxConfigFile + 4096

// answerConfig answers "config" and the JSON request on the next line, for
// root only: the file is the box's configuration, and a change reloads it.
func (s *statsServer) answerConfig(c net.Conn, br *bufio.Reader, lr *io.LimitedReader, uid int, uidErr error) {
	fail := func(why string) { json.NewEncoder(c).Encode(client.ConfigAnswer{Error: why}) }
	cs, ok := s.src.(ConfigSource)
	switch {
	case !ok:
		fail("this pwgated cannot change its configuration")
		return
	case uidErr != nil || !mayControl(uid):
		s.refuse(client.ReqConfig, uid, uidErr)
		fail(fmt.Sprintf("uid %d may only read: pwctl config is for root", uid))
		return
	}
	body, err := br.ReadBytes('\n')
	if err != nil && (lr.N == 0 || !errors.Is(err, io.EOF) || len(body) == 0) {
		fail(fmt.Sprintf("the request is cut short or larger than %d bytes (the file at most %d)", maxConfigRequest, client.MaxConfigFile))
		return
	}
	var req client.ConfigRequest
	if err := json.Unmarshal(body, &req); err != nil {
		fail("bad config request: " + err.Error())
		return
	}
	c.SetDeadline(time.Now().Add(time.Minute)) // a reload may take a while
	json.NewEncoder(c).Encode(cs.Config(req))
}

// AnycastSource is a Source that may run anycast.
type AnycastSource interface {
	// Anycast returns the anycast state; nil: no anycast section.
	Anycast() *client.Anycast
	Control(verb, prefix string) error
}

// answerAnycast answers "anycast" with the anycast state and "anycast
// drain|resume PREFIX" with {} once done, if the peer (uid, or uidErr if
// its credentials could not be read) may change state.
func (s *statsServer) answerAnycast(c net.Conn, args []string, uid int, uidErr error) {
	a, ok := s.src.(AnycastSource)
	var st *client.Anycast
	if ok {
		st = a.Anycast()
	}
	switch {
	case st == nil:
		fmt.Fprintf(c, "{\"error\":%q}\n", "this pwgated runs no anycast (no anycast section)")
	case len(args) == 0:
		json.NewEncoder(c).Encode(st)
	case len(args) != 2:
		fmt.Fprintf(c, "{\"error\":%q}\n", "want: anycast drain|resume PREFIX")
	case uidErr != nil || !mayControl(uid):
		s.refuse(client.ReqAnycast+" "+strings.Join(args, " "), uid, uidErr)
		why := fmt.Sprintf("uid %d may only read", uid)
		if uidErr != nil {
			why = fmt.Sprintf("cannot tell who is asking (%v)", uidErr)
		}
		fmt.Fprintf(c, "{\"error\":%q}\n", fmt.Sprintf("anycast %s needs root: %s; run it as root (sudo pwctl anycast %s PREFIX)", args[0], why, args[0]))
	default:
		if err := a.Control(args[0], args[1]); err != nil {
			fmt.Fprintf(c, "{\"error\":%q}\n", err.Error())
			return
		}
		c.Write([]byte("{}\n"))
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
		if _, err := c.Write(client.EncodeGPW(&s)); err != nil {
			return
		}
	}
}
