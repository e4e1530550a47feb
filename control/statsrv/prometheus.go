package statsrv

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// collector exports a Source's counters in the node_exporter style:
// pwgate_<counter>_total for counts, pwgate_drops_total{direction,reason}
// for drops, pwgate_last_bpdu_timestamp_seconds{direction} for the BPDU
// times, and pwgate_ready, pwgate_start_time_seconds and pwgate_info.
type collector struct {
	src      Source
	counts   [stats.NumCounters]*prometheus.Desc
	drops    *prometheus.Desc
	refused  *prometheus.Desc
	lastBPDU *prometheus.Desc
	ready    *prometheus.Desc
	start    *prometheus.Desc
	info     *prometheus.Desc
	wg       wgDescs
	evpn     evpnDescs
	anycast  anycastDescs
	peer     peerDescs
}

// peerDescs are what keepalives tell of the pseudowire's peer.
type peerDescs struct {
	up, rtt, jitter, loss, lanDown *prometheus.Desc
}

// anycastDescs are the announcer's and the forwarder's metrics.
type anycastDescs struct {
	vipUp, checks, failures, vipPackets, vipBytes, noServer, servers, srvPackets, srvBytes, counters, refused *prometheus.Desc
}

// evpnDescs are the BGP sessions' and the forwarding database's metrics.
type evpnDescs struct {
	sessionUp, received, advertised, limitResets, rasIgnored, macs, vteps, routes *prometheus.Desc
}

