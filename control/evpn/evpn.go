// Package evpn owns pwgate's VXLAN forwarding database: the MACs learned
// on the LAN (and, without BGP, behind remote VTEPs), the MAC and flood
// routes BGP EVPN brings (RFC 7432, RFC 8365), MAC mobility, aging, and the
// remote VTEPs with their next hops. It publishes immutable snapshots for
// the data goroutines (vxlan.Table through an atomic.Pointer), tells the
// XDP program which VTEPs to accept, and announces what pwgate originates
// through a bgp.Speaker.
//
// A Controller is driven by one goroutine, pwgated's main one: Work,
// Age, Resolve and Reconfigure are called there only. Received (the
// speaker's callback) and the status methods are safe from any goroutine.
package evpn

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/spsc"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
)

// Defaults.
const (
	DefaultAging     = 300 * time.Second
	DefaultLimit     = 16384
	DefaultDupMoves  = 5 // FRR's dup-addr-detection defaults: 5 moves
	DefaultDupWindow = 180 * time.Second
	// DefaultMaxVTEPs is the most remote VTEPs in use at once: the size of
	// the XDP program's peer map (bpf's MAX_PEERS).
	DefaultMaxVTEPs = 1024
	// DefaultNeighborVTEPs is the most VTEPs one neighbor's routes may
	// name: half the map, so that no one neighbor can fill it.
	DefaultNeighborVTEPs = DefaultMaxVTEPs / 2
	// maxRoutesPerMAC is the most MAC and MAC+IP routes kept for one MAC
	// (a MAC route and a few addresses from each of a few VTEPs); more are
	// refused as over the MAC limit.
	maxRoutesPerMAC = 16
	// ringSize is each learned ring's length; a full ring loses reports
	// the data goroutines repeat a second later.
	ringSize = 4096
)

// VNI is one VXLAN segment.
type VNI struct {
	ID   uint32
	VLAN uint16 // 802.1Q VLAN on the LAN port; 0: untagged
	// Remotes are static flood list entries (with the global ones).
	Remotes []netip.Addr
	// RT is the route target imported and exported; zero: auto (ASN:VNI,
	// and on import any ASN:VNI, as FRR matches auto RTs).
	RT bgp.RT
}

// Config configures a Controller.
type Config struct {
	Local netip.Addr // our VTEP address
	VNIs  []VNI
	// Aging forgets learned MACs that sent nothing for this long.
	Aging time.Duration
	// Limit is the most MACs in the forwarding database at once: learned
	// on the LAN, learned from frames and imported from EVPN routes.
	Limit int
	// MaxVTEPs is the most remote VTEPs in use at once; routes naming a
	// new VTEP beyond it are refused (and tried again as VTEPs go).
	MaxVTEPs int
	// NeighborVTEPLimit is the most VTEPs the routes of one neighbor may
	// name (0: DefaultNeighborVTEPs, at most MaxVTEPs).
	NeighborVTEPLimit int
	// VTEPPrefixes are where remote VTEPs may be: a route whose next hop
	// is outside is not imported. Empty: anywhere.
	VTEPPrefixes []netip.Prefix
	// NeighborVTEPs replace VTEPPrefixes for routes from one neighbor
	// (by its address).
	NeighborVTEPs map[netip.Addr][]netip.Prefix
	// LearnRemote learns remote MACs from received frames.
	LearnRemote bool
	// StaticPwgate: static remotes are pwgate VTEPs (take split frames).
	StaticPwgate bool
	// EVPN, with a speaker: our ASN and router ID make RDs and auto RTs;
	// Pwgate marks our flood routes as taking split frames. (The
	// neighbors' import filters apply in the speaker, before this.)
	ASN      uint32
	RouterID netip.Addr
	Pwgate   bool
	// DupMoves moves within DupWindow make a MAC a duplicate (RFC 7432
	// §15.1): its moves are no longer announced until DupWindow passes
	// without one.
	DupMoves  int
	DupWindow time.Duration
}

func (c *Config) defaults() {
	if c.Aging == 0 {
		c.Aging = DefaultAging
	}
	if c.Limit == 0 {
		c.Limit = DefaultLimit
	}
	if c.MaxVTEPs == 0 {
		c.MaxVTEPs = DefaultMaxVTEPs
	}
	if c.NeighborVTEPLimit == 0 {
		c.NeighborVTEPLimit = min(DefaultNeighborVTEPs, c.MaxVTEPs)
	}
	if c.DupMoves == 0 {
		c.DupMoves = DefaultDupMoves
	}
	if c.DupWindow == 0 {
		c.DupWindow = DefaultDupWindow
	}
}

// Underlay is what the controller needs of the kernel and the XDP program.
type Underlay interface {
	// NextHop returns the MAC to send to for a VTEP's address, or false
	// while the kernel has not resolved it (NextHop then asks it to).
	NextHop(vtep netip.Addr) (frame.MAC, bool)
	// SetVTEPs makes addrs the VTEPs the uplink accepts VXLAN from.
	SetVTEPs(addrs []netip.Addr) error
}

// Counters are the controller's counters.
type Counters struct {
	Learned, Aged, Moved, Duplicates, OverLimit atomic.Uint64
	// NotImported counts refused routes by reason.
	NotImported [numReasons]atomic.Uint64
}

// reason is why a received route was not imported.
type reason int

