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
//
// Files by concern: evpn.go the controller, its state and lifecycle;
// routes.go received routes (which are imported, and why not; the best
// path per MAC); learn.go MACs and addresses learned from frames, MAC
// mobility and aging; vteps.go remote VTEPs, their next hops and the
// snapshots published; announce.go the routes pwgate originates;
// status.go what pwctl and the counters show.
package evpn

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/spsc"
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
	// Suppress answers the LAN's ARP requests and neighbour solicitations
	// for addresses known from MAC+IP routes, and keeps those for the
	// LAN's own hosts on the LAN, instead of flooding them.
	Suppress bool
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
	order  uint64    // when it was imported (Controller.importN)
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
	learned [2]*spsc.Ring[vxlan.Learned]
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
	ipOrder  map[ipKey]uint64    // when it took it (importN's count)
	// refused are received routes refused for a limit (vtepLimit,
	// macLimit), by pathID: tried again by Age when room was made.
	refused  map[string]bool
	roomMade bool // a VTEP or a MAC went since the last retry
	// byPeer counts, per neighbor, its imported routes naming each VTEP.
	byPeer   map[netip.Addr]map[netip.Addr]int
	counters Counters
	dirty    bool
	// neighDirty: an address's MAC may have changed (a LAN host's
	// address, a MAC+IP route): the data path's address table is made
	// again at the next publish, at most every neighEvery (neighMade).
	// importN numbers imported routes and LAN hosts' addresses as they
	// come (the latest naming an address wins).
	neighDirty bool
	neighLater bool // a wake is set for neighEvery's end
	neighMade  time.Time
	importN    uint64
	peerSet    []netip.Addr // what the underlay was last told
	peerErr    bool         // telling the underlay failed: try again
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
		vtepIdx: map[netip.Addr]int32{}, imets: map[int]bgp.Route{}, ipOwner: map[ipKey]vxlan.Key{}, ipOrder: map[ipKey]uint64{}, refused: map[string]bool{},
		byPeer: map[netip.Addr]map[netip.Addr]int{}}
	for i := range c.learned {
		c.learned[i] = spsc.New[vxlan.Learned](ringSize)
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
func (c *Controller) Learned() [2]*spsc.Ring[vxlan.Learned] { return c.learned }

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
	var buf [256]vxlan.Learned
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
	c.dirty, c.neighDirty = true, true
	c.flush()
	return nil
}
