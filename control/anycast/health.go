// Package anycast is pwgate's anycast: the announcer (a VIP is announced
// over BGP while its health check passes, and drained with a worse MED and
// the GRACEFUL_SHUTDOWN community before it is withdrawn) and the
// forwarder's control side (the servers BGP names for each VIP, in a
// Maglev table the XDP program reads).
package anycast

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"
)

// Check is one health check; Run returns nil when the service is healthy.
// It must return when ctx ends (the check's timeout).
type Check interface {
	Run(ctx context.Context) error
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
func (c *HTTPCheck) Run(ctx context.Context) error {
	if c.addr != "" {
		return c.plain(ctx)
	}
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

func (c *HTTPCheck) plain(ctx context.Context) error {
	if c.conn != nil {
		err := c.exchange(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		c.drop() // the kept connection went stale: a new one
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	c.conn, c.br = conn, bufio.NewReaderSize(conn, 512)
	return c.exchange(ctx)
}

// exchange sends the request on the kept connection and reads the answer.
func (c *HTTPCheck) exchange(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	}
	if _, err := c.conn.Write(c.req); err != nil {
		c.drop()
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.drop()
		return fmt.Errorf("no HTTP answer: %w", err)
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil || resp.Close {
		c.drop()
	}
	if resp.StatusCode != c.Status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, c.Status)
	}
	return nil
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
func (c *TCPCheck) Run(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
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
func (c *ExecCheck) Run(ctx context.Context) error {
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
// expected code).
func ParseCheck(kind, target string, want int) (Check, error) {
	switch kind {
	case "http":
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q is not an http:// or https:// URL", target)
		}
		if want == 0 {
			want = 200
		}
		if want < 100 || want > 599 {
			return nil, fmt.Errorf("status %d is not an HTTP status", want)
		}
		h := &HTTPCheck{URL: target, Status: want}
		if u.Scheme == "http" {
			h.addr = u.Host
			if u.Port() == "" {
				h.addr = net.JoinHostPort(u.Hostname(), "80")
			}
			h.req = []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: pwgate-health/1\r\n\r\n")
		}
		return h, nil
	case "tcp":
		host, port, err := net.SplitHostPort(target)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%q is not HOST:PORT", target)
		}
		return &TCPCheck{Addr: target}, nil
	case "exec":
		argv := strings.Fields(target)
		if len(argv) == 0 {
			return nil, fmt.Errorf("exec: no command")
		}
		if _, err := exec.LookPath(argv[0]); err != nil {
			return nil, fmt.Errorf("exec: %v", err)
		}
		if want < 0 || want > 255 {
			return nil, fmt.Errorf("exit code %d is not 0 to 255", want)
		}
		return &ExecCheck{Argv: argv, Exit: want}, nil
	}
	return nil, fmt.Errorf("unknown check %q (want http, tcp or exec)", kind)
}

// run runs c once within timeout.
func run(c Check, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := c.Run(ctx)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("no answer within %v", timeout)
	}
	return err
}