const (
	imported   reason = iota
	noVNI             // no configured VNI with its route target and VNI
	ownVTEP           // no next hop, or ours
	family            // a VTEP of the other IP version
	vtepPrefix        // a VTEP outside the allowed prefixes
	vtepLimit         // a new VTEP beyond MaxVTEPs
	macLimit          // a new MAC beyond Limit, or too many routes for one MAC
	numReasons
)

// reasonCounters are the reasons' counters.
var reasonCounters = [numReasons]stats.Counter{0, stats.EVPNNotImportedNoVNI, stats.EVPNNotImportedOwnVTEP,
	stats.EVPNNotImportedFamily, stats.EVPNNotImportedVTEPPrefix, stats.EVPNNotImportedVTEPLimit, stats.EVPNNotImportedMACLimit}

// local is a MAC on the LAN.
type local struct {
	seen      int32 // slot in the table's Seen array
	seq       uint32
	since     time.Time
	announced bool
	ips       []netip.Addr // addresses it announced for itself (ARP, ND): MAC+IP routes
}

// maxIPs is the most addresses kept per LAN MAC (a host's IPv4, link-local
// and a few global IPv6 addresses); more are not announced.
const maxIPs = 8

// ipKey is an address within a VNI (index).
type ipKey struct {
	vni int
	ip  netip.Addr
}

// remoteRoute is an imported EVPN route.
type remoteRoute struct {
	kind   bgp.RouteKind
	key    vxlan.Key // MACIP
	vni    int       // index
	vtep   netip.Addr
	seq    uint32
	sticky bool
	ip     netip.Addr
	pwgate bool
	peer   netip.Addr // the neighbor it came from
}

// learnedRemote is a MAC learned from a received frame (static remotes).
type learnedRemote struct {
	vtep netip.Addr
	seen int32
}

// vtep is a remote VTEP in use.
type vtep struct {
	addr     netip.Addr
	nextHop  frame.MAC
	resolved bool
	refs     int  // static remotes, routes and learned MACs naming it; 0: a free index
	pwgate   int  // flood routes from it with pwgate's marker
	static   bool // a static remote
}

// mobility is a MAC's recent moves, for duplicate detection.
type mobility struct {
	moves     []time.Time
	duplicate bool
}

// Controller is the forwarding database's owner.
type Controller struct {
	log *slog.Logger
	u   Underlay
	sp  bgp.Speaker // nil: static only

	fdb     atomic.Pointer[vxlan.Table]
	learned [2]*spsc.Ring[dataplane.Learned]
	wake    chan struct{}

	pmu     sync.Mutex
	pending []bgp.Update

	// mu guards everything below: the main goroutine changes it, status
	// readers read it.
	mu       sync.Mutex
	cfg      Config
	b        *vxlan.Builder
	freeSeen []int32
	locals   map[vxlan.Key]*local
	received map[string]bgp.Update         // every EVPN path received, imported or not, by pathID
	routes   map[string]*remoteRoute       // imported, by pathID
	byKey    map[vxlan.Key]map[string]bool // MACIP path IDs per MAC
	byVNI    []map[string]bool             // IMET path IDs per VNI index
	lremote  map[vxlan.Key]learnedRemote   // learned from frames
	mob      map[vxlan.Key]*mobility
	vteps    []vtep // by index; refs 0: free
	vtepIdx  map[netip.Addr]int32
	imets    map[int]bgp.Route   // our flood routes, by VNI index
	ipOwner  map[ipKey]vxlan.Key // which LAN MAC has an address
	// refused are received routes refused for a limit (vtepLimit,
	// macLimit), by pathID: tried again by Age when room was made.
	refused  map[string]bool
	roomMade bool // a VTEP or a MAC went since the last retry
	// byPeer counts, per neighbor, its imported routes naming each VTEP.
	byPeer   map[netip.Addr]map[netip.Addr]int
	counters Counters
	dirty    bool
	peerSet  []netip.Addr // what the underlay was last told
	peerErr  bool         // telling the underlay failed: try again
}

// New returns a controller for cfg; sp may be nil (static remotes only).
// Call Begin once the speaker has started.
func New(cfg Config, u Underlay, sp bgp.Speaker, log *slog.Logger) (*Controller, error) {
	cfg.defaults()
	if err := check(&cfg); err != nil {
		return nil, err
	}
	c := &Controller{log: log, u: u, sp: sp, wake: make(chan struct{}, 1), cfg: cfg,
		b: vxlan.NewBuilder(cfg.Limit + 1), locals: map[vxlan.Key]*local{}, routes: map[string]*remoteRoute{}, received: map[string]bgp.Update{},
		byKey: map[vxlan.Key]map[string]bool{}, lremote: map[vxlan.Key]learnedRemote{}, mob: map[vxlan.Key]*mobility{},
		vtepIdx: map[netip.Addr]int32{}, imets: map[int]bgp.Route{}, ipOwner: map[ipKey]vxlan.Key{}, refused: map[string]bool{},
		byPeer: map[netip.Addr]map[netip.Addr]int{}}
	for i := range c.learned {
		c.learned[i] = spsc.New[dataplane.Learned](ringSize)
	}
	for i := cfg.Limit; i >= 1; i-- { // slot 0: "not aged"
		c.freeSeen = append(c.freeSeen, int32(i))
	}
	c.refStatic(cfg.VNIs, 1)
	c.dirty = true
	c.flush()
	return c, nil
}

