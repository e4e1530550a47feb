package evpn

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/bgp/bgptest"
	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
)

// underlay is a fake kernel: every VTEP resolves to a MAC made of its
// address's last byte, except those listed as unresolved.
type underlay struct {
	mu         sync.Mutex
	vteps      []netip.Addr
	unresolved map[netip.Addr]bool
	fail       error
}

func (u *underlay) NextHop(a netip.Addr) (frame.MAC, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.unresolved[a] {
		return frame.MAC{}, false
	}
	b := a.As16()
	return frame.MAC{0x02, 0xee, 0, 0, 0, b[15]}, true
}

func (u *underlay) SetVTEPs(a []netip.Addr) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.fail != nil {
		return u.fail
	}
	u.vteps = slices.Clone(a)
	return nil
}

var (
	ourVTEP = netip.MustParseAddr("2001:db8::a")
	vtepB   = netip.MustParseAddr("2001:db8::b")
	vtepC   = netip.MustParseAddr("2001:db8::c")
	vtep9   = netip.MustParseAddr("2001:db8::9") // lower than ours
	rid     = netip.MustParseAddr("192.0.2.10")
	t0      = time.Unix(1_800_000_000, 0)
	macH1   = frame.MAC{0x02, 0, 0, 0, 0, 0x01}
	macH2   = frame.MAC{0x02, 0, 0, 0, 0, 0x02}
	asn     = uint32(4200000000)
	autoRT  = bgp.AutoRT(asn, 101)
)

type fixture struct {
	t  *testing.T
	c  *Controller
	u  *underlay
	sp *bgptest.Fake
}