// wgDescs are the WireGuard peers' metrics, labelled by public key.
type wgDescs struct {
	handshake, rx, tx, failures, endpoint, session *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(src Source) *collector {
	c := &collector{
		src: src,
		peer: peerDescs{
			up:      prometheus.NewDesc("pwgate_peer_up", "1 while the pseudowire's peer is heard and hears us (peer.keepalive).", nil, nil),
			rtt:     prometheus.NewDesc("pwgate_peer_rtt_seconds", "Last round trip to the peer measured by keepalives; 0 until measured.", nil, nil),
			jitter:  prometheus.NewDesc("pwgate_peer_jitter_seconds", "Mean deviation of the round trip to the peer (RFC 3550's estimator).", nil, nil),
			loss:    prometheus.NewDesc("pwgate_peer_loss_ratio", "Share of the peer's keepalives lost over the last 10 s; 1 while the peer is silent.", nil, nil),
			lanDown: prometheus.NewDesc("pwgate_follow_peer_lan_down", "1 while downlink.follow_peer holds the LAN port down.", nil, nil),
		},
		drops:    prometheus.NewDesc("pwgate_drops_total", "Frames dropped, by the port they came in on (direction) and why.", []string{"direction", "reason"}, nil),
		refused:  prometheus.NewDesc("pwgate_evpn_routes_not_imported_total", "Received EVPN routes not imported, by why (see pwctl counters for each reason).", []string{"reason"}, nil),
		lastBPDU: prometheus.NewDesc("pwgate_last_bpdu_timestamp_seconds", "Unix time of the last BPDU received from the port (direction); 0 if none yet.", []string{"direction"}, nil),
		ready:    prometheus.NewDesc("pwgate_ready", "1 when frames from the LAN can be sent to the peer, 0 while the next hop or own address is unknown.", nil, nil),
		start:    prometheus.NewDesc("pwgate_start_time_seconds", "Unix time pwgated started.", nil, nil),
		info:     prometheus.NewDesc("pwgate_info", "pwgated's version, mode, peer, and how its AF_XDP sockets were bound (zerocopy or copy).", []string{"version", "mode", "peer", "xdp_bind"}, nil),
	}
	peer := []string{"peer"}
	c.wg = wgDescs{
		handshake: prometheus.NewDesc("pwgate_wg_peer_last_handshake_timestamp_seconds", "Unix time of the WireGuard peer's last handshake; 0 if none yet.", peer, nil),
		rx:        prometheus.NewDesc("pwgate_wg_peer_receive_bytes_total", "Bytes received from the WireGuard peer.", peer, nil),
		tx:        prometheus.NewDesc("pwgate_wg_peer_transmit_bytes_total", "Bytes sent to the WireGuard peer.", peer, nil),
		failures:  prometheus.NewDesc("pwgate_wg_peer_handshake_failures_total", "Handshakes with the WireGuard peer that got no answer within 5 seconds.", peer, nil),
		endpoint:  prometheus.NewDesc("pwgate_wg_peer_endpoint_info", "The WireGuard peer's current endpoint (after roaming).", []string{"peer", "endpoint"}, nil),
		session:   prometheus.NewDesc("pwgate_wg_session_up", "1 while the session with the WireGuard peer that carries the pseudowire is up.", nil, nil),
	}
	c.evpn = evpnDescs{
		sessionUp:   prometheus.NewDesc("pwgate_bgp_session_up", "1 while the BGP session with the neighbor is established.", []string{"neighbor"}, nil),
		received:    prometheus.NewDesc("pwgate_bgp_routes_received", "Routes accepted from the neighbor, by address family.", []string{"neighbor", "family"}, nil),
		advertised:  prometheus.NewDesc("pwgate_bgp_routes_advertised", "Routes advertised to the neighbor.", []string{"neighbor"}, nil),
		limitResets: prometheus.NewDesc("pwgate_bgp_prefix_limit_resets_total", "Sessions ended because the neighbor sent more routes than its max_prefix.", []string{"neighbor"}, nil),
		rasIgnored:  prometheus.NewDesc("pwgate_bgp_router_advertisements_ignored_total", "Router advertisements on an unnumbered neighbor's interface refused (RFC 4861's checks) or not taken (a second router).", []string{"neighbor"}, nil),
		macs:        prometheus.NewDesc("pwgate_evpn_macs", "MACs in the VXLAN forwarding database: on the LAN (local) or behind a remote VTEP (remote).", []string{"where"}, nil),
		vteps:       prometheus.NewDesc("pwgate_evpn_vteps", "Remote VTEPs in use, by whether their next hop is resolved.", []string{"resolved"}, nil),
		routes:      prometheus.NewDesc("pwgate_evpn_routes", "EVPN routes received (imported) and announced, by type (macip: type 2, imet: type 3).", []string{"direction", "type"}, nil),
	}
	vip := []string{"vip"}
	c.anycast = anycastDescs{
		vipUp:      prometheus.NewDesc("pwgate_anycast_vip_announced", "1 while the VIP is announced (healthy, or draining).", []string{"vip", "state"}, nil),
		checks:     prometheus.NewDesc("pwgate_anycast_checks_total", "Health checks of the VIP run.", vip, nil),
		failures:   prometheus.NewDesc("pwgate_anycast_check_failures_total", "Health checks of the VIP that failed.", vip, nil),
		vipPackets: prometheus.NewDesc("pwgate_anycast_forwarded_packets_total", "Packets to the VIP forwarded to a server.", vip, nil),
		vipBytes:   prometheus.NewDesc("pwgate_anycast_forwarded_bytes_total", "Bytes to the VIP forwarded to a server.", vip, nil),
		noServer:   prometheus.NewDesc("pwgate_anycast_no_server_drops_total", "Packets to the VIP dropped: no server.", vip, nil),
		servers:    prometheus.NewDesc("pwgate_anycast_servers", "Servers of the VIP in its table.", vip, nil),
		srvPackets: prometheus.NewDesc("pwgate_anycast_server_packets_total", "Packets forwarded to the server (its next hop).", []string{"vip", "server"}, nil),
		srvBytes:   prometheus.NewDesc("pwgate_anycast_server_bytes_total", "Bytes forwarded to the server (its next hop).", []string{"vip", "server"}, nil),
		counters:   prometheus.NewDesc("pwgate_anycast_packets_total", "The forwarder's XDP program's packets, by what it did.", []string{"what"}, nil),
		refused: prometheus.NewDesc("pwgate_anycast_paths_refused_total",
			"Received paths to forwarded VIPs that named no server, by why: neighbor (not in anycast.forward.neighbors), next_hop (not the neighbor's address).",
			[]string{"reason"}, nil),
	}
	for i := stats.Counter(0); i < stats.NumCounters; i++ {
		if _, _, drop := i.Drop(); !drop && !i.IsTimestamp() && i != stats.EVPNRoutesNotImported && reasonOf(i) == "" {
			c.counts[i] = prometheus.NewDesc("pwgate_"+i.Name()+"_total", capitalize(i.Help())+".", nil, nil)
		}
	}
	return c
}

// reasonOf is an EVPN refusal counter's reason, or "".
func reasonOf(i stats.Counter) string {
	r, _ := i.NotImported()
	return r
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.counts {
		if d != nil {
			ch <- d
		}
	}
	ch <- c.drops
	ch <- c.refused
	ch <- c.lastBPDU
	ch <- c.ready
	ch <- c.start
	ch <- c.info
	for _, d := range []*prometheus.Desc{c.wg.handshake, c.wg.rx, c.wg.tx, c.wg.failures, c.wg.endpoint, c.wg.session,
		c.evpn.sessionUp, c.evpn.received, c.evpn.advertised, c.evpn.limitResets, c.evpn.rasIgnored, c.evpn.macs, c.evpn.vteps, c.evpn.routes,
		c.anycast.vipUp, c.anycast.checks, c.anycast.failures, c.anycast.vipPackets, c.anycast.vipBytes, c.anycast.noServer,
		c.anycast.servers, c.anycast.srvPackets, c.anycast.srvBytes, c.anycast.counters, c.anycast.refused,
		c.peer.up, c.peer.rtt, c.peer.jitter, c.peer.loss, c.peer.lanDown} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Status()
	if st.Mode != "anycast" { // no data path, no frame counters
		c.collectCounters(ch)
	}
	c.collectStatus(ch, &st)
}

func (c *collector) collectCounters(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	for i := stats.Counter(0); i < stats.NumCounters; i++ {
		switch port, reason, drop := i.Drop(); {
		case drop:
			ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(s[i]), port, reason)
		case i == stats.EVPNRoutesNotImported: // the sum of the reasons below
		case reasonOf(i) != "":
			ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s[i]), reasonOf(i))
		case i.IsTimestamp():
			dir := map[stats.Counter]string{stats.ULLastBPDU: "ul", stats.DLLastBPDU: "dl"}[i]
			ch <- prometheus.MustNewConstMetric(c.lastBPDU, prometheus.GaugeValue, float64(s[i])/1e9, dir)
		default:
			ch <- prometheus.MustNewConstMetric(c.counts[i], prometheus.CounterValue, float64(s[i]))
		}
	}
}

