package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
)

func newAnycast(t *testing.T, o lab.AnycastOptions) *lab.Anycast {
	t.Helper()
	l := newLab(t)
	o.Pwgated, o.Dir = pwgatedBin, t.TempDir()
	if o.Forwarder == "frr" {
		if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
			t.Fatal("FRR is not installed (make deps installs it)")
		}
	}
	a, err := lab.NewAnycast(l, o)
	if a != nil {
		t.Cleanup(func() {
			if !t.Failed() {
				return
			}
			if a.Fwd != nil {
				t.Logf("forwarder log:\n%s", a.Fwd.Out.String())
			}
			for _, s := range a.Servers {
				if s.Announcer != nil {
					t.Logf("%s announcer log:\n%s", s.Name, s.Announcer.Out.String())
				}
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// requests makes n HTTP requests to the VIP from the client, each on a
// new connection, and counts the servers that answered ("" for failures).
func requests(t *testing.T, a *lab.Anycast, n int) map[string]int {
	t.Helper()
	return requestsTo(t, a, lab.AnycastVIP, n)
}

// spread makes n requests to the VIP and fails t unless every server
// answered at least least of them and none failed.
func spread(t *testing.T, a *lab.Anycast, n, least int) {
	t.Helper()
	got := requests(t, a, n)
	for _, s := range a.Servers {
		if got[s.Name] < least {
			t.Errorf("%s answered %d of %d requests: %v", s.Name, got[s.Name], n, got)
		}
	}
	if got[""] > 0 {
		t.Errorf("%d requests failed", got[""])
	}
}

// requestsTo is requests to one VIP.
func requestsTo(t *testing.T, a *lab.Anycast, vip string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	err := a.Do("cl", func() error {
		// By hand: http.Client dials on goroutines of its own, outside
		// the client's namespace.
		for range n {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(vip, fmt.Sprint(lab.AnycastHTTPPort)), 2*time.Second)
			if err != nil {
				got[""]++
				continue
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", vip)
			b, err := io.ReadAll(c)
			c.Close()
			_, body, ok := strings.Cut(string(b), "\r\n\r\n")
			if err != nil || !ok {
				got[""]++
				continue
			}
			got[strings.TrimSpace(body)]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// longConn is a long-lived TCP connection to the VIP and the server that
// took it.
type longConn struct {
	c      net.Conn
	r      *bufio.Reader
	server string
}

func dialLong(t *testing.T, a *lab.Anycast, n int) []*longConn {
	t.Helper()
	var out []*longConn
	err := a.Do("cl", func() error {
		for range n {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", lab.AnycastVIP, lab.AnycastTCPPort), 2*time.Second)
			if err != nil {
				return err
			}
			out = append(out, &longConn{c: c, r: bufio.NewReader(c)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range out {
		t.Cleanup(func() { l.c.Close() })
		l.c.SetDeadline(time.Now().Add(2 * time.Second))
		name, err := l.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		l.server = strings.TrimSpace(name)
	}
	return out
}

// alive reports whether the connection still echoes.
func (l *longConn) alive() bool {
	l.c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := l.c.Write([]byte("ping\n")); err != nil {
		return false
	}
	s, err := l.r.ReadString('\n')
	return err == nil && s == "ping\n"
}

func TestAnycast(t *testing.T) {
	o := lab.AnycastOptions{Forwarder: "pwgate", Interval: 500 * time.Millisecond, Fall: 3, Rise: 2, Drain: 3 * time.Second}
	a := newAnycast(t, o)
	toolBin(t, "pwctl")
	if _, err := a.WaitServers(3, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	spread(t, a, 90, 10)
	t.Run("IPv6 VIP", func(t *testing.T) {
		if _, err := a.WaitServersOf(1, 3, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		got := requestsTo(t, a, lab.AnycastVIP6, 60)
		for _, s := range a.Servers {
			if got[s.Name] < 5 {
				t.Errorf("%s answered %d of 60 requests over IPv6: %v", s.Name, got[s.Name], got)
			}
		}
		ping, _ := a.Exec("cl", "ping", "-6", "-c", "1", "-W", "1", "-t", "1", lab.AnycastVIP6)
		if !strings.Contains(strings.ToLower(ping), "time exceeded") {
			t.Errorf("ping -6 with hop limit 1:\n%s", ping)
		}
	})
	conns := dialLong(t, a, 30)
	per := map[string]int{}
	for _, c := range conns {
		per[c.server]++
	}
	t.Logf("long-lived connections per server: %v", per)

	t.Run("a failed server is withdrawn, the others' connections survive", func(t *testing.T) {
		dead := a.Servers[1]
		// A steady stream of short requests runs through the failure.
		stream := startStream(t, a)
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		dead.Service.Signal(syscall.SIGKILL)
		if _, err := a.WaitServers(2, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		withdrawn := time.Now()
		time.Sleep(time.Second)
		before, after := stream.stop(withdrawn)
		t.Logf("steady requests: %v before the withdrawal, %v after", before, after)
		if after[dead.Name] > 0 || after[""] > 0 || len(after) == 0 {
			t.Errorf("requests after the withdrawal: %v", after)
		}
		limit := o.Interval*time.Duration(o.Fall) + time.Second
		t.Logf("withdrawn from the forwarder's table %v after the service died (limit %v)", took.Round(time.Millisecond), limit)
		if took > limit {
			t.Errorf("withdrawn after %v, want within interval × fall + 1 s = %v", took, limit)
		}
		lost := 0
		for _, c := range conns {
			if c.server != dead.Name && !c.alive() {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("%d connections to the servers that stayed broke", lost)
		}
		got := requests(t, a, 60)
		if got[dead.Name] > 0 || got[""] > 0 {
			t.Errorf("after the withdrawal: %v", got)
		}
		// It comes back: it takes new flows, old ones stay where they are.
		if err := a.StartService(dead); err != nil {
			t.Fatal(err)
		}
		if _, err := a.WaitServers(3, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		for _, c := range conns {
			if c.server != dead.Name && !c.alive() {
				t.Errorf("a connection to %s broke when %s came back", c.server, dead.Name)
			}
		}
		if got := requests(t, a, 60); got[dead.Name] == 0 {
			t.Errorf("%s takes no new requests after coming back: %v", dead.Name, got)
		}
	})

	t.Run("drain", func(t *testing.T) {
		s := a.Servers[0]
		if _, _, code := pwctlRun("--socket", s.Socket, "anycast", "drain", lab.AnycastVIP); code != 0 {
			t.Fatal("pwctl anycast drain failed")
		}
		var f *client.AnycastForward
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			st, err := client.FetchAnycast(a.FwdSock, time.Second)
			if err == nil && len(st.Forward) > 0 {
				for _, srv := range st.Forward[0].Servers {
					if srv.NextHop == s.Addr && srv.Draining {
						f = &st.Forward[0]
					}
				}
			}
			if f != nil {
				break
			}
		}
		if f == nil {
			t.Fatal("the forwarder does not see the drain")
		}
		if got := requests(t, a, 60); got[s.Name] > 0 {
			t.Errorf("a draining server took new requests: %v", got)
		}
		for _, c := range conns {
			if c.server == s.Name && !c.alive() {
				t.Error("a connection to the draining server broke during the drain")
			}
		}
		st, _ := client.FetchAnycast(s.Socket, time.Second)
		if v := st.VIPs[0]; v.State != "draining" || v.MED == nil || *v.MED != 1000 {
			t.Errorf("announcer during the drain: %+v", v)
		}
		// After the drain time: withdrawn.
		time.Sleep(o.Drain)
		f, err := a.WaitServers(2, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, srv := range f.Servers {
			if srv.NextHop == s.Addr {
				t.Errorf("the drained server's path is still there: %+v", srv)
			}
		}
		if _, _, code := pwctlRun("--socket", s.Socket, "anycast", "resume", lab.AnycastVIP); code != 0 {
			t.Fatal("pwctl anycast resume failed")
		}
		if _, err := a.WaitServers(3, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("blue/green by MED on reload", func(t *testing.T) {
		s := a.Servers[2]
		setMED := func(med string) {
			t.Helper()
			b, err := os.ReadFile(s.Config)
			if err != nil {
				t.Fatal(err)
			}
			conf := strings.Replace(string(b), "med: 10\n", "med: "+med+"\n", 1)
			conf = strings.Replace(conf, "med: 20\n", "med: "+med+"\n", 1)
			if err := os.WriteFile(s.Config, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			s.Announcer.Signal(syscall.SIGHUP)
		}
		setMED("20")
		f, err := a.WaitServers(2, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, srv := range f.Servers {
			if srv.NextHop == s.Addr && (srv.MED == nil || *srv.MED != 20 || !srv.Draining) {
				t.Errorf("the server with the worse MED: %+v", srv)
			}
		}
		if got := requests(t, a, 30); got[s.Name] > 0 {
			t.Errorf("the server with the worse MED took new requests: %v", got)
		}
		setMED("10")
		if _, err := a.WaitServers(3, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("status and counters", func(t *testing.T) {
		out, _, code := pwctlRun("--socket", a.FwdSock, "anycast")
		if code != 0 || !strings.Contains(out, "forwarding "+lab.AnycastVIP+"/32") || strings.Count(out, "10.9.") < 3 {
			t.Errorf("pwctl anycast:\n%s", out)
		}
		out, _, _ = pwctlRun("--socket", a.Servers[2].Socket, "anycast")
		if !strings.Contains(out, "up") || !strings.Contains(out, "http http://127.0.0.1:8080/") {
			t.Errorf("pwctl anycast on a server:\n%s", out)
		}
		// TTL 1: the kernel answers time exceeded.
		ping, _ := a.Exec("cl", "ping", "-c", "1", "-W", "1", "-t", "1", lab.AnycastVIP)
		if !strings.Contains(strings.ToLower(ping), "time to live exceeded") {
			t.Errorf("ping with TTL 1:\n%s", ping)
		}
		st, err := client.FetchAnycast(a.FwdSock, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if st.Counters["ttl_expired"] == 0 || st.Counters["forwarded"] == 0 || st.Forward[0].Packets == 0 {
			t.Errorf("counters %v, VIP %d packets", st.Counters, st.Forward[0].Packets)
		}
		var total uint64
		for _, s := range st.Forward[0].Servers {
			total += s.Packets
		}
		if total != st.Forward[0].Packets {
			t.Errorf("servers' packets add up to %d, the VIP's are %d", total, st.Forward[0].Packets)
		}
		b, _ := json.Marshal(st)
		t.Logf("anycast status: %s", b)
	})

	t.Run("stop leaves nothing attached", func(t *testing.T) {
		for _, fam := range []string{"-4", "-6"} {
			if out, _ := a.Exec("fwd", "ip", fam, "route", "show", "proto", "250"); strings.Count(out, "nexthop") != 3 {
				t.Errorf("the forwarder's kernel route (ip %s) before the stop:\n%s", fam, out)
			}
		}
		a.Fwd.Signal(syscall.SIGTERM)
		if code, err := a.Fwd.Wait(10 * time.Second); err != nil || code != 0 {
			t.Fatalf("forwarder exit %d, %v", code, err)
		}
		for _, p := range []string{"c0", "s1"} {
			out, _ := a.Exec("fwd", "ip", "link", "show", p)
			if strings.Contains(out, "xdp") {
				t.Errorf("%s keeps an XDP program:\n%s", p, out)
			}
		}
		for _, fam := range []string{"-4", "-6"} {
			if out, _ := a.Exec("fwd", "ip", fam, "route", "show", "proto", "250"); strings.TrimSpace(out) != "" {
				t.Errorf("the forwarder's kernel routes stayed:\n%s", out)
			}
		}
	})
}

// FRR as the upstream router: maximum-paths takes the three announcers'
// paths, and two when one fails.
func TestAnycastFRR(t *testing.T) {
	a := newAnycast(t, lab.AnycastOptions{Forwarder: "frr", Interval: 500 * time.Millisecond, Fall: 3, Rise: 2})
	paths := func() (int, string) {
		out, _ := a.Vtysh("fwd", "show ip bgp "+lab.AnycastVIP+"/32 json")
		var r struct {
			Paths []struct {
				Multipath bool `json:"multipath"`
				Bestpath  struct {
					Overall bool `json:"overall"`
				} `json:"bestpath"`
			} `json:"paths"`
		}
		if i := strings.Index(out, "{"); i >= 0 {
			json.Unmarshal([]byte(out[i:]), &r)
		}
		n := 0
		for _, p := range r.Paths {
			if p.Multipath || p.Bestpath.Overall {
				n++
			}
		}
		route, _ := a.Exec("fwd", "ip", "route", "show", lab.AnycastVIP)
		return n, route
	}
	wait := func(n int) {
		t.Helper()
		var route string
		var got int
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if got, route = paths(); got == n && strings.Count(route, "nexthop") == n {
				return
			}
		}
		t.Fatalf("FRR has %d multipaths, want %d; kernel route:\n%s", got, n, route)
	}
	wait(3)
	a.Servers[2].Service.Signal(syscall.SIGKILL)
	wait(2)
}

// pwctlRun runs pwctl and returns its output and exit code.
func pwctlRun(args ...string) (string, string, int) {
	var out, errOut strings.Builder
	cmd := exec.Command(filepath.Join(filepath.Dir(pwgatedBin), "pwctl"), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return "", err.Error(), -1
	}
	return out.String(), errOut.String(), code
}

// stream is a steady stream of short requests to the VIP, one at a time,
// each on a new connection, from the client's namespace.
type stream struct {
	mu   sync.Mutex
	done chan struct{}
	wg   sync.WaitGroup
	got  []streamResult
}

type streamResult struct {
	at     time.Time // when the request started
	server string    // "" for a failure
}

func startStream(t *testing.T, a *lab.Anycast) *stream {
	s := &stream{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.done:
				return
			default:
			}
			at := time.Now()
			got := requestsTo(t, a, lab.AnycastVIP, 1)
			server := ""
			for k := range got {
				server = k
			}
			s.mu.Lock()
			s.got = append(s.got, streamResult{at, server})
			s.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return s
}

// stop ends the stream and counts the answers before and after t.
func (s *stream) stop(t time.Time) (before, after map[string]int) {
	close(s.done)
	s.wg.Wait()
	before, after = map[string]int{}, map[string]int{}
	for _, r := range s.got {
		if r.at.Before(t) {
			before[r.server]++
		} else {
			after[r.server]++
		}
	}
	return before, after
}

// A pseudowire and anycast in one pwgated: site A's appliance carries its
// LAN to site B and announces a VIP to the access router (FRR 8.4 in the
// router's namespace) over its uplink while the VIP's check passes; the
// VIP follows its check and a reloaded MED, the pseudowire carries
// traffic throughout, pwctl shows both, and SIGTERM leaves nothing.
func TestIP6ModeWithAnycast(t *testing.T) {
	if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil && lab.IsRoot() {
		t.Fatal("FRR is not installed (make deps installs it)")
	}
	toolBin(t, "pwctl")
	s := buildSites(t, lab.SitesOptions{Mode: "ip6"})
	l, dir := s.Lab, s.Opt.Dir
	const vip = "2001:db8:80::80"
	healthy := filepath.Join(dir, "healthy")
	if err := os.WriteFile(healthy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	config := func(med int) string {
		return s.ConfigFor(s.A, s.A.Peer) + fmt.Sprintf(`bgp:
  asn: 65101
  router_id: 10.77.0.10
  neighbors:
    - address: 2001:db8:a::1
      asn: 65000
      hold_time: 9
      export:
        - action: permit
          prefix: %s/128
        - action: deny
anycast:
  vips:
    - prefix: %s/128
      check:
        exec: test -e %s
      interval: 300ms
      rise: 1
      fall: 2
      med: %d
`, vip, vip, healthy, med)
	}
	if err := os.WriteFile(s.A.Config, []byte(config(10)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.StartFRR("net", "frr defaults datacenter\nhostname net\n!\nrouter bgp 65000\n bgp router-id 10.77.0.254\n no bgp ebgp-requires-policy\n"+
		" neighbor 2001:db8:a::a remote-as 65101\n neighbor 2001:db8:a::a timers 3 9\n address-family ipv6 unicast\n  neighbor 2001:db8:a::a activate\n exit-address-family\n!\n"); err != nil {
		t.Fatal(err)
	}
	startSites(t, s)
	// med returns the MED of FRR's path to the VIP, -1 without one.
	med := func() int {
		out, _ := l.Vtysh("net", "show bgp ipv6 unicast "+vip+"/128 json")
		var r struct {
			Paths []struct {
				MED *int `json:"metric"`
			} `json:"paths"`
		}
		if i := strings.Index(out, "{"); i >= 0 {
			json.Unmarshal([]byte(out[i:]), &r)
		}
		if len(r.Paths) == 0 {
			return -1
		}
		if r.Paths[0].MED == nil {
			return 0
		}
		return *r.Paths[0].MED
	}
	wait := func(what string, want int, timeout time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < timeout {
			if med() == want {
				return time.Since(start)
			}
			time.Sleep(50 * time.Millisecond)
		}
		st, _, _ := pwctlRun("--socket", s.A.Socket, "anycast")
		t.Fatalf("%s: the router's path has MED %d after %v, want %d\npwctl anycast:\n%s", what, med(), timeout, want, st)
		return 0
	}
	crosses := func(when string) {
		t.Helper()
		if out, err := ping(s, s.A.Host, "-c", "3", "-i", "0.2", s.B.HostIP); err != nil {
			t.Fatalf("%s: the pseudowire does not carry: %v\n%s", when, err, out)
		}
	}
	wait("announced", 10, 30*time.Second)
	crosses("announcing")

	st, err := client.FetchStatus(s.A.Socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != "ip6" || !st.Ready || st.BGP == nil || st.BGP.ASN != 65101 || st.Anycast == nil || len(st.Anycast.VIPs) != 1 {
		t.Fatalf("status: %+v", st)
	}
	if len(st.BGP.Neighbors) != 1 || st.BGP.Neighbors[0].State != "established" {
		t.Errorf("bgp: %+v", st.BGP)
	}
	if out, _, code := pwctlRun("--socket", s.A.Socket, "anycast"); code != 0 || !strings.Contains(out, vip) {
		t.Errorf("pwctl anycast: exit %d\n%s", code, out)
	}
	if out, errOut, code := pwctlRun("--socket", s.B.Socket, "anycast"); code == 0 || !strings.Contains(errOut, "no anycast") {
		t.Errorf("pwctl anycast on B (no anycast section): exit %d\n%s%s", code, out, errOut)
	}

	// The check fails: withdrawn within interval × fall + 1 s (and BGP's
	// way to the router); the pseudowire goes on.
	if err := os.Remove(healthy); err != nil {
		t.Fatal(err)
	}
	took := wait("check failing", -1, 10*time.Second)
	t.Logf("withdrawn from the router %v after the check began to fail (interval 0.3 s × fall 2 + 1 s = 1.6 s)", took.Round(10*time.Millisecond))
	if took > 1600*time.Millisecond+time.Second {
		t.Errorf("withdrawal took %v", took)
	}
	crosses("withdrawn")
	if err := os.WriteFile(healthy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wait("check passing again", 10, 10*time.Second)

	// A reload changes the MED in place; the pseudowire is not touched.
	if err := os.WriteFile(s.A.Config, []byte(config(50)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.A.Proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait("reloaded MED", 50, 10*time.Second)
	crosses("reloaded")

	code, err := s.StopPwgated(s.A)
	if err != nil || code != 0 {
		t.Fatalf("pwgated a: exit %d, %v", code, err)
	}
	wait("stopped", -1, 10*time.Second)
	if out, _ := l.Exec(s.A.PW, "ip", "link", "show"); strings.Contains(out, "xdp") {
		t.Errorf("XDP program left:\n%s", out)
	}
}

// The forwarder beside a pseudowire in one pwgated: VIP requests spread
// over the three servers while frames from the LAN port cross the
// pseudowire; both programs leave with SIGTERM.
func TestAnycastBesidePseudowire(t *testing.T) {
	a := newAnycast(t, lab.AnycastOptions{Forwarder: "pwgate", Pseudowire: true, Interval: 500 * time.Millisecond, Fall: 3, Rise: 2})
	if _, err := a.WaitServers(3, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	spread(t, a, 60, 5)
	count := func(name string) uint64 {
		cs, err := client.FetchCounters(a.FwdSock, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Name == name {
				return c.Value
			}
		}
		t.Fatalf("no counter %s", name)
		return 0
	}
	before := count("ul_tx_packets")
	stop := captureNS(t, a.Lab, "wan", "eth0", "ether dst 02:00:00:00:00:99")
	if out, err := a.Exec("cl", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", "-I", "lan0", "ff02::1"); err != nil && !strings.Contains(out, "transmitted") {
		t.Fatalf("ping on the LAN port: %v\n%s", err, out)
	}
	frames := stop()
	if sent := count("ul_tx_packets") - before; sent < 3 || len(frames) < 3 {
		t.Errorf("the pseudowire sent %d frames (the capture saw %d), want 3 or more", sent, len(frames))
	}
	st, err := client.FetchStatus(a.FwdSock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != "eth" || st.Anycast == nil || len(st.Anycast.Forward) != 2 || st.BGP == nil {
		t.Errorf("status: mode %s, anycast %+v, bgp %v", st.Mode, st.Anycast, st.BGP != nil)
	}
	if err := a.Fwd.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := a.Fwd.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("forwarder: exit %d, %v", code, err)
	}
	if out, _ := a.Exec("fwd", "ip", "link", "show"); strings.Contains(out, "xdp") {
		t.Errorf("XDP program left:\n%s", out)
	}
	if out, _ := a.Exec("fwd", "ip", "route", "show", "proto", "250"); strings.TrimSpace(out) != "" {
		t.Errorf("routes left:\n%s", out)
	}
}
