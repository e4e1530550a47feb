package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// pwgateMarker is the value of pwgate's opaque extended community on its
// IMET routes: this VTEP takes pwgate's split frames. Transitive opaque
// (type 0x03) with sub-type 0x70 ('p'), unassigned by IANA; other
// speakers carry it unchanged.
var pwgateMarker = []byte{0x70, 'p', 'w', 'g', 'a', 't', 'e'}

// GoBGP is the Speaker over an embedded GoBGP server.
type GoBGP struct {
	log    *slog.Logger
	s      *server.BgpServer
	cancel context.CancelFunc

	mu        sync.Mutex
	cfg       Config
	announced map[string]bool // IDs of the routes announced
	// imports are the neighbors' import filters, read by the watcher.
	imports atomic.Pointer[importRules]
	limit   *prefixLimit
	// listening are the addresses GoBGP listens on (under mu).
	listening []netip.Addr
	// Unnumbered neighbors: nd hears their addresses; applied are the
	// neighbors in GoBGP (unnumbered ones at their heard addresses), failed
	// the interfaces whose neighbor GoBGP could not take yet, zones the
	// interface of each unnumbered neighbor's address (read by the
	// watcher: GoBGP's paths carry the address without it), kept for
	// zoneGrace after the neighbor went, since its withdrawals reach the
	// watcher later. exportKey is what the export policy was last made
	// of. All under mu but zones.
	nd         *linkNeighbors
	applied    []Neighbor
	failed     map[string]bool
	zones      atomic.Pointer[map[netip.Addr]zone]
	exportKey  string
	exportMade bool
	stopped    bool
	// freed receives the sessions GoBGP freed while Stop waits for them
	// (endSessions).
	freed atomic.Pointer[chan string]
	// waiting are the neighbors added passive that have not had a
	// session yet, by key (under mu): see fallBack.
	waiting map[string]*waitState
}

// waitState is a passive neighbor's wait for its first session.
type waitState struct {
	since      time.Time // added, or last changed sides
	connecting bool      // connecting itself after PassiveWait without a session
	told       bool      // the change was logged at Info
}

// PassiveWait is how long pwgate waits, on the passive side of a session
// that has not come up yet, for the neighbor to connect before it
// connects itself, and then how long it connects before it waits again,
// until the first session. A neighbor that connected too early is not
// stuck until its own connect-retry timer (FRR's: 120 s): one that heard
// our router advertisement before we heard its, and was refused (GoBGP
// knew no such neighbor yet). Another pwgate, on the lower address,
// connects every 2 to 4 s and so meets the waiting side well before it.
var PassiveWait = 10 * time.Second

// zone is the interface of an unnumbered neighbor's address, and when the
// neighbor went (zero: in GoBGP).
type zone struct {
	ifname string
	gone   time.Time
}

// zoneGrace is how long an unnumbered neighbor's zone is kept once it
// left GoBGP: its withdrawals, queued in GoBGP's watcher, still need it.
const zoneGrace = time.Minute

// importRules are the import filters by neighbor address (an unnumbered
// neighbor's: the address heard, zoned, as updates gives the peer).
type importRules struct {
	byAddr map[netip.Addr][]Rule
}

// newImportRules takes the neighbors in GoBGP (each with an address).
func newImportRules(ns []Neighbor) *importRules {
	r := &importRules{byAddr: map[netip.Addr][]Rule{}}
	for _, n := range ns {
		r.byAddr[n.Address] = n.Import
	}
	return r
}

// permitted reports whether the route from peer passes its neighbor's
// import filter.
func (ir *importRules) permitted(peer netip.Addr, r *Route) bool {
	return Permitted(ir.byAddr[peer], r)
}

var _ Speaker = (*GoBGP)(nil)

// NewGoBGP returns a speaker that logs to log.
func NewGoBGP(log *slog.Logger) *GoBGP {
	return &GoBGP{log: log, announced: map[string]bool{}, limit: newPrefixLimit(), failed: map[string]bool{}, waiting: map[string]*waitState{}}
}

// Start implements Speaker.
func (g *GoBGP) Start(c Config, watch func([]Update)) error {
	if err := c.Validate(); err != nil {
		return err
	}
	g.s = server.NewBgpServer(server.LoggerOption(&logger{l: g.log, disabled: g.resetDisabled, freed: g.sessionFreed}))
	go g.s.Serve()
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	port := int32(c.ListenPort)
	if port == 0 {
		port = 179
	}
	listen := c.ListenAddrs
	if len(listen) == 0 && port > 0 {
		listen = g.defaultListen(c.Neighbors)
		if len(listen) == 0 {
			g.log.Info("bgp: not listening: no neighbors (bgp.listen sets where to listen)")
			port = -1
		}
	}
	if port < 0 {
		listen = nil
	}
	global := &api.Global{Asn: c.ASN, RouterId: c.RouterID.String(), ListenPort: port}
	for _, a := range listen {
		// GoBGP listens "tcp6" on "::", which is IPv6 only.
		global.ListenAddresses = append(global.ListenAddresses, a.String())
	}
	if c.GracefulRestart {
		global.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(c.RestartTime)}
	}
	if err := g.s.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		g.s.Stop()
		return fmt.Errorf("start bgp: %w", err)
	}
	// Every neighbor's path as it enters GoBGP's table, not only the
	// best: the import rules apply to each path before one is chosen (a
	// denied best path would otherwise hide a permitted one), and the
	// anycast forwarder spreads a VIP over all its servers.
	err := g.s.WatchEvent(ctx, &api.WatchEventRequest{Table: &api.WatchEventRequest_Table{
		Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_POST_POLICY, Init: true}},
	}}, func(r *api.WatchEventResponse) {
		if t := r.GetTable(); t != nil {
			if us := g.updates(t.Paths); len(us) > 0 {
				watch(us)
			}
		}
	})
	if err != nil {
		g.s.Stop()
		return fmt.Errorf("watch bgp routes: %w", err)
	}
	go g.watchLimits(ctx)
	go g.watchPassive(ctx)
	g.mu.Lock()
	g.cfg = Config{ASN: c.ASN, RouterID: c.RouterID, ListenAddrs: c.ListenAddrs, ListenPort: c.ListenPort,
		GracefulRestart: c.GracefulRestart, RestartTime: c.RestartTime, Restarting: c.Restarting}
	g.listening = listen
	g.mu.Unlock()
	return g.Reconfigure(c)
}