func (c *collector) collectStatus(ch chan<- prometheus.Metric, st *client.Status) {
	ready := 0.0
	if st.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(c.start, prometheus.GaugeValue, float64(st.Started.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, st.Version, st.Mode, st.Peer, st.XDPBind)
	if w := st.WireGuard; w != nil {
		for _, p := range w.Peers {
			hs := 0.0
			if p.LastHandshake != nil {
				hs = float64(p.LastHandshake.UnixNano()) / 1e9
			}
			ch <- prometheus.MustNewConstMetric(c.wg.handshake, prometheus.GaugeValue, hs, p.PublicKey)
			ch <- prometheus.MustNewConstMetric(c.wg.rx, prometheus.CounterValue, float64(p.RxBytes), p.PublicKey)
			ch <- prometheus.MustNewConstMetric(c.wg.tx, prometheus.CounterValue, float64(p.TxBytes), p.PublicKey)
			ch <- prometheus.MustNewConstMetric(c.wg.failures, prometheus.CounterValue, float64(p.HandshakeFailures), p.PublicKey)
			if p.Endpoint != "" {
				ch <- prometheus.MustNewConstMetric(c.wg.endpoint, prometheus.GaugeValue, 1, p.PublicKey, p.Endpoint)
			}
		}
		if w.Pseudowire {
			ch <- prometheus.MustNewConstMetric(c.wg.session, prometheus.GaugeValue, map[bool]float64{true: 1}[w.Session])
		}
	}
	if b := st.BGP; b != nil {
		for _, n := range b.Neighbors {
			ch <- prometheus.MustNewConstMetric(c.evpn.sessionUp, prometheus.GaugeValue, map[bool]float64{true: 1}[n.State == "established"], n.Neighbor)
			ch <- prometheus.MustNewConstMetric(c.evpn.advertised, prometheus.GaugeValue, float64(n.Advertised), n.Neighbor)
			ch <- prometheus.MustNewConstMetric(c.evpn.limitResets, prometheus.CounterValue, float64(n.PrefixLimitResets), n.Neighbor)
			if strings.HasPrefix(n.Neighbor, "if:") {
				ch <- prometheus.MustNewConstMetric(c.evpn.rasIgnored, prometheus.CounterValue, float64(n.RouterAdvertisementsIgnored), n.Neighbor)
			}
			for f, k := range n.Received {
				ch <- prometheus.MustNewConstMetric(c.evpn.received, prometheus.GaugeValue, float64(k), n.Neighbor, f)
			}
		}
	}
	if e := st.EVPN; e != nil {
		ch <- prometheus.MustNewConstMetric(c.evpn.macs, prometheus.GaugeValue, float64(e.MACs.Local), "local")
		ch <- prometheus.MustNewConstMetric(c.evpn.macs, prometheus.GaugeValue, float64(e.MACs.Remote), "remote")
		resolved := map[bool]int{}
		for _, v := range e.VTEPs {
			resolved[v.Resolved]++
		}
		for _, r := range []bool{true, false} {
			ch <- prometheus.MustNewConstMetric(c.evpn.vteps, prometheus.GaugeValue, float64(resolved[r]), map[bool]string{true: "yes", false: "no"}[r])
		}
		for _, t := range []string{"macip", "imet"} {
			ch <- prometheus.MustNewConstMetric(c.evpn.routes, prometheus.GaugeValue, float64(e.RoutesReceived[t]), "received", t)
			ch <- prometheus.MustNewConstMetric(c.evpn.routes, prometheus.GaugeValue, float64(e.RoutesAnnounced[t]), "announced", t)
		}
	}
	if a := st.Anycast; a != nil {
		c.collectAnycast(ch, a)
	}
	if p := st.Path; p != nil {
		ch <- prometheus.MustNewConstMetric(c.peer.up, prometheus.GaugeValue, map[bool]float64{true: 1}[p.State == "up"])
		ch <- prometheus.MustNewConstMetric(c.peer.rtt, prometheus.GaugeValue, p.RTT)
		ch <- prometheus.MustNewConstMetric(c.peer.jitter, prometheus.GaugeValue, p.Jitter)
		ch <- prometheus.MustNewConstMetric(c.peer.loss, prometheus.GaugeValue, p.Loss)
		if f := p.FollowPeer; f != nil {
			ch <- prometheus.MustNewConstMetric(c.peer.lanDown, prometheus.GaugeValue, map[bool]float64{true: 1}[f.LANDown])
		}
	}
}

func (c *collector) collectAnycast(ch chan<- prometheus.Metric, a *client.Anycast) {
	d := &c.anycast
	for _, v := range a.VIPs {
		ch <- prometheus.MustNewConstMetric(d.vipUp, prometheus.GaugeValue, map[bool]float64{true: 1}[v.Announced], v.Prefix, v.State)
		ch <- prometheus.MustNewConstMetric(d.checks, prometheus.CounterValue, float64(v.Checks), v.Prefix)
		ch <- prometheus.MustNewConstMetric(d.failures, prometheus.CounterValue, float64(v.Failures), v.Prefix)
	}
	for _, f := range a.Forward {
		ch <- prometheus.MustNewConstMetric(d.vipPackets, prometheus.CounterValue, float64(f.Packets), f.Prefix)
		ch <- prometheus.MustNewConstMetric(d.vipBytes, prometheus.CounterValue, float64(f.Bytes), f.Prefix)
		ch <- prometheus.MustNewConstMetric(d.noServer, prometheus.CounterValue, float64(f.NoServers), f.Prefix)
		n, seen := 0, map[string]bool{}
		for _, s := range f.Servers {
			if seen[s.NextHop] || s.Refused != "" {
				continue // two neighbors name the same server; a refused path names none
			}
			seen[s.NextHop] = true
			if s.Slots > 0 {
				n++
			}
			ch <- prometheus.MustNewConstMetric(d.srvPackets, prometheus.CounterValue, float64(s.Packets), f.Prefix, s.NextHop)
			ch <- prometheus.MustNewConstMetric(d.srvBytes, prometheus.CounterValue, float64(s.Bytes), f.Prefix, s.NextHop)
		}
		ch <- prometheus.MustNewConstMetric(d.servers, prometheus.GaugeValue, float64(n), f.Prefix)
	}
	for k, v := range a.Counters {
		ch <- prometheus.MustNewConstMetric(d.counters, prometheus.CounterValue, float64(v), k)
	}
	for k, v := range a.PathsRefused {
		ch <- prometheus.MustNewConstMetric(d.refused, prometheus.CounterValue, float64(v), k)
	}
}

// promServer is the metrics endpoint.
type promServer struct {
	srv  *http.Server
	addr string // where it listens
	done chan struct{}
}

// ServePrometheus serves /metrics about src on addr (host:port), until
// closed.
func ServePrometheus(addr string, src Source) (io.Closer, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(newCollector(src)); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("pwgated: metrics at /metrics\n"))
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &promServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.srv.Serve(ln)
	}()
	return p, nil
}

// Close stops the endpoint.
func (p *promServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	<-p.done
	return err
}
