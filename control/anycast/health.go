// Package anycast is pwgate's anycast: the announcer (a VIP is announced
// over BGP while its health check passes, and drained with a worse MED and
// the GRACEFUL_SHUTDOWN community before it is withdrawn) and the
// forwarder's control side (the servers BGP names for each VIP, in a
// Maglev table the XDP program reads).
package anycast

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/pwgate/pwgate/control/config"
)

// Check is one health check; Run returns nil when the service is healthy.
// It must return by deadline (the check's timeout).
type Check interface {
	Run(deadline time.Time) error
	String() string
}

// HTTPCheck passes when a GET of URL answers Status. Plain http keeps
// its connection between checks when the server allows (HTTP/1.1
// keep-alive): a new TCP connection a check costs several times more CPU
// than the request, which counts with hundreds of VIPs checked every
// second. A kept connection that fails is replaced at once, within the
// same check. https goes through net/http. Run is called from one
// goroutine at a time.
type HTTPCheck struct {
	URL    string
	Status int
	addr   string // host:port, for plain http
	req    []byte
	conn   net.Conn
	br     *bufio.Reader
}

var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// Run implements Check.
func (c *HTTPCheck) Run(deadline time.Time) error {
	if c.addr != "" {
		return c.plain(deadline)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "pwgate-health/1")
	resp, err := noRedirects.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != c.Status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, c.Status)
	}
	return nil
}

func (c *HTTPCheck) plain(deadline time.Time) error {
	if c.conn != nil {
		err := c.exchange(deadline)
		if err == nil || !time.Now().Before(deadline) {
			return err
		}
		c.drop() // the kept connection went stale: a new one
	}
	d := net.Dialer{Deadline: deadline}
	conn, err := d.Dial("tcp", c.addr)
	if err != nil {
		return err
	}
	c.conn, c.br = conn, bufio.NewReaderSize(conn, 1024)
	return c.exchange(deadline)
}

// exchange sends the request on the kept connection and reads the answer:
// the status line, the headers (Content-Length and Connection: close
// matter), the body skipped. An answer it cannot skip closes the
// connection.
func (c *HTTPCheck) exchange(deadline time.Time) error {
	c.conn.SetDeadline(deadline)
	if _, err := c.conn.Write(c.req); err != nil {
		c.drop()
		return err
	}
	code, keep, err := readAnswer(c.br)
	if err != nil || !keep {
		c.drop()
	}
	if err != nil {
		return err
	}
	if code != c.Status {
		return fmt.Errorf("status %d, want %d", code, c.Status)
	}
	return nil
}

// readAnswer reads an HTTP/1.x answer's status line and headers and skips
// its body; keep says whether the connection can carry the next request
// (HTTP/1.1, no "Connection: close", a Content-Length up to 1 MiB skipped).
func readAnswer(br *bufio.Reader) (code int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, fmt.Errorf("no HTTP answer: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("not an HTTP answer: %q", line)
	}
	for _, b := range line[9:12] {
		if b < '0' || b > '9' {
			return 0, false, fmt.Errorf("not an HTTP answer: %q", line)
		}
		code = code*10 + int(b-'0')
	}
	keep, length := line[7] == '1', -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, fmt.Errorf("HTTP headers: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if n, err := strconv.Atoi(string(v)); err == nil && n >= 0 {
				length = n
			}
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				keep = false
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			keep = false // chunked: not worth skipping by hand
		}
	}
	if length < 0 || length > 1<<20 {
		keep = false
	} else if _, err := br.Discard(length); err != nil {
		keep = false
	}
	return code, keep, nil
}

// Close closes a kept connection.
func (c *HTTPCheck) Close() { c.drop() }

func (c *HTTPCheck) drop() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

func (c *HTTPCheck) String() string { return fmt.Sprintf("http %s status %d", c.URL, c.Status) }

// TCPCheck passes when a TCP connection to Addr (host:port) opens.
type TCPCheck struct{ Addr string }

// Run implements Check.
func (c *TCPCheck) Run(deadline time.Time) error {
	d := net.Dialer{Deadline: deadline}
	conn, err := d.Dial("tcp", c.Addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (c *TCPCheck) String() string { return "tcp " + c.Addr }

// ExecCheck passes when the command exits with Exit; it is killed when the
// timeout passes.
type ExecCheck struct {
	Argv []string
	Exit int
}

// Run implements Check.
func (c *ExecCheck) Run(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		return err
	}
	if code != c.Exit {
		return fmt.Errorf("exit %d, want %d", code, c.Exit)
	}
	return nil
}

func (c *ExecCheck) String() string {
	return fmt.Sprintf("exec %s exit %d", strings.Join(c.Argv, " "), c.Exit)
}

// ParseCheck reads a check as the configuration writes it: "http URL
// [STATUS]", "tcp HOST:PORT" or "exec COMMAND [ARGS…]" (with exit for the
// expected code); config.ParseCheck says what is valid.
func ParseCheck(kind, target string, want int) (Check, error) {
	s, err := config.ParseCheck(kind, target, want)
	if err != nil {
		return nil, err
	}
	return NewCheck(s), nil
}

// NewCheck returns the check s (valid: from config.ParseCheck) describes.
func NewCheck(s config.CheckSpec) Check {
	switch s.Kind {
	case "http":
		h := &HTTPCheck{URL: s.Target, Status: s.Want}
		if u, err := url.Parse(s.Target); err == nil && u.Scheme == "http" {
			h.addr = u.Host
			if u.Port() == "" {
				h.addr = net.JoinHostPort(u.Hostname(), "80")
			}
			h.req = []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: pwgate-health/1\r\n\r\n")
		}
		return h
	case "tcp":
		return &TCPCheck{Addr: s.Target}
	}
	return &ExecCheck{Argv: strings.Fields(s.Target), Exit: s.Want}
}

// run runs c once within timeout.
func run(c Check, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	err := c.Run(deadline)
	if err != nil && !time.Now().Before(deadline) {
		return fmt.Errorf("no answer within %v", timeout)
	}
	return err
}