// Reconfigure implements Speaker.
func (g *GoBGP) Reconfigure(c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg.Neighbors = c.Neighbors
	return g.apply()
}

// apply brings GoBGP's neighbors to g.cfg's, with each unnumbered one at
// the link-local address heard on its interface; one not heard yet waits
// outside GoBGP (Peers shows it). Called with g.mu held, by Reconfigure
// and whenever an unnumbered neighbor's address is learned or changes.
func (g *GoBGP) apply() error {
	if g.stopped {
		return nil
	}
	ns, ifs := g.resolve(g.cfg.Neighbors)
	if len(ifs) > 0 && g.nd == nil {
		nd, err := newLinkNeighbors(g.log, g.learned, g.established)
		if err != nil {
			return fmt.Errorf("unnumbered neighbors: router advertisements: %w", err)
		}
		g.nd = nd
	}
	if g.nd != nil {
		g.nd.set(ifs)
	}
	// in are the neighbors in GoBGP, kept true as it changes, and made
	// g.applied whatever happens (in ns's order, then any left over).
	in := map[string]Neighbor{}
	for _, n := range g.applied {
		in[n.Key()] = n
	}
	defer func() {
		var now []Neighbor
		for _, n := range append(slices.Clone(ns), g.applied...) {
			if a, ok := in[n.Key()]; ok {
				now = append(now, a)
				delete(in, n.Key())
			}
		}
		g.applied = now
		g.setZones()
		for k := range g.waiting {
			if !slices.ContainsFunc(now, func(n Neighbor) bool { return n.Key() == k }) {
				delete(g.waiting, k)
			}
		}
	}()
	ctx := context.Background()
	want := map[string]bool{}
	for _, n := range ns {
		want[n.Key()] = true
		o, ok := in[n.Key()]
		if ok && equalNeighbor(o, n) {
			continue
		}
		if ok {
			if err := g.s.DeletePeer(ctx, deletePeer(o)); err != nil {
				return fmt.Errorf("change neighbor %s: %w", n.Key(), err)
			}
			delete(in, n.Key())
		}
		delete(g.waiting, n.Key())
		p := g.peer(n, g.cfg)
		err := g.s.AddPeer(ctx, &api.AddPeerRequest{Peer: p})
		switch {
		case err != nil && n.Interface != "":
			// Our own link-local address may not be there yet: tried
			// again with the neighbor's next advertisement.
			if !g.failed[n.Interface] {
				g.log.Warn("bgp: unnumbered neighbor heard, but its session cannot start yet; trying again", "interface", n.Interface, "address", n.Address.String(), "err", err)
			}
			g.failed[n.Interface] = true
			continue
		case err != nil:
			return fmt.Errorf("neighbor %s: %w", n.Key(), err)
		case n.Interface != "":
			g.log.Info("bgp: unnumbered neighbor heard", "interface", n.Interface, "address", n.Address.String())
		}
		delete(g.failed, n.Interface)
		in[n.Key()] = n
		if p.Transport.PassiveMode {
			g.log.Info("bgp: waiting for the neighbor to connect (our address is the higher one)", "neighbor", n.Key())
			g.waiting[n.Key()] = &waitState{since: time.Now()}
		}
	}
	for k, o := range in {
		if !want[k] {
			if err := g.s.DeletePeer(ctx, deletePeer(o)); err != nil {
				return fmt.Errorf("remove neighbor %s: %w", o.Key(), err)
			}
			delete(in, k)
		}
	}
	ns = slices.DeleteFunc(ns, func(n Neighbor) bool { _, ok := in[n.Key()]; return !ok })
	g.imports.Store(newImportRules(ns))
	g.limit.configure(ns)
	if err := g.setExportPolicy(ctx, ns); err != nil {
		return err
	}
	return g.originateDefaults(g.cfg.Neighbors)
}

// setZones publishes the interface of each unnumbered neighbor's address
// in GoBGP (g.applied), keeping those of neighbors gone within zoneGrace.
// Called with g.mu held.
func (g *GoBGP) setZones() {
	now := time.Now()
	zones := map[netip.Addr]zone{}
	if old := g.zones.Load(); old != nil {
		for a, z := range *old {
			if z.gone.IsZero() {
				z.gone = now
			}
			if now.Sub(z.gone) < zoneGrace {
				zones[a] = z
			}
		}
	}
	for _, n := range g.applied {
		if n.Interface == "" {
			continue
		}
		a := n.Address.WithZone("")
		if z, ok := zones[a]; ok && z.gone.IsZero() && z.ifname != n.Interface {
			g.log.Warn("bgp: two unnumbered neighbors have the same link-local address: their routes cannot be told apart", "address", a.String(), "interfaces", z.ifname+","+n.Interface)
		}
		zones[a] = zone{ifname: n.Interface}
	}
	g.zones.Store(&zones)
}

// resolve returns ns with each unnumbered neighbor at the address heard
// on its interface, leaving out those not heard yet, and the unnumbered
// neighbors' interfaces.
func (g *GoBGP) resolve(ns []Neighbor) (out []Neighbor, ifs []string) {
	for _, n := range ns {
		if n.Interface != "" {
			ifs = append(ifs, n.Interface)
			if g.nd == nil {
				continue
			}
			if n.Address = g.nd.addr(n.Interface); !n.Address.IsValid() {
				continue
			}
			// Ours: which end connects depends on it (passive), and a
			// change of it makes the session again.
			n.Source = linkLocal(n.Interface)
		}
		out = append(out, n)
	}
	return out, ifs
}

// established reports whether the session with addr is established.
func (g *GoBGP) established(addr netip.Addr) bool {
	up := false
	g.s.ListPeer(context.Background(), &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
		up = up || p.State != nil && p.State.SessionState == api.PeerState_ESTABLISHED
	})
	return up
}