func check(c *Config) error {
	if !c.Local.IsValid() {
		return fmt.Errorf("evpn: no local VTEP address")
	}
	if len(c.VNIs) == 0 {
		return fmt.Errorf("evpn: no VNI")
	}
	seen := map[uint32]bool{}
	vlans := map[uint16]uint32{}
	for _, v := range c.VNIs {
		if v.ID == 0 || v.ID > vxlan.MaxVNI {
			return fmt.Errorf("evpn: VNI %d is out of range 1..%d", v.ID, vxlan.MaxVNI)
		}
		if seen[v.ID] {
			return fmt.Errorf("evpn: VNI %d twice", v.ID)
		}
		seen[v.ID] = true
		if o, ok := vlans[v.VLAN]; ok {
			return fmt.Errorf("evpn: VNIs %d and %d both on VLAN %d", o, v.ID, v.VLAN)
		}
		vlans[v.VLAN] = v.ID
		for _, r := range v.Remotes {
			if r == c.Local {
				return fmt.Errorf("evpn: VNI %d: remote %s is our own VTEP address", v.ID, r)
			}
			if r.Is4() != c.Local.Is4() {
				return fmt.Errorf("evpn: VNI %d: remote %s and our VTEP address %s are not of the same IP version", v.ID, r, c.Local)
			}
		}
	}
	if c.Limit < 1 || c.Limit > 1<<20 {
		return fmt.Errorf("evpn: MAC limit %d is out of range 1..%d", c.Limit, 1<<20)
	}
	if c.MaxVTEPs < 1 || c.MaxVTEPs > DefaultMaxVTEPs {
		return fmt.Errorf("evpn: VTEP limit %d is out of range 1..%d", c.MaxVTEPs, DefaultMaxVTEPs)
	}
	if c.NeighborVTEPLimit < 1 || c.NeighborVTEPLimit > c.MaxVTEPs {
		return fmt.Errorf("evpn: a neighbor's VTEP limit %d is out of range 1..%d", c.NeighborVTEPLimit, c.MaxVTEPs)
	}
	return nil
}

// Table is what the data goroutines load.
func (c *Controller) Table() *atomic.Pointer[vxlan.Table] { return &c.fdb }

// Learned returns the rings the data goroutines report to (encap's, decap's).
func (c *Controller) Learned() [2]*spsc.Ring[dataplane.Learned] { return c.learned }

// Wake receives a value when Work has something to do.
func (c *Controller) Wake() chan struct{} { return c.wake }

func (c *Controller) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Received takes the speaker's updates (any goroutine).
func (c *Controller) Received(us []bgp.Update) {
	c.pmu.Lock()
	c.pending = append(c.pending, us...)
	c.pmu.Unlock()
	c.notify()
}

// Begin announces our flood routes.
func (c *Controller) Begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.announceIMETs()
}

// rt returns VNI i's route target.
func (c *Controller) rt(i int) bgp.RT {
	v := c.cfg.VNIs[i]
	if v.RT != (bgp.RT{}) {
		return v.RT
	}
	return bgp.AutoRT(c.cfg.ASN, v.ID)
}

// imports reports whether rt brings a route into VNI i.
func (c *Controller) imports(i int, rt bgp.RT) bool {
	v := c.cfg.VNIs[i]
	if v.RT != (bgp.RT{}) {
		return rt == v.RT
	}
	return rt.Value == v.ID
}

func (c *Controller) announceIMETs() {
	if c.sp == nil {
		return
	}
	for i, v := range c.cfg.VNIs {
		r := bgp.Route{Kind: bgp.IMET, RD: bgp.AutoRD(c.cfg.RouterID, i), VNI: v.ID, RTs: []bgp.RT{c.rt(i)},
			Pwgate: c.cfg.Pwgate, NextHop: c.cfg.Local}
		if old, ok := c.imets[i]; ok && old.String() == r.String() {
			continue
		}
		if err := c.sp.Announce(r); err != nil {
			c.log.Error("evpn: announce flood route", "vni", v.ID, "err", err)
			continue
		}
		c.imets[i] = r
	}
}

// macRoute is our MAC route for a local MAC.
func (c *Controller) macRoute(k vxlan.Key, l *local) bgp.Route {
	vi := k.VNI()
	return bgp.Route{Kind: bgp.MACIP, RD: bgp.AutoRD(c.cfg.RouterID, vi), MAC: k.MAC(), VNI: c.cfg.VNIs[vi].ID,
		RTs: []bgp.RT{c.rt(vi)}, Seq: l.seq, NextHop: c.cfg.Local}
}

// ourRoutes returns our MAC route for a LAN MAC and its MAC+IP routes.
func (c *Controller) ourRoutes(k vxlan.Key, l *local) []bgp.Route {
	r := c.macRoute(k, l)
	out := []bgp.Route{r}
	for _, ip := range l.ips {
		r.IP = ip
		out = append(out, r)
	}
	return out
}

func (c *Controller) announce(k vxlan.Key, l *local) {
	if c.sp == nil || c.duplicate(k) {
		return
	}
	for _, r := range c.ourRoutes(k, l) {
		if err := c.sp.Announce(r); err != nil {
			c.log.Error("evpn: announce MAC", "mac", k.MAC().String(), "ip", r.IP, "vni", c.cfg.VNIs[k.VNI()].ID, "err", err)
			return
		}
	}
	l.announced = true
}