func newFixture(t *testing.T, cfg Config, withBGP bool) *fixture {
	t.Helper()
	f := &fixture{t: t, u: &underlay{unresolved: map[netip.Addr]bool{}}}
	if cfg.Local == (netip.Addr{}) {
		cfg.Local = ourVTEP
	}
	if cfg.VNIs == nil {
		cfg.VNIs = []VNI{{ID: 101}, {ID: 202, VLAN: 20}}
	}
	if withBGP {
		cfg.ASN, cfg.RouterID = asn, rid
		f.sp = bgptest.New()
		if err := f.sp.Start(bgp.Config{ASN: asn, RouterID: rid}, func([]bgp.Update) {}); err != nil {
			t.Fatal(err)
		}
	}
	var sp bgp.Speaker
	if f.sp != nil {
		sp = f.sp
	}
	c, err := New(cfg, f.u, sp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c.Begin()
	f.c = c
	return f
}

// lanFrame reports MAC m as seen on the LAN in VNI index vi.
func (f *fixture) lan(vi int, m frame.MAC, now time.Time) {
	f.c.Learned()[0].Push1(vxlan.Learned{Key: vxlan.MakeKey(vi, m), VTEP: vxlan.Local})
	f.c.Work(now)
}

func (f *fixture) receive(now time.Time, us ...bgp.Update) {
	f.c.Received(us)
	f.c.Work(now)
}

// where returns the VTEP address the table sends m in VNI index vi to:
// "local", an address, or "" when unknown.
func (f *fixture) where(vi int, m frame.MAC) string {
	tab := f.c.Table().Load()
	e, ok := tab.Lookup(vi, m)
	switch {
	case !ok:
		return ""
	case e.VTEP == vxlan.Local:
		return "local"
	}
	return tab.VTEPs[e.VTEP].Addr.String()
}

func (f *fixture) counters() stats.Snapshot {
	var s stats.Snapshot
	f.c.AddCounters(&s)
	return s
}

func macRoute(vtep netip.Addr, m frame.MAC, seq uint32) bgp.Update {
	return bgp.Update{Route: bgp.Route{Kind: bgp.MACIP, RD: vtep.String() + ":1", MAC: m, VNI: 101, RTs: []bgp.RT{autoRT}, Seq: seq, NextHop: vtep}}
}

func imet(vtep netip.Addr, vni uint32, pwgate bool) bgp.Update {
	return bgp.Update{Route: bgp.Route{Kind: bgp.IMET, RD: fmt.Sprintf("%s:%d", vtep, vni), VNI: vni, RTs: []bgp.RT{bgp.AutoRT(asn, vni)}, Pwgate: pwgate, NextHop: vtep}}
}

func TestStaticRemotes(t *testing.T) {
	f := newFixture(t, Config{VNIs: []VNI{{ID: 101, Remotes: []netip.Addr{vtepB, vtepC}}, {ID: 202, VLAN: 20, Remotes: []netip.Addr{vtepC}}},
		StaticPwgate: true, LearnRemote: true}, false)
	tab := f.c.Table().Load()
	if len(tab.VNIs) != 2 || len(tab.VNIs[0].Flood) != 2 || len(tab.VNIs[1].Flood) != 1 {
		t.Fatalf("flood lists: %+v", tab.VNIs)
	}
	if got := tab.VTEPs[tab.VNIs[1].Flood[0]]; got.Addr != vtepC || !got.Pwgate || got.NextHop != (frame.MAC{0x02, 0xee, 0, 0, 0, 0x0c}) {
		t.Errorf("VNI 202 floods to %+v", got)
	}
	if tab.VNIForVLAN(20) != 1 || tab.VNIForVLAN(0) != 0 {
		t.Error("VLANs do not pick their VNIs")
	}
	if !slices.Equal(f.u.vteps, []netip.Addr{vtepB, vtepC}) {
		t.Errorf("XDP VTEPs %v", f.u.vteps)
	}
	// Learned from a frame: behind C, then moved to B, then to the LAN.
	ic := tab.VNIs[1].Flood[0]
	f.c.Learned()[1].Push1(vxlan.Learned{Key: vxlan.MakeKey(0, macH1), VTEP: ic})
	f.c.Work(t0)
	if got := f.where(0, macH1); got != vtepC.String() {
		t.Fatalf("learned remote MAC goes to %q", got)
	}
	f.c.Learned()[1].Push1(vxlan.Learned{Key: vxlan.MakeKey(0, macH1), VTEP: f.c.vtepIdx[vtepB]})
	f.c.Work(t0)
	if got := f.where(0, macH1); got != vtepB.String() {
		t.Fatalf("moved remote MAC goes to %q", got)
	}
	f.lan(0, macH1, t0)
	if got := f.where(0, macH1); got != "local" {
		t.Fatalf("MAC moved to the LAN goes to %q", got)
	}
	if s := f.counters(); s[stats.EVPNMACsLearned] != 3 || s[stats.EVPNMACsMoved] != 2 {
		t.Errorf("learned %d moved %d", s[stats.EVPNMACsLearned], s[stats.EVPNMACsMoved])
	}
	// A report naming a VTEP index not in use is ignored.
	f.c.Learned()[1].Push1(vxlan.Learned{Key: vxlan.MakeKey(0, macH2), VTEP: 77})
	f.c.Work(t0)
	if f.where(0, macH2) != "" {
		t.Error("learned behind a VTEP that does not exist")
	}
}

func TestLearningOffIgnoresRemoteFrames(t *testing.T) {
	f := newFixture(t, Config{VNIs: []VNI{{ID: 101, Remotes: []netip.Addr{vtepB}}}}, false)
	f.c.Learned()[1].Push1(vxlan.Learned{Key: vxlan.MakeKey(0, macH1), VTEP: 0})
	f.c.Work(t0)
	if f.where(0, macH1) != "" {
		t.Error("learned from a frame with learning off")
	}
}

func TestLocalLearningAnnounces(t *testing.T) {
	f := newFixture(t, Config{}, true)
	if got := len(f.sp.Routes(bgp.IMET)); got != 2 {
		t.Fatalf("%d flood routes announced, want one per VNI", got)
	}
	f.lan(0, macH1, t0)
	f.lan(1, macH2, t0)
	if f.where(0, macH1) != "local" || f.where(1, macH2) != "local" {
		t.Fatal("LAN MACs not local")
	}
	rs := f.sp.Routes(bgp.MACIP)
	if len(rs) != 2 {
		t.Fatalf("%d MAC routes", len(rs))
	}
	want := bgp.Route{Kind: bgp.MACIP, RD: "192.0.2.10:1", MAC: macH1, VNI: 101, RTs: []bgp.RT{autoRT}, NextHop: ourVTEP}
	r, ok := f.sp.Get(want.ID())
	if !ok || r.String() != want.String() {
		t.Errorf("announced %v, want %v", r, want)
	}
	// Again: nothing new.
	n := len(f.sp.Log)
	f.lan(0, macH1, t0)
	if len(f.sp.Log) != n {
		t.Errorf("a known MAC was announced again: %v", f.sp.Log[n:])
	}
}

func TestRemoteRoutes(t *testing.T) {
	f := newFixture(t, Config{}, true)
	f.receive(t0, imet(vtepB, 101, true), imet(vtepC, 101, false), macRoute(vtepB, macH1, 0))
	tab := f.c.Table().Load()
	if len(tab.VNIs[0].Flood) != 2 || len(tab.VNIs[1].Flood) != 0 {
		t.Fatalf("flood lists %+v", tab.VNIs)
	}
	if f.where(0, macH1) != vtepB.String() {
		t.Fatalf("remote MAC goes to %q", f.where(0, macH1))
	}
	pw := map[netip.Addr]bool{}
	for _, v := range tab.VTEPs {
		pw[v.Addr] = v.Pwgate
	}
	if !pw[vtepB] || pw[vtepC] {
		t.Errorf("pwgate VTEPs %v", pw)
	}
	if !slices.Equal(f.u.vteps, []netip.Addr{vtepB, vtepC}) {
		t.Errorf("XDP VTEPs %v", f.u.vteps)
	}
	// Withdrawals take them away, and C's index is freed.
	w := imet(vtepC, 101, false)
	w.Withdraw = true
	f.receive(t0, w)
	if !slices.Equal(f.u.vteps, []netip.Addr{vtepB}) {
		t.Errorf("XDP VTEPs after C left %v", f.u.vteps)
	}
	w = macRoute(vtepB, macH1, 0)
	w.Withdraw = true
	f.receive(t0, w)
	if f.where(0, macH1) != "" {
		t.Error("withdrawn MAC still in the table")
	}
	// A new VTEP takes C's index: the generation changes.
	gen := f.c.Table().Load().VTEPGen
	f.receive(t0, macRoute(vtep9, macH2, 0))
	if f.where(0, macH2) != vtep9.String() || f.c.Table().Load().VTEPGen == gen {
		t.Errorf("new VTEP: %q, generation %d (was %d)", f.where(0, macH2), f.c.Table().Load().VTEPGen, gen)
	}
}

func TestImportRules(t *testing.T) {
	f := newFixture(t, Config{VNIs: []VNI{{ID: 101}, {ID: 202, VLAN: 20, RT: bgp.RT{ASN: 65000, Value: 7}}}}, true)
	other := macRoute(vtepB, macH1, 0)
	other.RTs = []bgp.RT{{ASN: 65123, Value: 101}} // auto RT of another AS: FRR takes it too
	f.receive(t0, other)
	if f.where(0, macH1) != vtepB.String() {
		t.Error("auto RT with another ASN not imported")
	}
	wrong := imet(vtepB, 202, false) // VNI 202 wants 65000:7
	f.receive(t0, wrong)
	self := macRoute(ourVTEP, macH2, 0)
	noVNI := imet(vtepB, 303, false)
	f.receive(t0, self, noVNI)
	if f.where(0, macH2) != "" || len(f.c.Table().Load().VNIs[1].Flood) != 0 {
		t.Error("a refused route was imported")
	}
	if s := f.counters(); s[stats.EVPNRoutesNotImported] != 3 {
		t.Errorf("not imported %d, want 3", s[stats.EVPNRoutesNotImported])
	}
	ok := imet(vtepB, 202, false)
	ok.RTs = []bgp.RT{{ASN: 65000, Value: 7}}
	f.receive(t0, ok)
	if len(f.c.Table().Load().VNIs[1].Flood) != 1 {
		t.Error("route with the configured RT not imported")
	}
}

func TestMobility(t *testing.T) {
	f := newFixture(t, Config{}, true)
	f.lan(0, macH1, t0)
	mine := bgp.Route{Kind: bgp.MACIP, RD: "192.0.2.10:1", MAC: macH1}
	// The host moved to B: B announces it with sequence 1.
	f.receive(t0, macRoute(vtepB, macH1, 1))
	if f.where(0, macH1) != vtepB.String() {
		t.Fatalf("moved MAC goes to %q", f.where(0, macH1))
	}
	if _, ok := f.sp.Get(mine.ID()); ok {
		t.Error("our route for a MAC that moved away was not withdrawn")
	}
	// It comes back: announced with sequence 2.
	f.lan(0, macH1, t0.Add(time.Second))
	r, ok := f.sp.Get(mine.ID())
	if !ok || r.Seq != 2 || f.where(0, macH1) != "local" {
		t.Fatalf("MAC back on the LAN: route %v (seq want 2), table %q", r, f.where(0, macH1))
	}
	// A stale route with a lower sequence does not take it away.
	f.receive(t0, macRoute(vtepC, macH1, 1))
	if f.where(0, macH1) != "local" {
		t.Error("a lower sequence took the MAC away")
	}
	// The same sequence from a higher address loses, from a lower wins.
	f.receive(t0, macRoute(vtepC, macH1, 2))
	if f.where(0, macH1) != "local" {
		t.Error("the same sequence from a higher address took the MAC away")
	}
	f.receive(t0, macRoute(vtep9, macH1, 2))
	if f.where(0, macH1) != vtep9.String() {
		t.Error("the same sequence from a lower address did not win")
	}
	if s := f.counters(); s[stats.EVPNMACsMoved] != 3 {
		t.Errorf("moves %d, want 3", s[stats.EVPNMACsMoved])
	}
}

func TestStickyMACStays(t *testing.T) {
	f := newFixture(t, Config{}, true)
	r := macRoute(vtepB, macH1, 0)
	r.Sticky = true
	f.receive(t0, r)
	f.lan(0, macH1, t0)
	if f.where(0, macH1) != vtepB.String() || len(f.sp.Routes(bgp.MACIP)) != 0 {
		t.Error("a sticky MAC moved to the LAN")
	}
}

func TestDuplicateDetection(t *testing.T) {
	f := newFixture(t, Config{DupMoves: 3, DupWindow: time.Minute}, true)
	now := t0
	seq := uint32(0)
	// The MAC flaps between the LAN and B.
	for range 3 {
		f.lan(0, macH1, now)
		l := f.c.locals[vxlan.MakeKey(0, macH1)]
		if l == nil {
			t.Fatal("not learned")
		}
		seq = l.seq + 1
		f.receive(now, macRoute(vtepB, macH1, seq))
		now = now.Add(time.Second)
	}
	if s := f.counters(); s[stats.EVPNMACsDuplicate] != 1 {
		t.Fatalf("duplicates %d after %d moves", s[stats.EVPNMACsDuplicate], f.counters()[stats.EVPNMACsMoved])
	}
	f.lan(0, macH1, now)
	mine := bgp.Route{Kind: bgp.MACIP, RD: "192.0.2.10:1", MAC: macH1}
	if _, ok := f.sp.Get(mine.ID()); ok {
		t.Error("a duplicate MAC's move was announced")
	}
	if e := f.c.Entries(now); len(e) != 1 || !e[0].Duplicate {
		t.Errorf("fdb %+v", e)
	}
	// Quiet for the window: it settles and is announced.
	f.c.Age(now.Add(2 * time.Minute))
	if r, ok := f.sp.Get(mine.ID()); !ok || r.Seq != seq+1 {
		t.Errorf("settled MAC: %v (want seq %d)", r, seq+1)
	}
}

func TestAgingAndLimit(t *testing.T) {
	f := newFixture(t, Config{Limit: 2, Aging: time.Minute}, true)
	f.lan(0, macH1, t0)
	f.lan(0, macH2, t0.Add(50*time.Second))
	f.lan(1, macH1, t0)
	if f.where(1, macH1) != "" {
		t.Error("learned past the limit")
	}
	if s := f.counters(); s[stats.EVPNMACsOverLimit] != 1 {
		t.Errorf("over limit %d", s[stats.EVPNMACsOverLimit])
	}
	f.c.Age(t0.Add(90 * time.Second))
	if f.where(0, macH1) != "" || f.where(0, macH2) != "local" {
		t.Errorf("after aging: h1 %q h2 %q", f.where(0, macH1), f.where(0, macH2))
	}
	if s := f.counters(); s[stats.EVPNMACsAged] != 1 || len(f.sp.Routes(bgp.MACIP)) != 1 {
		t.Errorf("aged %d, routes %d", s[stats.EVPNMACsAged], len(f.sp.Routes(bgp.MACIP)))
	}
	// The slot is free again.
	f.lan(1, macH1, t0.Add(90*time.Second))
	if f.where(1, macH1) != "local" {
		t.Error("a freed slot was not reused")
	}
	// An aged MAC that a remote route names goes there.
	f.receive(t0, macRoute(vtepB, macH2, 0))
	f.c.Age(t0.Add(10 * time.Minute))
	if f.where(0, macH2) != vtepB.String() {
		t.Errorf("aged local MAC with a remote route: %q", f.where(0, macH2))
	}
}

func TestResolve(t *testing.T) {
	f := newFixture(t, Config{VNIs: []VNI{{ID: 101, Remotes: []netip.Addr{vtepB}}}}, false)
	f.u.unresolved[vtepC] = true
	f.receive(t0) // nothing
	if f.c.Resolve() {
		t.Error("B reported unresolved")
	}
	f.u.unresolved[vtepB] = true
	if !f.c.Resolve() {
		t.Error("unresolved B not reported")
	}
	if v := f.c.Table().Load().VTEPs[0]; !v.NextHop.IsZero() {
		t.Errorf("unresolved VTEP has next hop %v", v.NextHop)
	}
	delete(f.u.unresolved, vtepB)
	f.c.Resolve()
	if v := f.c.Table().Load().VTEPs[0]; v.NextHop.IsZero() {
		t.Error("resolved VTEP has no next hop")
	}
}

func TestReconfigure(t *testing.T) {
	f := newFixture(t, Config{}, true)
	f.lan(0, macH1, t0)
	f.lan(1, macH2, t0)
	f.receive(t0, imet(vtepB, 101, false), imet(vtepB, 303, false), macRoute(vtepB, macH2, 0))
	// VNI 202 goes, 303 comes; 101 stays with its MACs and routes.
	cfg := f.c.cfg
	cfg.VNIs = []VNI{{ID: 101, Remotes: []netip.Addr{vtepC}}, {ID: 303, VLAN: 30}}
	if err := f.c.Reconfigure(cfg, t0); err != nil {
		t.Fatal(err)
	}
	if f.where(0, macH1) != "local" || f.where(0, macH2) != vtepB.String() {
		t.Errorf("VNI 101 lost state: h1 %q h2 %q", f.where(0, macH1), f.where(0, macH2))
	}
	tab := f.c.Table().Load()
	if len(tab.VNIs[0].Flood) != 2 || len(tab.VNIs[1].Flood) != 1 || tab.VNIs[1].ID != 303 {
		t.Errorf("flood lists %+v", tab.VNIs)
	}
	var ids []string
	for _, r := range f.sp.Routes(bgp.IMET) {
		ids = append(ids, r.String())
	}
	if len(ids) != 2 || !strings.Contains(strings.Join(ids, ","), "vni 303") {
		t.Errorf("flood routes after reconfigure: %v", ids)
	}
	for _, r := range f.sp.Routes(bgp.MACIP) {
		if r.VNI == 202 {
			t.Errorf("route of a removed VNI still announced: %v", r)
		}
	}
	bad := cfg
	bad.ASN = 65000
	if err := f.c.Reconfigure(bad, t0); err == nil {
		t.Error("ASN change accepted")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Local: ourVTEP},
		{VNIs: []VNI{{ID: 1}}},
		{Local: ourVTEP, VNIs: []VNI{{ID: 0}}},
		{Local: ourVTEP, VNIs: []VNI{{ID: 1 << 24}}},
		{Local: ourVTEP, VNIs: []VNI{{ID: 1}, {ID: 1, VLAN: 2}}},
		{Local: ourVTEP, VNIs: []VNI{{ID: 1}, {ID: 2}}},
		{Local: ourVTEP, VNIs: []VNI{{ID: 1, Remotes: []netip.Addr{ourVTEP}}}},
		{Local: ourVTEP, VNIs: []VNI{{ID: 1, Remotes: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}}},
		{Local: ourVTEP, VNIs: []VNI{{ID: 1}}, Limit: -1},
	} {
		if _, err := New(c, &underlay{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t, Config{}, true)
	f.lan(0, macH1, t0)
	ip := macRoute(vtepB, macH2, 3)
	ip.IP = netip.MustParseAddr("192.0.2.7")
	f.receive(t0, imet(vtepB, 101, true), macRoute(vtepB, macH2, 3), ip)
	st := f.c.Status()
	if st.MACs.Local != 1 || st.MACs.Remote != 1 || len(st.VTEPs) != 1 || st.VTEPs[0].MACs != 1 || !st.VTEPs[0].Pwgate ||
		st.RoutesReceived["macip"] != 2 || st.RoutesReceived["imet"] != 1 || st.RoutesAnnounced["macip"] != 1 || st.RoutesAnnounced["imet"] != 2 {
		t.Errorf("status %+v", st)
	}
	if st.VNIs[0].RD != "192.0.2.10:1" || st.VNIs[0].RT != autoRT.String() || len(st.VNIs[0].Flood) != 1 {
		t.Errorf("VNI status %+v", st.VNIs[0])
	}
	e := f.c.Entries(t0.Add(5 * time.Second))
	if len(e) != 2 || e[0].VTEP != "local" || e[0].IdleSecs != 5 || e[1].Seq != 3 || e[1].Origin != "evpn" || len(e[1].IPs) != 1 {
		t.Errorf("entries %+v", e)
	}
}

func TestWorkZeroAllocsWhenIdle(t *testing.T) {
	f := newFixture(t, Config{}, true)
	if n := testing.AllocsPerRun(100, func() { f.c.Work(t0) }); n != 0 {
		t.Errorf("an idle Work allocates %.0f times", n)
	}
}

func BenchmarkMove(b *testing.B) {
	f := newFixture(&testing.T{}, Config{Limit: 1 << 16}, true)
	var us []bgp.Update
	for i := range 10000 {
		us = append(us, macRoute(vtepB, frame.MAC{0x02, 1, 0, 0, byte(i >> 8), byte(i)}, 0))
	}
	f.receive(t0, us...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		m := frame.MAC{0x02, 1, 0, 0, byte(i >> 8 % 39), byte(i)}
		f.receive(t0, macRoute(vtepC, m, uint32(i/10000+1)))
	}
}

func TestMACIPRoutes(t *testing.T) {
	f := newFixture(t, Config{Aging: time.Minute}, true)
	ip := netip.MustParseAddr("192.0.2.7")
	lanIP := func(m frame.MAC, now time.Time) {
		f.c.Learned()[0].Push1(vxlan.Learned{Key: vxlan.MakeKey(0, m), VTEP: vxlan.Local, IP: ip})
		f.c.Work(now)
	}
	lanIP(macH1, t0) // the first frame of a MAC can be its ARP
	withIP := bgp.Route{Kind: bgp.MACIP, RD: "192.0.2.10:1", MAC: macH1, IP: ip}
	if r, ok := f.sp.Get(withIP.ID()); !ok || r.VNI != 101 || r.NextHop != ourVTEP {
		t.Fatalf("MAC+IP route: %v %v", r, ok)
	}
	macOnly := bgp.Route{Kind: bgp.MACIP, RD: "192.0.2.10:1", MAC: macH1}
	if _, ok := f.sp.Get(macOnly.ID()); !ok {
		t.Fatal("no MAC route beside the MAC+IP one")
	}
	if e := f.c.Entries(t0); len(e) != 1 || len(e[0].IPs) != 1 || e[0].IPs[0] != ip.String() {
		t.Errorf("fdb %+v", e)
	}
	// The address moves to another host: its route follows.
	f.lan(0, macH2, t0)
	lanIP(macH2, t0)
	if _, ok := f.sp.Get(withIP.ID()); ok {
		t.Error("the address's old MAC+IP route stayed")
	}
	moved := bgp.Route{Kind: bgp.MACIP, RD: "192.0.2.10:1", MAC: macH2, IP: ip}
	if _, ok := f.sp.Get(moved.ID()); !ok {
		t.Error("the address's new MAC+IP route is missing")
	}
	// Aging takes a MAC's routes, IPs included.
	f.c.Age(t0.Add(2 * time.Minute))
	if n := len(f.sp.Routes(bgp.MACIP)); n != 0 {
		t.Errorf("%d MAC routes after aging", n)
	}
}

// The data path's address table (suppression): MAC+IP routes' addresses
// with their MACs, the LAN hosts' own marked local and winning; a host
// whose address moves to another MAC is answered with the new one, and
// keeps it when the old route goes.
func TestNeighTable(t *testing.T) {
	f := newFixture(t, Config{Aging: time.Minute, VNIs: []VNI{{ID: 101, Suppress: true}}}, true)
	neigh := func(ip string) (vxlan.Neigh, bool) {
		time.Sleep(neighEvery + 10*time.Millisecond) // made at most every neighEvery
		f.c.Work(t0)
		tab := f.c.Table().Load()
		n, ok := tab.Neigh[vxlan.NeighKey{VNI: 0, IP: netip.MustParseAddr(ip).As16()}]
		return n, ok
	}
	if !f.c.Table().Load().VNIs[0].Suppress {
		t.Fatal("the VNI's suppress setting is not in the table")
	}
	withIP := func(vtep netip.Addr, m frame.MAC, ip string) bgp.Update {
		u := macRoute(vtep, m, 0)
		u.IP = netip.MustParseAddr(ip)
		return u
	}
	f.receive(t0, imet(vtepB, 101, false), imet(vtepC, 101, false), withIP(vtepB, macH1, "10.77.0.2"))
	if n, ok := neigh("10.77.0.2"); !ok || n.MAC != macH1 || n.Local {
		t.Fatalf("a MAC+IP route's address: %+v %v", n, ok)
	}
	// The address moves to a host behind C.
	f.receive(t0, withIP(vtepC, macH2, "10.77.0.2"))
	if n, _ := neigh("10.77.0.2"); n.MAC != macH2 {
		t.Fatalf("after the move: %+v", n)
	}
	old := withIP(vtepB, macH1, "10.77.0.2")
	old.Withdraw = true
	f.receive(t0, old)
	if n, ok := neigh("10.77.0.2"); !ok || n.MAC != macH2 {
		t.Fatalf("after the old route went: %+v %v", n, ok)
	}
	// A LAN host's own address.
	lanH := frame.MAC{0x02, 0, 0, 0, 0, 0x09}
	f.c.Learned()[0].Push1(vxlan.Learned{Key: vxlan.MakeKey(0, lanH), VTEP: vxlan.Local, IP: netip.MustParseAddr("10.77.0.9")})
	f.c.Work(t0)
	if n, ok := neigh("10.77.0.9"); !ok || n.MAC != lanH || !n.Local {
		t.Fatalf("a LAN host's address: %+v %v", n, ok)
	}
	// The address goes to a host elsewhere (a route imported after it):
	// the route's MAC.
	f.receive(t0, withIP(vtepB, macH1, "10.77.0.9"))
	if n, ok := neigh("10.77.0.9"); !ok || n.Local || n.MAC != macH1 {
		t.Fatalf("a LAN host's address announced from elsewhere later: %+v %v", n, ok)
	}
	// Aged: the LAN host's address goes.
	f.c.Learned()[0].Push1(vxlan.Learned{Key: vxlan.MakeKey(0, lanH), VTEP: vxlan.Local, IP: netip.MustParseAddr("10.77.0.8")})
	f.c.Work(t0)
	if n, ok := neigh("10.77.0.8"); !ok || !n.Local {
		t.Fatalf("a LAN host's second address: %+v %v", n, ok)
	}
	f.c.Age(t0.Add(2 * time.Minute))
	if _, ok := neigh("10.77.0.8"); ok {
		t.Fatal("an aged LAN host's address stayed")
	}
}