// learned takes an unnumbered neighbor's address, heard for the first
// time or changed (linkNeighbors' goroutine).
func (g *GoBGP) learned(ifname string, addr netip.Addr) (started bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.s == nil || g.stopped {
		return false
	}
	if err := g.apply(); err != nil {
		g.log.Error("bgp: unnumbered neighbor", "interface", ifname, "address", addr.String(), "err", err)
		return false
	}
	return !g.failed[ifname]
}

// defaultRoutes are the default routes of each family.
var defaultRoutes = map[Family]Route{
	IPv4Unicast: {Kind: Prefix, Prefix: netip.MustParsePrefix("0.0.0.0/0")},
	IPv6Unicast: {Kind: Prefix, Prefix: netip.MustParsePrefix("::/0")},
}

// originateDefaults announces the default route of each family some
// neighbor with DefaultOriginate carries, and withdraws the others (the
// export policy lets them reach those neighbors only). Called with g.mu
// held.
func (g *GoBGP) originateDefaults(ns []Neighbor) error {
	for f, r := range defaultRoutes {
		want := slices.ContainsFunc(ns, func(n Neighbor) bool { return n.DefaultOriginate && slices.Contains(n.Families, f) })
		p, err := g.path(&r)
		if err != nil {
			return err
		}
		switch {
		case want && !g.announced[r.ID()]:
			if _, err := g.s.AddPath(context.Background(), &api.AddPathRequest{Path: p}); err != nil {
				return fmt.Errorf("default route: %w", err)
			}
			g.announced[r.ID()] = true
		case !want && g.announced[r.ID()]:
			p.IsWithdraw = true
			if err := g.s.DeletePath(context.Background(), &api.DeletePathRequest{Path: p}); err != nil {
				return fmt.Errorf("default route: %w", err)
			}
			delete(g.announced, r.ID())
		}
	}
	return nil
}

// exportPolicy is the name of pwgate's export policy in GoBGP.
const exportPolicy = "pwgate-export"

// setExportPolicy replaces the export policy: routes pwgate did not
// originate are never announced (pwgate is not a transit), then each
// neighbor's export rules in order; what no rule refuses is announced.
// Established sessions are refreshed (soft reset out) when it changed.
//
// It is made again only when what it is made of changed: replacing it
// leaves a moment without it, and an unnumbered neighbor heard (or heard
// anew) changes nothing in it unless it has export rules.
func (g *GoBGP) setExportPolicy(ctx context.Context, ns []Neighbor) error {
	var key strings.Builder
	for i, n := range ns {
		if n.DefaultOriginate || len(n.Export) > 0 {
			fmt.Fprintf(&key, "%d %s %v %v;", i, hostPrefix(n.Address), n.DefaultOriginate, n.Export)
		}
	}
	if g.exportMade && key.String() == g.exportKey {
		return nil
	}
	if err := g.makeExportPolicy(ctx, ns); err != nil {
		g.exportMade = false
		return err
	}
	g.exportMade, g.exportKey = true, key.String()
	return nil
}

func (g *GoBGP) makeExportPolicy(ctx context.Context, ns []Neighbor) error {
	var sets []*api.DefinedSet
	st := []*api.Statement{
		{Name: "not-transit-ibgp", Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_INTERNAL},
			Actions: &api.Actions{RouteAction: api.RouteAction_REJECT}},
		{Name: "not-transit-ebgp", Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_EXTERNAL},
			Actions: &api.Actions{RouteAction: api.RouteAction_REJECT}},
	}
	// Default routes go to the neighbors with DefaultOriginate, whatever
	// their export rules say, and to no one else.
	var dflt []string
	for _, n := range ns {
		if n.DefaultOriginate {
			dflt = append(dflt, hostPrefix(n.Address))
		}
	}
	if len(dflt) > 0 {
		sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: "pwgate-default-to", List: dflt})
	}
	for _, d := range []string{"0.0.0.0/0", "::/0"} { // a prefix set holds one family
		name := "pwgate-default" + map[bool]string{true: "4", false: "6"}[d == "0.0.0.0/0"]
		sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name, Prefixes: []*api.Prefix{{IpPrefix: d}}})
		isDefault := &api.MatchSet{Type: api.MatchSet_ANY, Name: name}
		if len(dflt) > 0 {
			st = append(st, &api.Statement{Name: name + "-to", Conditions: &api.Conditions{PrefixSet: isDefault,
				NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: "pwgate-default-to"}}, Actions: &api.Actions{RouteAction: api.RouteAction_ACCEPT}})
		}
		st = append(st, &api.Statement{Name: name + "-not", Conditions: &api.Conditions{PrefixSet: isDefault},
			Actions: &api.Actions{RouteAction: api.RouteAction_REJECT}})
	}
	for ni, n := range ns {
		if len(n.Export) == 0 {
			continue
		}
		nb := fmt.Sprintf("pwgate-n%d", ni)
		sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: nb, List: []string{hostPrefix(n.Address)}})
		for ri, r := range n.Export {
			name := fmt.Sprintf("pwgate-n%d-r%d", ni, ri)
			cond := &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: nb}}
			switch r.Kind {
			case EVPNRoutes:
				cond.AfiSafiIn = []*api.Family{apiFamily(EVPN)}
			case PrefixRoutes:
				cond.AfiSafiIn = []*api.Family{apiFamily(IPv4Unicast), apiFamily(IPv6Unicast)}
			}
			if r.HasRT {
				sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_EXT_COMMUNITY, Name: name + "-rt", List: []string{fmt.Sprintf("rt:^%d:%d$", r.RT.ASN, r.RT.Value)}})
				cond.ExtCommunitySet = &api.MatchSet{Type: api.MatchSet_ANY, Name: name + "-rt"}
			}
			if r.Prefix.IsValid() {
				sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name + "-p", Prefixes: []*api.Prefix{{
					IpPrefix: r.Prefix.Masked().String(), MaskLengthMin: uint32(r.Prefix.Bits()), MaskLengthMax: uint32(r.Prefix.Addr().BitLen())}}})
				cond.PrefixSet = &api.MatchSet{Type: api.MatchSet_ANY, Name: name + "-p"}
			}
			action := api.RouteAction_REJECT
			if r.Permit {
				action = api.RouteAction_ACCEPT
			}
			st = append(st, &api.Statement{Name: name, Conditions: cond, Actions: &api.Actions{RouteAction: action}})
		}
	}
	// Replace: assignment, policy (with its statements), sets.
	g.s.DeletePolicyAssignment(ctx, &api.DeletePolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_EXPORT}, All: true})
	g.s.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: exportPolicy}, All: true})
	g.s.ListDefinedSet(ctx, &api.ListDefinedSetRequest{}, func(d *api.DefinedSet) {
		if len(d.Name) > 7 && d.Name[:7] == "pwgate-" {
			g.s.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: d, All: true})
		}
	})
	for _, d := range sets {
		if err := g.s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: d}); err != nil {
			return fmt.Errorf("export filter: %w", err)
		}
	}
	pol := &api.Policy{Name: exportPolicy, Statements: st}
	if err := g.s.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol, ReferExistingStatements: false}); err != nil {
		return fmt.Errorf("export filter: %w", err)
	}
	if err := g.s.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_EXPORT, Policies: []*api.Policy{{Name: exportPolicy}},
		DefaultAction: api.RouteAction_ACCEPT}}); err != nil {
		return fmt.Errorf("export filter: %w", err)
	}
	for _, n := range ns {
		g.s.ResetPeer(ctx, &api.ResetPeerRequest{Address: n.Address.String(), Soft: true, Direction: api.ResetPeerRequest_OUT})
	}
	return nil
}