func (c *Controller) withdraw(k vxlan.Key, l *local) {
	if c.sp == nil || !l.announced {
		return
	}
	for _, r := range c.ourRoutes(k, l) {
		if err := c.sp.Withdraw(r); err != nil {
			c.log.Error("evpn: withdraw MAC", "mac", k.MAC().String(), "ip", r.IP, "err", err)
		}
	}
	l.announced = false
}

// learnIP takes an address a LAN MAC announced for itself: it is
// announced as a MAC+IP route, and taken from the MAC that had it before.
func (c *Controller) learnIP(k vxlan.Key, ip netip.Addr) {
	l, ok := c.locals[k]
	if !ok || slices.Contains(l.ips, ip) {
		return
	}
	ik := ipKey{k.VNI(), ip}
	if prev, ok := c.ipOwner[ik]; ok && prev != k {
		if p := c.locals[prev]; p != nil {
			if p.announced && c.sp != nil {
				r := c.macRoute(prev, p)
				r.IP = ip
				c.sp.Withdraw(r)
			}
			p.ips = slices.DeleteFunc(p.ips, func(a netip.Addr) bool { return a == ip })
		}
	}
	if len(l.ips) >= maxIPs {
		return
	}
	l.ips = append(l.ips, ip)
	c.ipOwner[ik] = k
	if l.announced && c.sp != nil {
		r := c.macRoute(k, l)
		r.IP = ip
		if err := c.sp.Announce(r); err != nil {
			c.log.Error("evpn: announce MAC+IP", "mac", k.MAC().String(), "ip", ip, "err", err)
		}
	}
}

// Work handles what the data goroutines learned and what BGP brought,
// then publishes the result.
func (c *Controller) Work(now time.Time) {
	c.pmu.Lock()
	us := c.pending
	c.pending = nil
	c.pmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range us {
		c.update(&us[i], now)
	}
	var buf [256]dataplane.Learned
	for side, r := range c.learned {
		for {
			n := r.Pop(buf[:])
			for _, l := range buf[:n] {
				if side == 0 {
					c.learnLocal(l.Key, now)
					if l.IP.IsValid() {
						c.learnIP(l.Key, l.IP)
					}
				} else {
					c.learnRemote(l.Key, l.VTEP, now)
				}
			}
			if n < len(buf) {
				break
			}
		}
	}
	c.flush()
}

// flush publishes a new table if anything changed, and the VTEP set.
// A failed update of the VTEP set is tried again at the next call (Age
// calls it every few seconds), not only when something changes.
func (c *Controller) flush() {
	if !c.dirty && !c.peerErr {
		return
	}
	if c.dirty {
		c.dirty = false
		c.setVNIs()
		c.publish()
	}
	set := c.vtepAddrs()
	if slices.Equal(set, c.peerSet) {
		c.peerErr = false
		return
	}
	if err := c.u.SetVTEPs(set); err != nil {
		if !c.peerErr {
			c.log.Error("evpn: set the XDP program's VTEPs (tried again every few seconds)", "vteps", len(set), "err", err)
		}
		c.peerErr = true
		return
	}
	if c.peerErr {
		c.log.Info("evpn: the XDP program's VTEPs are set again", "vteps", len(set))
	}
	c.peerErr = false
	c.peerSet = set
}