// hostPrefix is a neighbor's address as GoBGP's neighbor sets match it
// (without an unnumbered neighbor's zone).
func hostPrefix(a netip.Addr) string {
	a = a.WithZone("")
	return netip.PrefixFrom(a, a.BitLen()).String()
}

// deletePeer names a neighbor in GoBGP: by its address, an unnumbered
// one's with its interface as the zone.
func deletePeer(n Neighbor) *api.DeletePeerRequest {
	return &api.DeletePeerRequest{Address: n.Address.String()}
}

func equalNeighbor(a, b Neighbor) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func apiFamily(f Family) *api.Family {
	switch f {
	case EVPN:
		return &api.Family{Afi: api.Family_AFI_L2VPN, Safi: api.Family_SAFI_EVPN}
	case IPv6Unicast:
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

// peer builds GoBGP's neighbor.
func (g *GoBGP) peer(n Neighbor, c Config) *api.Peer {
	p := &api.Peer{
		Conf: &api.PeerConf{PeerAsn: n.ASN, AuthPassword: n.Password, Description: n.Description},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: uint64(max(n.HoldTime, 0)), KeepaliveInterval: uint64(max(n.Keepalive, 0)),
			ConnectRetry: 2, // GoBGP waits 2 to 4 s; two GoBGPs that both idle after a failed attempt meet again sooner
		}},
		Transport: &api.Transport{RemotePort: uint32(n.Port)},
	}
	if n.Source.IsValid() {
		p.Transport.LocalAddress = n.Source.String()
	}
	p.Transport.PassiveMode = passive(n)
	if w := g.waiting[n.Key()]; w != nil && w.connecting {
		p.Transport.PassiveMode = false
	}
	if p.Transport.PassiveMode && !listens(g.listening, sessionSource(n)) {
		// Added after the start with a new source: GoBGP cannot listen
		// on it until pwgated restarts, so pwgated connects.
		g.log.Info("bgp: connecting to the neighbor: not listening on the session's address until pwgated restarts", "neighbor", n.Key(), "source", sessionSource(n).String())
		p.Transport.PassiveMode = false
	}
	if n.TTLSecurity > 0 {
		// GTSM (RFC 5082): sent with TTL 255, received only with at least
		// 256 minus the hops (FRR's neighbor ttl-security hops N).
		p.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: uint32(256 - n.TTLSecurity)}
	}
	// An unnumbered neighbor is added at its heard address with the
	// interface as zone ("fe80::1%s0"): GoBGP's own NeighborInterface
	// looks the address up once in the kernel's neighbor table, and its
	// AddPeer refuses it before that (v3.37).
	p.Conf.NeighborAddress = n.Address.String()
	if n.Interface != "" {
		// Bound to the interface, from "::": GoBGP would take our
		// zoned link-local address ("fe80::2%s0") for the next hop of
		// the routes it sends, which net.ParseIP cannot read ("::" went
		// out); from "::" it takes the session's own local address.
		p.Transport.LocalAddress, p.Transport.BindInterface = "::", n.Interface
	}
	if n.Multihop > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(n.Multihop)}
	}
	if c.GracefulRestart {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(c.RestartTime), LocalRestarting: c.Restarting}
	}
	for _, f := range n.Families {
		a := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true}}
		// No PrefixLimits: GoBGP v3.37 checks them by walking the
		// adj-RIB-in on every UPDATE; prefixLimit counts instead.
		if c.GracefulRestart {
			a.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		p.AfiSafis = append(p.AfiSafis, a)
	}
	return p
}

// passive reports whether pwgate waits for n to connect: when our address
// for the session is the higher one. Two GoBGPs that both connect can lock
// into a rhythm in which each attempt reaches the other while it idles
// (5 s after each failed attempt) and a session never comes back; with
// one side passive, the other's next attempt always finds it listening.
// Both sides agree, because each one's neighbor address is the other's
// source (or the session is refused anyway); between unnumbered ones, the
// link-local addresses each hears in the other's router advertisements.
// Other speakers (FRR) connect on their own; one that does not, within
// PassiveWait, is connected to (fallBack).
func passive(n Neighbor) bool {
	src := sessionSource(n)
	return src.IsValid() && src.Compare(n.Address.WithZone("")) > 0
}

// watchPassive calls fallBack every second until ctx ends.
func (g *GoBGP) watchPassive(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.fallBack(now)
		}
	}
}

// fallBack changes sides, every PassiveWait, for the passive neighbors
// that have had no session since they were added: connecting, then
// waiting again. Only until the first session: once a session has been
// up, the neighbor is left as it is (remaking it would end a graceful
// restart's stale routes early).
func (g *GoBGP) fallBack(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return
	}
	for _, n := range g.applied {
		w := g.waiting[n.Key()]
		if w == nil {
			continue
		}
		if g.established(n.Address) {
			delete(g.waiting, n.Key())
			continue
		}
		if now.Sub(w.since) < PassiveWait {
			continue
		}
		w.connecting, w.since = !w.connecting, now
		// A change of the transport remakes the neighbor in GoBGP
		// (UpdatePeer: delete and add); it has had no session, so
		// nothing it sent is lost.
		if _, err := g.s.UpdatePeer(context.Background(), &api.UpdatePeerRequest{Peer: g.peer(n, g.cfg)}); err != nil {
			g.log.Warn("bgp: cannot change which side connects", "neighbor", n.Key(), "err", err)
			continue
		}
		log := g.log.Debug
		if !w.told {
			log, w.told = g.log.Info, true
		}
		if w.connecting {
			log("bgp: the neighbor has not connected: connecting to it, and waiting again if that fails", "neighbor", n.Key(), "waited", PassiveWait.String())
		} else {
			log("bgp: no session yet: waiting for the neighbor to connect again", "neighbor", n.Key())
		}
	}
}

// defaultListen returns the addresses to listen on when the configuration
// names none: the sessions' local addresses (SessionSources). When a
// numbered neighbor's is not known or not this host's yet (no route to
// the neighbor at boot, an IPv6 address still in duplicate address
// detection), GoBGP cannot bind it, and connecting alone is not enough
// (two pwgates that both only connect never meet): the unspecified
// address of its version is listened on instead, as before (GoBGP still
// closes connections from addresses that are not neighbors).
func (g *GoBGP) defaultListen(ns []Neighbor) []netip.Addr {
	var out []netip.Addr
	any4, any6 := false, false
	for _, n := range ns {
		if n.Interface != "" {
			any6 = true // its session comes to a link-local address
			continue
		}
		if a := sessionSource(n); a.IsValid() && bindable(a) {
			out = append(out, a)
			continue
		}
		g.log.Warn("bgp: the session's local address is not this host's yet: listening on every address of its IP version (bgp.listen sets where to listen)", "neighbor", n.Key())
		if n.Address.Is4() {
			any4 = true
		} else {
			any6 = true
		}
	}
	out = slices.DeleteFunc(out, func(a netip.Addr) bool { return a.Is4() && any4 || !a.Is4() && any6 })
	if any4 {
		out = append(out, netip.IPv4Unspecified())
	}
	if any6 {
		out = append(out, netip.IPv6Unspecified())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// kernelSource returns the source address the kernel picks toward dst
// (connecting a UDP socket sends nothing).
func kernelSource(dst netip.Addr) netip.Addr {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 179)))
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

// Announce implements Speaker.
func (g *GoBGP) Announce(r Route) error {
	p, err := g.path(&r)
	if err != nil {
		return err
	}
	if _, err := g.s.AddPath(context.Background(), &api.AddPathRequest{Path: p}); err != nil {
		return fmt.Errorf("announce %s: %w", r.ID(), err)
	}
	g.mu.Lock()
	g.announced[r.ID()] = true
	g.mu.Unlock()
	return nil
}

// Withdraw implements Speaker. It names the route by its NLRI, not by the
// UUID AddPath returned: GoBGP v3.37 finds a UUID by walking every path it
// originated, which makes withdrawing thousands of MACs quadratic. The
// route's own MAC mobility community goes: GoBGP would refuse a
// withdrawal whose sequence is lower than the MAC's current one.
func (g *GoBGP) Withdraw(r Route) error {
	g.mu.Lock()
	ok := g.announced[r.ID()]
	delete(g.announced, r.ID())
	g.mu.Unlock()
	if !ok {
		return nil
	}
	bare := Route{Kind: r.Kind, RD: r.RD, MAC: r.MAC, IP: r.IP, VNI: r.VNI, Prefix: r.Prefix, NextHop: r.NextHop}
	p, err := g.path(&bare)
	if err != nil {
		return err
	}
	p.IsWithdraw = true
	if err := g.s.DeletePath(context.Background(), &api.DeletePathRequest{Path: p}); err != nil {
		return fmt.Errorf("withdraw %s: %w", r.ID(), err)
	}
	return nil
}

// path builds GoBGP's path for r.
func (g *GoBGP) path(r *Route) (*api.Path, error) {
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	var nlri bgp.AddrPrefixInterface
	var ecs []bgp.ExtendedCommunityInterface
	switch r.Kind {
	case MACIP, IMET:
		rd, err := bgp.ParseRouteDistinguisher(r.RD)
		if err != nil {
			return nil, err
		}
		if r.Kind == MACIP {
			ip := ""
			if r.IP.IsValid() {
				ip = r.IP.String()
			}
			nlri = bgp.NewEVPNMacIPAdvertisementRoute(rd, bgp.EthernetSegmentIdentifier{}, 0, net.HardwareAddr(r.MAC[:]).String(), ip, []uint32{r.VNI})
			if r.Seq > 0 || r.Sticky {
				ecs = append(ecs, bgp.NewMacMobilityExtended(r.Seq, r.Sticky))
			}
		} else {
			nlri = bgp.NewEVPNMulticastEthernetTagRoute(rd, 0, r.NextHop.String())
			attrs = append(attrs, bgp.NewPathAttributePmsiTunnel(bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL, false, r.VNI, bgp.NewIngressReplTunnelID(r.NextHop.String())))
			if r.Pwgate {
				ecs = append(ecs, bgp.NewOpaqueExtended(true, pwgateMarker))
			}
		}
		for _, rt := range r.RTs {
			ecs = append(ecs, bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, rt.ASN, rt.Value, true))
		}
		ecs = append(ecs, bgp.NewEncapExtended(bgp.TUNNEL_TYPE_VXLAN))
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(r.NextHop.String(), []bgp.AddrPrefixInterface{nlri}))
	case Prefix:
		if !r.NextHop.IsValid() { // self: the session's own address
			r.NextHop = netip.IPv6Unspecified()
			if r.Prefix.Addr().Is4() {
				r.NextHop = netip.IPv4Unspecified()
			}
		}
		if r.Prefix.Addr().Is4() {
			nlri = bgp.NewIPAddrPrefix(uint8(r.Prefix.Bits()), r.Prefix.Addr().String())
			attrs = append(attrs, bgp.NewPathAttributeNextHop(r.NextHop.String()))
		} else {
			nlri = bgp.NewIPv6AddrPrefix(uint8(r.Prefix.Bits()), r.Prefix.Addr().String())
			attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(r.NextHop.String(), []bgp.AddrPrefixInterface{nlri}))
		}
		if r.HasMED {
			attrs = append(attrs, bgp.NewPathAttributeMultiExitDisc(r.MED))
		}
		if r.LocalPref > 0 {
			attrs = append(attrs, bgp.NewPathAttributeLocalPref(r.LocalPref))
		}
		if len(r.Communities) > 0 {
			attrs = append(attrs, bgp.NewPathAttributeCommunities(r.Communities))
		}
		if len(r.LargeCommunities) > 0 {
			var lc []*bgp.LargeCommunity
			for _, c := range r.LargeCommunities {
				lc = append(lc, bgp.NewLargeCommunity(c.Global, c.Local1, c.Local2))
			}
			attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(lc))
		}
	}
	if len(ecs) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeExtendedCommunities(ecs))
	}
	return apiutil.NewPath(nlri, false, attrs, time.Now())
}