func (c *Controller) vtepAddrs() []netip.Addr {
	var out []netip.Addr
	for _, v := range c.vteps {
		if v.refs > 0 {
			out = append(out, v.addr)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// publish makes the builder's state the data path's.
func (c *Controller) publish() {
	vt := make([]vxlan.VTEP, len(c.vteps))
	for i, v := range c.vteps {
		if v.refs > 0 {
			vt[i] = vxlan.VTEP{Addr: v.addr, NextHop: v.nextHop, Up: v.resolved, Pwgate: v.pwgate > 0 || v.static && c.cfg.StaticPwgate}
		}
	}
	c.b.SetVTEPs(vt)
	c.fdb.Store(c.b.Publish())
}

// setVNIs gives the builder the VNIs with their flood lists: the static
// remotes and the VTEPs that sent flood routes.
func (c *Controller) setVNIs() {
	vnis := make([]vxlan.VNI, len(c.cfg.VNIs))
	for i, v := range c.cfg.VNIs {
		set := map[int32]bool{}
		for _, r := range v.Remotes {
			set[c.vtepIdx[r]] = true
		}
		if i < len(c.byVNI) {
			for id := range c.byVNI[i] {
				set[c.vtepIdx[c.routes[id].vtep]] = true
			}
		}
		flood := make([]int32, 0, len(set))
		for x := range set {
			flood = append(flood, x)
		}
		slices.Sort(flood)
		vnis[i] = vxlan.VNI{ID: v.ID, VLAN: v.VLAN, Flood: flood}
	}
	c.b.SetVNIs(vnis)
}

// ref takes a reference to the VTEP at a and returns its index: a new
// VTEP gets a free index and its next hop is looked up.
func (c *Controller) ref(a netip.Addr) int32 {
	i, ok := c.vtepIdx[a]
	if !ok {
		i = int32(slices.IndexFunc(c.vteps, func(v vtep) bool { return v.refs == 0 }))
		if i < 0 {
			c.vteps = append(c.vteps, vtep{})
			i = int32(len(c.vteps) - 1)
		}
		c.vteps[i] = vtep{addr: a}
		c.vteps[i].nextHop, c.vteps[i].resolved = c.u.NextHop(a)
		c.vtepIdx[a] = i
	}
	c.vteps[i].refs++
	c.dirty = true
	return i
}

// unref drops a reference; the last frees the index.
func (c *Controller) unref(a netip.Addr) {
	i, ok := c.vtepIdx[a]
	if !ok {
		return
	}
	c.dirty = true
	if c.vteps[i].refs--; c.vteps[i].refs == 0 {
		c.vteps[i] = vtep{}
		delete(c.vtepIdx, a)
		c.roomMade = true
	}
}

// refStatic takes (delta 1) or drops (-1) the static remotes' references.
func (c *Controller) refStatic(vnis []VNI, delta int) {
	for _, v := range vnis {
		for _, r := range v.Remotes {
			if delta > 0 {
				c.vteps[c.ref(r)].static = true
				continue
			}
			c.unref(r)
		}
	}
	// A VTEP stays static while any VNI lists it.
	for i := range c.vteps {
		c.vteps[i].static = false
	}
	for _, v := range c.cfg.VNIs {
		for _, r := range v.Remotes {
			if i, ok := c.vtepIdx[r]; ok {
				c.vteps[i].static = true
			}
		}
	}
}

// vniFor returns the index of the VNI a received route belongs to (by its
// route targets), or -1.
func (c *Controller) vniFor(u *bgp.Update) int {
	for i := range c.cfg.VNIs {
		for _, rt := range u.RTs {
			if c.imports(i, rt) && u.VNI == c.cfg.VNIs[i].ID {
				return i
			}
		}
	}
	return -1
}

// pathID names one neighbor's path to a route: the speaker reports every
// neighbor's, so that a path refused here (a VTEP outside that neighbor's
// prefixes) does not hide another neighbor's path to the same route.
func pathID(u *bgp.Update) string {
	if !u.Peer.IsValid() {
		return u.ID()
	}
	return u.ID() + "@" + u.Peer.String()
}

// update takes one neighbor's path to a route, or its withdrawal.
func (c *Controller) update(u *bgp.Update, now time.Time) {
	if u.Kind != bgp.MACIP && u.Kind != bgp.IMET {
		return
	}
	id := pathID(u)
	c.forget(id, now)
	retry := c.refused[id]
	delete(c.refused, id)
	if u.Withdraw {
		delete(c.received, id)
		return
	}
	c.received[id] = *u
	vi := c.vniFor(u)
	if why := c.refuse(u, vi); why != imported {
		if why == vtepLimit || why == macLimit {
			c.refused[id] = true
		}
		if !retry { // counted once, not at each retry
			c.counters.NotImported[why].Add(1)
		}
		return
	}
	r := &remoteRoute{kind: u.Kind, vni: vi, vtep: u.NextHop, seq: u.Seq, sticky: u.Sticky, ip: u.IP, pwgate: u.Pwgate, peer: u.Peer}
	c.routes[id] = r
	c.peerRef(r, 1)
	i := c.ref(r.vtep)
	if u.Kind == bgp.IMET {
		for len(c.byVNI) <= vi {
			c.byVNI = append(c.byVNI, map[string]bool{})
		}
		c.byVNI[vi][id] = true
		if r.pwgate {
			c.vteps[i].pwgate++
		}
		return
	}
	r.key = vxlan.MakeKey(vi, u.MAC)
	if c.byKey[r.key] == nil {
		c.byKey[r.key] = map[string]bool{}
	}
	c.byKey[r.key][id] = true
	c.settle(r.key, now)
}

// refuse says why the received route u (for VNI index vi) is not
// imported, or imported. What a neighbor sends is checked here before it
// reaches the forwarding database, the flood lists or the XDP program:
// the VTEP's family and prefix, and the limits on VTEPs and MACs.
func (c *Controller) refuse(u *bgp.Update, vi int) reason {
	nh := u.NextHop
	switch {
	case !nh.IsValid() || nh == c.cfg.Local:
		return ownVTEP
	case nh.Is4() != c.cfg.Local.Is4() || nh.Is4In6():
		return family
	case vi < 0:
		return noVNI
	}
	allowed, ok := c.cfg.NeighborVTEPs[u.Peer]
	if !ok {
		allowed = c.cfg.VTEPPrefixes
	}
	if len(allowed) > 0 && !slices.ContainsFunc(allowed, func(p netip.Prefix) bool { return p.Contains(nh) }) {
		return vtepPrefix
	}
	if _, ok := c.vtepIdx[nh]; !ok && len(c.vtepIdx) >= c.cfg.MaxVTEPs {
		return vtepLimit
	}
	if m := c.byPeer[u.Peer]; m[nh] == 0 && len(m) >= c.cfg.NeighborVTEPLimit {
		return vtepLimit
	}
	if u.Kind == bgp.MACIP {
		k := vxlan.MakeKey(vi, u.MAC)
		if _, ok := c.b.Get(k); !ok && c.b.Len() >= c.cfg.Limit || len(c.byKey[k]) >= maxRoutesPerMAC {
			return macLimit
		}
	}
	return imported
}

// peerRef counts (delta 1) or uncounts (-1) r for its neighbor's VTEPs.
func (c *Controller) peerRef(r *remoteRoute, delta int) {
	m := c.byPeer[r.peer]
	if m == nil {
		m = map[netip.Addr]int{}
		c.byPeer[r.peer] = m
	}
	if m[r.vtep] += delta; m[r.vtep] <= 0 {
		delete(m, r.vtep)
		c.roomMade = true
		if len(m) == 0 {
			delete(c.byPeer, r.peer)
		}
	}
}

// retryRefused imports again the routes refused for a limit, once room
// was made (a VTEP or a MAC went).
func (c *Controller) retryRefused(now time.Time) {
	if !c.roomMade || len(c.refused) == 0 {
		c.roomMade = false
		return
	}
	c.roomMade = false
	// update changes c.refused: walk a copy of its IDs.
	for _, id := range slices.Collect(maps.Keys(c.refused)) {
		u, ok := c.received[id]
		if !ok {
			delete(c.refused, id)
			continue
		}
		c.update(&u, now)
	}
}

// forget removes a received route, if known.
func (c *Controller) forget(id string, now time.Time) {
	r, ok := c.routes[id]
	if !ok {
		return
	}
	delete(c.routes, id)
	c.peerRef(r, -1)
	if r.kind == bgp.IMET {
		delete(c.byVNI[r.vni], id)
		if i, ok := c.vtepIdx[r.vtep]; ok && r.pwgate {
			c.vteps[i].pwgate--
		}
		c.unref(r.vtep)
		return
	}
	if ids := c.byKey[r.key]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(c.byKey, r.key)
		}
	}
	c.unref(r.vtep)
	c.settle(r.key, now)
}

// best returns the winning remote MAC route for k (RFC 7432 §15: the
// highest sequence number, then the lowest VTEP address), or nil.
func (c *Controller) best(k vxlan.Key) *remoteRoute {
	var b *remoteRoute
	for id := range c.byKey[k] {
		r := c.routes[id]
		if b == nil || r.seq > b.seq || r.seq == b.seq && r.vtep.Less(b.vtep) {
			b = r
		}
	}
	return b
}

// settle makes the FDB entry of k agree with what is known about it: a
// local MAC that a remote route with a higher sequence (or the same, from
// a lower address) beats has moved away.
func (c *Controller) settle(k vxlan.Key, now time.Time) {
	b := c.best(k)
	if l, ok := c.locals[k]; ok {
		if b == nil || b.seq < l.seq || b.seq == l.seq && c.cfg.Local.Less(b.vtep) {
			return
		}
		c.withdraw(k, l)
		c.dropLocal(k, l)
		c.moved(k, now)
	}
	if b == nil {
		if lr, ok := c.lremote[k]; ok {
			c.b.Set(k, vxlan.Entry{VTEP: c.vtepIdx[lr.vtep], Seen: lr.seen})
		} else {
			c.b.Delete(k)
			c.roomMade = true
		}
		c.dirty = true
		return
	}
	vt := c.vtepIdx[b.vtep]
	if old, ok := c.b.Get(k); ok && old.VTEP != vxlan.Local && old.VTEP != vt {
		c.moved(k, now) // from one remote VTEP to another
	}
	c.b.Set(k, vxlan.Entry{VTEP: vt})
	c.dirty = true
}

func (c *Controller) dropLocal(k vxlan.Key, l *local) {
	for _, ip := range l.ips {
		if ik := (ipKey{k.VNI(), ip}); c.ipOwner[ik] == k {
			delete(c.ipOwner, ik)
		}
	}
	delete(c.locals, k)
	c.freeSeen = append(c.freeSeen, l.seen)
	c.b.Delete(k)
	c.dirty = true
	c.roomMade = true
}

// moved records a move of k and reports whether it is now a duplicate.
func (c *Controller) moved(k vxlan.Key, now time.Time) {
	c.counters.Moved.Add(1)
	m := c.mob[k]
	if m == nil {
		m = &mobility{}
		c.mob[k] = m
	}
	m.moves = append(m.moves, now)
	for len(m.moves) > 0 && now.Sub(m.moves[0]) > c.cfg.DupWindow {
		m.moves = m.moves[1:]
	}
	if !m.duplicate && len(m.moves) >= c.cfg.DupMoves {
		m.duplicate = true
		c.counters.Duplicates.Add(1)
		c.log.Warn("evpn: duplicate MAC: it moves too often, its moves are no longer announced",
			"mac", k.MAC().String(), "vni", c.cfg.VNIs[k.VNI()].ID, "moves", len(m.moves), "within", c.cfg.DupWindow.String())
	}
}

func (c *Controller) duplicate(k vxlan.Key) bool {
	m := c.mob[k]
	return m != nil && m.duplicate
}

// takeSeen returns a free seen slot stamped now, or false at the limit.
func (c *Controller) takeSeen(now time.Time) (int32, bool) {
	if len(c.freeSeen) == 0 || c.b.Len() >= c.cfg.Limit {
		c.counters.OverLimit.Add(1)
		return 0, false
	}
	s := c.freeSeen[len(c.freeSeen)-1]
	c.freeSeen = c.freeSeen[:len(c.freeSeen)-1]
	c.b.Seen()[s].Store(now.Unix())
	return s, true
}

// learnLocal takes a MAC seen on the LAN.
func (c *Controller) learnLocal(k vxlan.Key, now time.Time) {
	if int(k.VNI()) >= len(c.cfg.VNIs) {
		return // reported before a reconfiguration
	}
	if _, ok := c.locals[k]; ok {
		return
	}
	b := c.best(k)
	if b != nil && b.sticky {
		return // RFC 7432 §15.2: a sticky MAC does not move
	}
	seen, ok := c.takeSeen(now)
	if !ok {
		return
	}
	l := &local{seen: seen, since: now}
	if b != nil {
		l.seq = b.seq + 1
		c.moved(k, now)
	}
	if lr, ok := c.lremote[k]; ok {
		c.dropLearnedRemote(k, lr)
		c.moved(k, now)
	}
	c.locals[k] = l
	c.b.Set(k, vxlan.Entry{VTEP: vxlan.Local, Seen: seen})
	c.dirty = true
	c.counters.Learned.Add(1)
	c.announce(k, l)
}

// learnRemote takes a MAC seen in a frame from VTEP index vt.
func (c *Controller) learnRemote(k vxlan.Key, vt int32, now time.Time) {
	if !c.cfg.LearnRemote || int(k.VNI()) >= len(c.cfg.VNIs) || int(vt) >= len(c.vteps) || c.vteps[vt].refs == 0 {
		return
	}
	if len(c.byKey[k]) > 0 {
		return // BGP knows better
	}
	a := c.vteps[vt].addr
	if lr, ok := c.lremote[k]; ok {
		if lr.vtep == a {
			return
		}
		c.dropLearnedRemote(k, lr)
		c.moved(k, now)
	}
	if l, ok := c.locals[k]; ok {
		c.withdraw(k, l)
		c.dropLocal(k, l)
		c.moved(k, now)
	}
	seen, ok := c.takeSeen(now)
	if !ok {
		return
	}
	c.ref(a)
	c.lremote[k] = learnedRemote{vtep: a, seen: seen}
	c.b.Set(k, vxlan.Entry{VTEP: vt, Seen: seen})
	c.dirty = true
	c.counters.Learned.Add(1)
}

func (c *Controller) dropLearnedRemote(k vxlan.Key, lr learnedRemote) {
	delete(c.lremote, k)
	c.freeSeen = append(c.freeSeen, lr.seen)
	c.unref(lr.vtep)
	c.b.Delete(k)
	c.dirty = true
	c.roomMade = true
}

// Age forgets learned MACs silent for longer than the aging time, and
// clears duplicate marks older than the detection window.
func (c *Controller) Age(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := c.b.Seen()
	limit := now.Add(-c.cfg.Aging).Unix()
	for k, l := range c.locals {
		if seen[l.seen].Load() < limit {
			c.withdraw(k, l)
			c.dropLocal(k, l)
			c.counters.Aged.Add(1)
			c.settle(k, now) // a remote route may be waiting
		}
	}
	for k, lr := range c.lremote {
		if seen[lr.seen].Load() < limit {
			c.dropLearnedRemote(k, lr)
			c.counters.Aged.Add(1)
		}
	}
	for k, m := range c.mob {
		for len(m.moves) > 0 && now.Sub(m.moves[0]) > c.cfg.DupWindow {
			m.moves = m.moves[1:]
		}
		if len(m.moves) > 0 {
			continue
		}
		delete(c.mob, k)
		if m.duplicate {
			c.log.Info("evpn: duplicate MAC settled", "mac", k.MAC().String(), "vni", c.cfg.VNIs[k.VNI()].ID)
			if l, ok := c.locals[k]; ok {
				c.announce(k, l)
			}
		}
	}
	c.retryRefused(now)
	c.flush()
}

// Resolve looks up the VTEPs' next hops again and reports whether any is
// still unresolved.
func (c *Controller) Resolve() (unresolved bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.vteps {
		v := &c.vteps[i]
		if v.refs == 0 {
			continue
		}
		mac, ok := c.u.NextHop(v.addr)
		if mac != v.nextHop || ok != v.resolved {
			v.nextHop, v.resolved = mac, ok
			c.dirty = true
		}
		unresolved = unresolved || !ok
	}
	c.flush()
	return unresolved
}

// Reconfigure takes a new configuration: VNIs added, removed or changed,
// static remotes, aging, limits. MACs of VNIs that stay keep their state.
func (c *Controller) Reconfigure(cfg Config, now time.Time) error {
	cfg.defaults()
	if err := check(&cfg); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg.Limit != c.cfg.Limit || cfg.Local != c.cfg.Local || cfg.RouterID != c.cfg.RouterID || cfg.ASN != c.cfg.ASN {
		return fmt.Errorf("evpn: the MAC limit, the local VTEP address, the ASN and the router ID cannot change without a restart")
	}
	// Simplest correct: forget everything, then learn and import again.
	// Local MACs are re-learned from the LAN's next frames; received routes
	// are kept and imported again under the new VNIs.
	for k, l := range c.locals {
		if vi := k.VNI(); vi >= len(cfg.VNIs) || cfg.VNIs[vi].ID != c.cfg.VNIs[vi].ID || cfg.VNIs[vi].RT != c.cfg.VNIs[vi].RT {
			c.withdraw(k, l)
			c.dropLocal(k, l)
		}
	}
	for k, lr := range c.lremote {
		c.dropLearnedRemote(k, lr)
	}
	for id := range c.routes {
		c.forget(id, now)
	}
	for i, r := range c.imets {
		if i >= len(cfg.VNIs) || bgp.AutoRD(cfg.RouterID, i) != r.RD || cfg.VNIs[i].ID != r.VNI {
			if c.sp != nil {
				c.sp.Withdraw(r)
			}
			delete(c.imets, i)
		}
	}
	old := c.cfg.VNIs
	c.refStatic(old, -1)
	c.cfg = cfg
	c.refStatic(cfg.VNIs, 1)
	c.byVNI = nil
	clear(c.refused)
	for _, u := range c.received {
		c.update(&u, now)
	}
	c.announceIMETs()
	for k, l := range c.locals {
		if !l.announced {
			c.announce(k, l)
		}
	}
	c.dirty = true
	c.flush()
	return nil
}

// Status returns the state "pwctl evpn" shows (MaxFrame left to the
// caller, which knows the underlay).
func (c *Controller) Status() client.EVPN {
	c.mu.Lock()
	defer c.mu.Unlock()
	tab := c.fdb.Load()
	st := client.EVPN{Local: c.cfg.Local.String(), RoutesReceived: map[string]int{}, RoutesAnnounced: map[string]int{}}
	macsPer := map[int32]int{}
	localPer, remotePer := map[int]int{}, map[int]int{}
	tab.Each(func(k vxlan.Key, e vxlan.Entry) {
		if e.VTEP == vxlan.Local {
			localPer[k.VNI()]++
			st.MACs.Local++
			return
		}
		macsPer[e.VTEP]++
		remotePer[k.VNI()]++
		st.MACs.Remote++
	})
	for i, v := range tab.VNIs {
		x := client.VNI{VNI: v.ID, VLAN: v.VLAN, LocalMACs: localPer[i], RemoteMACs: remotePer[i], Flood: []string{}}
		if c.sp != nil {
			x.RD, x.RT = bgp.AutoRD(c.cfg.RouterID, i), c.rt(i).String()
		}
		for _, f := range v.Flood {
			x.Flood = append(x.Flood, tab.VTEPs[f].Addr.String())
		}
		st.VNIs = append(st.VNIs, x)
	}
	for i, v := range c.vteps {
		if v.refs == 0 {
			continue
		}
		x := client.VTEP{Address: v.addr.String(), Resolved: v.resolved, Pwgate: tab.VTEPs[i].Pwgate, Static: v.static, MACs: macsPer[int32(i)]}
		if v.resolved {
			x.NextHop = v.nextHop.String()
		}
		st.VTEPs = append(st.VTEPs, x)
	}
	slices.SortFunc(st.VTEPs, func(a, b client.VTEP) int { return cmp.Compare(a.Address, b.Address) })
	for _, m := range c.mob {
		if m.duplicate {
			st.MACs.Duplicates++
		}
	}
	st.MACs.Limit = c.cfg.Limit
	for _, r := range c.routes {
		st.RoutesReceived[kindName(r.kind)]++
	}
	for _, l := range c.locals {
		if l.announced {
			st.RoutesAnnounced["macip"] += 1 + len(l.ips)
		}
	}
	st.RoutesAnnounced["imet"] = len(c.imets)
	return st
}

func kindName(k bgp.RouteKind) string {
	if k == bgp.IMET {
		return "imet"
	}
	return "macip"
}

// Entries returns the forwarding database, sorted by VNI and MAC.
func (c *Controller) Entries(now time.Time) []client.FDBEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	tab := c.fdb.Load()
	out := []client.FDBEntry{}
	tab.Each(func(k vxlan.Key, e vxlan.Entry) {
		x := client.FDBEntry{VNI: tab.VNIs[k.VNI()].ID, MAC: k.MAC().String(), Duplicate: c.duplicate(k)}
		switch {
		case e.VTEP == vxlan.Local:
			x.VTEP, x.Origin = "local", "lan"
			if l, ok := c.locals[k]; ok {
				x.Seq = l.seq
				for _, ip := range l.ips {
					x.IPs = append(x.IPs, ip.String())
				}
				slices.Sort(x.IPs)
			}
		default:
			x.VTEP, x.Origin = tab.VTEPs[e.VTEP].Addr.String(), "evpn"
			if b := c.best(k); b != nil {
				x.Seq, x.Sticky = b.seq, b.sticky
			} else {
				x.Origin = "data"
			}
			for id := range c.byKey[k] {
				if ip := c.routes[id].ip; ip.IsValid() && !slices.Contains(x.IPs, ip.String()) {
					x.IPs = append(x.IPs, ip.String())
				}
			}
			slices.Sort(x.IPs)
		}
		if e.Seen != 0 {
			x.IdleSecs = max(0, now.Unix()-tab.Seen[e.Seen].Load())
		}
		out = append(out, x)
	})
	slices.SortFunc(out, func(a, b client.FDBEntry) int {
		return cmp.Or(cmp.Compare(a.VNI, b.VNI), cmp.Compare(a.MAC, b.MAC))
	})
	return out
}

// AddCounters adds the controller's counters to s.
func (c *Controller) AddCounters(s *stats.Snapshot) {
	s[stats.EVPNMACsLearned] += c.counters.Learned.Load()
	s[stats.EVPNMACsAged] += c.counters.Aged.Load()
	s[stats.EVPNMACsMoved] += c.counters.Moved.Load()
	s[stats.EVPNMACsDuplicate] += c.counters.Duplicates.Load()
	s[stats.EVPNMACsOverLimit] += c.counters.OverLimit.Load()
	for why := noVNI; why < numReasons; why++ {
		n := c.counters.NotImported[why].Load()
		s[reasonCounters[why]] += n
		s[stats.EVPNRoutesNotImported] += n
	}
}