// updates converts the changes of GoBGP's paths, one neighbor's each.
// pwgate's own routes are left out, and a path the neighbor's import
// rules refuse becomes a withdrawal of that neighbor's path (it may have
// been taken before the rules changed).
func (g *GoBGP) updates(paths []*api.Path) []Update {
	var out []Update
	ir := g.imports.Load()
	for _, p := range paths {
		if p.NeighborIp == "" || p.NeighborIp == "<nil>" {
			continue // originated here
		}
		u, ok := convert(p)
		if !ok {
			continue
		}
		if u.Peer.IsLinkLocalUnicast() && u.Peer.Zone() == "" {
			// An unnumbered neighbor's: its interface, and its link-local
			// next hop's.
			if z := g.zones.Load(); z != nil {
				u.Peer = u.Peer.WithZone((*z)[u.Peer].ifname)
				if u.NextHop.IsLinkLocalUnicast() {
					u.NextHop = u.NextHop.WithZone(u.Peer.Zone())
				}
			}
		}
		if !u.Withdraw && ir != nil && !ir.permitted(u.Peer, &u.Route) {
			u.Withdraw = true
		}
		out = append(out, u)
	}
	return out
}

// watchLimits compares, every LimitPoll, each neighbor's routes in
// GoBGP's adj-RIB-in with its prefix limits, until ctx ends.
func (g *GoBGP) watchLimits(ctx context.Context) {
	t := time.NewTicker(LimitPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		type excess struct {
			peer   netip.Addr
			f      Family
			routes int
		}
		var over []excess
		g.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			if p.State == nil || p.State.SessionState != api.PeerState_ESTABLISHED {
				return
			}
			peer, err := netip.ParseAddr(p.State.NeighborAddress)
			if err != nil {
				return
			}
			for _, a := range p.AfiSafis {
				if a.State == nil || a.Config == nil {
					continue
				}
				if f, ok := familyOf(a.Config.Family); ok && g.limit.over(peer, f, int(a.State.Received)) {
					over = append(over, excess{peer, f, int(a.State.Received)})
					return
				}
			}
		})
		for _, x := range over {
			g.overLimit(ctx, x.peer, x.f, x.routes)
		}
	}
}

// familyOf returns the Family of one of GoBGP's.
func familyOf(af *api.Family) (Family, bool) {
	for _, f := range []Family{EVPN, IPv4Unicast, IPv6Unicast} {
		if af != nil && apiFamily(f).Afi == af.Afi && apiFamily(f).Safi == af.Safi {
			return f, true
		}
	}
	return 0, false
}

// overLimit ends the session of a neighbor that sent more routes than its
// prefix limit and lets it connect again after LimitHoldOff. A configured
// neighbor is deleted and added back administratively down: deleting
// drops the messages GoBGP has read from it but not yet processed (its
// receive queue has no bound, and a fast neighbor fills it), where
// disabling would process them first.
func (g *GoBGP) overLimit(ctx context.Context, peer netip.Addr, f Family, routes int) {
	g.log.Warn("bgp: the neighbor sent more routes than its max_prefix: its session ends, and it may connect again later",
		"neighbor", peer.String(), "family", f.String(), "routes", routes, "after", LimitHoldOff.String())
	collectEagerly.begin()
	g.mu.Lock()
	i := slices.IndexFunc(g.applied, func(n Neighbor) bool { return n.Address == peer })
	var err error
	if i >= 0 {
		n := g.applied[i]
		if err = g.s.DeletePeer(ctx, deletePeer(n)); err == nil {
			p := g.peer(n, g.cfg)
			p.Conf.AdminDown = true
			err = g.s.AddPeer(ctx, &api.AddPeerRequest{Peer: p})
		}
	} else {
		err = g.s.DisablePeer(ctx, &api.DisablePeerRequest{Address: peer.String(), Communication: "maximum number of prefixes reached"})
	}
	g.mu.Unlock()
	if err != nil {
		g.log.Error("bgp: end the session of a neighbor over its prefix limit", "neighbor", peer.String(), "err", err)
	}
	time.AfterFunc(eagerAfter, collectEagerly.end)
	time.AfterFunc(LimitHoldOff, func() {
		if ctx.Err() != nil {
			return // stopped
		}
		g.limit.letIn(peer)
		if err := g.s.EnablePeer(ctx, &api.EnablePeerRequest{Address: peer.String()}); err != nil {
			g.log.Debug("bgp: let a neighbor in again", "neighbor", peer.String(), "err", err)
		}
	})
}

// convert reads one of GoBGP's paths.
func convert(p *api.Path) (Update, bool) {
	u := Update{Withdraw: p.IsWithdraw}
	u.Peer, _ = netip.ParseAddr(p.NeighborIp)
	nlri, err := apiutil.GetNativeNlri(p)
	if err != nil {
		return u, false
	}
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return u, false
	}
	switch n := nlri.(type) {
	case *bgp.EVPNNLRI:
		switch rt := n.RouteTypeData.(type) {
		case *bgp.EVPNMacIPAdvertisementRoute:
			u.Kind, u.RD = MACIP, rt.RD.String()
			if len(rt.MacAddress) != 6 {
				return u, false
			}
			u.MAC = frame.MAC(rt.MacAddress)
			if ip, ok := netip.AddrFromSlice(rt.IPAddress); ok && len(rt.IPAddress) > 0 {
				u.IP = ip.Unmap()
			}
			if len(rt.Labels) > 0 {
				u.VNI = rt.Labels[0]
			}
		case *bgp.EVPNMulticastEthernetTagRoute:
			u.Kind, u.RD = IMET, rt.RD.String()
			if ip, ok := netip.AddrFromSlice(rt.IPAddress); ok {
				u.NextHop = ip.Unmap()
			}
		default:
			return u, false
		}
	case *bgp.IPAddrPrefix:
		u.Kind = Prefix
		a, _ := netip.AddrFromSlice(n.Prefix.To4())
		u.Prefix = netip.PrefixFrom(a, int(n.Length))
	case *bgp.IPv6AddrPrefix:
		u.Kind = Prefix
		a, _ := netip.AddrFromSlice(n.Prefix.To16())
		u.Prefix = netip.PrefixFrom(a, int(n.Length))
	default:
		return u, false
	}
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeMpReachNLRI:
			if nh, ok := netip.AddrFromSlice(a.Nexthop); ok && u.Kind != IMET {
				u.NextHop = nh.Unmap()
				// RFC 2545's second next hop, the link-local one: the one
				// to use from a neighbor on the link (as FRR does), and
				// the only one when the first is "::". GoBGP's API keeps
				// it for IPv6 routes only: an IPv4 one (RFC 8950) from an
				// unnumbered neighbor with "::" first is the neighbor's.
				ll, ok := netip.AddrFromSlice(a.LinkLocalNexthop)
				switch {
				case ok && ll.IsLinkLocalUnicast() && (u.Peer.IsLinkLocalUnicast() || u.NextHop.IsUnspecified()):
					u.NextHop = ll
				case u.NextHop.IsUnspecified() && u.Peer.IsLinkLocalUnicast():
					u.NextHop = u.Peer
				}
			}
		case *bgp.PathAttributeNextHop:
			if nh, ok := netip.AddrFromSlice(a.Value); ok {
				u.NextHop = nh.Unmap()
			}
		case *bgp.PathAttributePmsiTunnel:
			if u.Kind == IMET {
				u.VNI = a.Label
			}
		case *bgp.PathAttributeMultiExitDisc:
			u.MED, u.HasMED = a.Value, true
		case *bgp.PathAttributeLocalPref:
			u.LocalPref = a.Value
		case *bgp.PathAttributeCommunities:
			u.Communities = a.Value
		case *bgp.PathAttributeLargeCommunities:
			for _, c := range a.Values {
				u.LargeCommunities = append(u.LargeCommunities, LargeCommunity{Global: c.ASN, Local1: c.LocalData1, Local2: c.LocalData2})
			}
		case *bgp.PathAttributeExtendedCommunities:
			for _, ec := range a.Value {
				switch ec := ec.(type) {
				case *bgp.TwoOctetAsSpecificExtended:
					if ec.SubType == bgp.EC_SUBTYPE_ROUTE_TARGET {
						u.RTs = append(u.RTs, RT{ASN: ec.AS, Value: ec.LocalAdmin})
					}
				case *bgp.MacMobilityExtended:
					u.Seq, u.Sticky = ec.Sequence, ec.IsSticky
				case *bgp.OpaqueExtended:
					if string(ec.Value) == string(pwgateMarker) {
						u.Pwgate = true
					}
				}
			}
		}
	}
	return u, true
}

// Peers implements Speaker.
func (g *GoBGP) Peers() []PeerState {
	var out []PeerState
	g.s.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		st := PeerState{Received: map[Family]int{}}
		if p.Conf != nil {
			st.ASN, st.Description = p.Conf.PeerAsn, p.Conf.Description
			st.Key = p.Conf.NeighborAddress
			if a, err := netip.ParseAddr(p.Conf.NeighborAddress); err == nil && a.Zone() != "" {
				st.Key = "if:" + a.Zone() // unnumbered
			}
		}
		if p.State != nil {
			st.Address, _ = netip.ParseAddr(p.State.NeighborAddress)
			st.LimitResets = g.limit.resetsOf(st.Address)
			st.State = map[api.PeerState_SessionState]string{
				api.PeerState_UNKNOWN: "unknown", api.PeerState_IDLE: "idle", api.PeerState_CONNECT: "connect",
				api.PeerState_ACTIVE: "active", api.PeerState_OPENSENT: "opensent", api.PeerState_OPENCONFIRM: "openconfirm",
				api.PeerState_ESTABLISHED: "established"}[p.State.SessionState]
		}
		if p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil && st.State == "established" {
			st.Since = p.Timers.State.Uptime.AsTime()
		}
		for _, a := range p.AfiSafis {
			if a.State == nil || a.Config == nil || a.Config.Family == nil {
				continue
			}
			if f, ok := familyOf(a.Config.Family); ok {
				st.Received[f] = int(a.State.Accepted)
				st.Advertised += int(a.State.Advertised)
			}
		}
		out = append(out, st)
	})
	// Unnumbered neighbors not heard yet are not in GoBGP.
	g.mu.Lock()
	for _, n := range g.cfg.Neighbors {
		if n.Interface != "" && !slices.ContainsFunc(g.applied, func(a Neighbor) bool { return a.Key() == n.Key() }) {
			st := PeerState{Key: n.Key(), ASN: n.ASN, Description: n.Description, State: StateNotHeard, Received: map[Family]int{}}
			if g.failed[n.Interface] {
				st.State = StateNotStarted
			}
			out = append(out, st)
		}
	}
	if g.nd != nil {
		for i := range out {
			if ifname, ok := strings.CutPrefix(out[i].Key, "if:"); ok {
				out[i].RAsIgnored = g.nd.ignoredOn(ifname)
			}
		}
	}
	g.mu.Unlock()
	return out
}

// The states of an unnumbered neighbor outside GoBGP: no router
// advertisement heard on its interface yet, or heard but its session
// could not start (no link-local address of ours there yet).
const (
	StateNotHeard   = "waiting for its router advertisement"
	StateNotStarted = "heard, session not started"
)

// Stop implements Speaker.
func (g *GoBGP) Stop(graceful bool) {
	if g.s == nil {
		return
	}
	if g.cancel != nil {
		g.cancel()
	}
	g.mu.Lock()
	nd := g.nd
	g.nd, g.stopped = nil, true
	g.mu.Unlock()
	if nd != nil {
		nd.Close() // not under mu: its goroutine may be waiting for it in learned
	}
	if graceful {
		// Leave without a NOTIFICATION: the sessions end when the process
		// exits and its sockets close, and graceful-restart helpers keep
		// pwgate's routes (GoBGP's Stop would send Cease, which cancels
		// graceful restart).
		return
	}
	g.endSessions()
	g.s.Stop()
}

// endWait bounds how long Stop waits for GoBGP to free the sessions it
// deleted. (GoBGP's own steps may wait longer: its server waits for a
// deleted session's NOTIFICATION to be written, up to the hold time.)
const endWait = 2 * time.Second

// endSessions deletes every neighbor, each with a Cease as GoBGP's Stop
// would send, and waits (endWait at most) until GoBGP has freed each
// session, whose goroutines have then ended. GoBGP v3.37's StopBgp
// deletes the neighbors and clears its global configuration at once,
// while a deleted session's goroutines may still read that configuration
// (for an UPDATE or an OPEN in flight): a data race, which failed CI's
// unit step once in TestGoBGPMultipath's teardown. With no neighbors
// left, StopBgp only closes the listeners and clears it.
func (g *GoBGP) endSessions() {
	var keys []string
	g.s.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		keys = append(keys, p.GetConf().GetNeighborAddress())
	})
	if len(keys) == 0 {
		return
	}
	freed := make(chan string, 2*len(keys)) // with room for others GoBGP frees
	g.freed.Store(&freed)
	defer g.freed.Store(nil)
	left := map[string]bool{}
	for _, k := range keys {
		if g.s.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: k}) == nil {
			left[k] = true
		}
	}
	timeout := time.NewTimer(endWait)
	defer timeout.Stop()
	for len(left) > 0 {
		select {
		case k := <-freed:
			delete(left, k)
		case <-timeout.C:
			g.log.Warn("bgp: sessions not ended in time at stop", "sessions", len(left))
			return
		}
	}
}

// sessionFreed is told by GoBGP's log that it freed the session of the
// neighbor key (its address as configured) once its goroutines ended.
// GoBGP's goroutine: it must not block.
func (g *GoBGP) sessionFreed(key string) {
	if c := g.freed.Load(); c != nil {
		select {
		case *c <- key:
		default:
		}
	}
}

// resetDisabled resets the session with peer (GoBGP's log key: its
// address) after GoBGP disabled a family on it for a malformed NLRI. RFC
// 4760 §7 wants the family's routes from that neighbor deleted then, and
// GoBGP v3.37 keeps them; a session reset (RFC 7606's other choice) does
// delete them. It runs on its own goroutine: it is called from GoBGP's.
func (g *GoBGP) resetDisabled(peer string) {
	go func() {
		g.log.Warn("bgp: resetting the session after a malformed NLRI, so that the neighbor's routes go", "neighbor", peer)
		g.s.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: peer, Communication: "malformed NLRI (RFC 7606)"})
	}()
}

// logger is GoBGP's log.Logger over slog, at GoBGP's levels; disabled is
// told when GoBGP disables a family on a session, freed when it freed a
// deleted one.
type logger struct {
	l        *slog.Logger
	disabled func(peer string)
	freed    func(peer string)
}

func (l *logger) attrs(f gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(f))
	for k, v := range f {
		out = append(out, k, v)
	}
	return out
}

func (l *logger) Panic(msg string, f gobgplog.Fields) { l.l.Error("bgp: "+msg, l.attrs(f)...) }
func (l *logger) Fatal(msg string, f gobgplog.Fields) { l.l.Error("bgp: "+msg, l.attrs(f)...) }
func (l *logger) Error(msg string, f gobgplog.Fields) { l.l.Error("bgp: "+msg, l.attrs(f)...) }
func (l *logger) Warn(msg string, f gobgplog.Fields) {
	if strings.HasPrefix(msg, "cannot set TTL (255) for TCPListener") {
		// GoBGP sets TTL 255 on every listener, for neighbors with TTL
		// security; on an IPv6 one it fails, and GoBGP sets it again on
		// each accepted session (a failure there is a warning).
		l.l.Debug("bgp: "+msg, l.attrs(f)...)
		return
	}
	l.l.Warn("bgp: "+msg, l.attrs(f)...)
	if (msg == "Capability was disabled" || msg == "Error occurred during AFI/SAFI disabling") && l.disabled != nil {
		if k, ok := f["Key"].(string); ok {
			l.disabled(k)
		}
	}
}
func (l *logger) Info(msg string, f gobgplog.Fields) { l.l.Info("bgp: "+msg, l.attrs(f)...) }
func (l *logger) Debug(msg string, f gobgplog.Fields) {
	l.l.Debug("bgp: "+msg, l.attrs(f)...)
	// GoBGP says so, whatever the level, once a deleted session's
	// goroutines have ended (Serve's handlefsmMsg).
	if msg == "freed fsm.h" && l.freed != nil {
		if k, ok := f["Key"].(string); ok {
			l.freed(k)
		}
	}
}
func (l *logger) SetLevel(gobgplog.LogLevel) {}
func (l *logger) GetLevel() gobgplog.LogLevel {
	if l.l.Enabled(context.Background(), slog.LevelDebug) {
		return gobgplog.DebugLevel
	}
	return gobgplog.InfoLevel
}
