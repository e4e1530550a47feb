package nic

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/config"
)

// TestNICPolicies on veth, whose rx-vlan offloads are on by default and
// can be switched: fix turns them off and Restore back on; check
// refuses, naming the command; ignore leaves them.
func TestNICPolicies(t *testing.T) {
	l := lab.OnePort(t, "pwn")
	state := func(name string) bool {
		t.Helper()
		var on bool
		if err := l.Do("x", func() error {
			f, err := readFeatures("ul0")
			if err != nil {
				return err
			}
			var ok bool
			on, _, ok = f.state(name)
			if !ok {
				t.Fatalf("ul0 has no feature %s", name)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return on
	}
	if !state("rx-vlan-hw-parse") || !state("rx-vlan-stag-hw-parse") {
		t.Skip("this veth starts with rx-vlan offload off")
	}
	var changes []Change
	err := l.Do("x", func() (err error) {
		if _, err := Prepare(config.NICCheck, "ul0", ""); err == nil || !strings.Contains(err.Error(), `run "ethtool -K ul0 rx-vlan-hw-parse off"`) {
			t.Errorf("check: %v", err)
		}
		if c, err := Prepare(config.NICIgnore, "ul0", ""); err != nil || c != nil {
			t.Errorf("ignore: %v %v", c, err)
		}
		changes, err = Prepare(config.NICFix, "ul0", "")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].String() != "ul0 rx-vlan-hw-parse off" || changes[1].String() != "ul0 rx-vlan-stag-hw-parse off" {
		t.Fatalf("changes %v", changes)
	}
	if state("rx-vlan-hw-parse") || state("rx-vlan-stag-hw-parse") {
		t.Fatal("still on after fix")
	}
	if err := l.Do("x", func() error { return Restore(changes) }); err != nil {
		t.Fatal(err)
	}
	if !state("rx-vlan-hw-parse") || !state("rx-vlan-stag-hw-parse") {
		t.Fatal("not restored")
	}
}

// TestPrepareLinks: a port that is down comes up, the downlink becomes
// promiscuous (a NIC's unicast filter would drop the far site's frames),
// and both go back as they were; a missing port changes nothing.
func TestPrepareLinks(t *testing.T) {
	l := lab.OnePort(t, "pwn")
	if err := l.Script("x", "ip link set ul0 down", "ip link set ulp down", "ip link add dl0 type veth peer name dlp", "ip link set dl0 up"); err != nil {
		t.Fatal(err)
	}
	show := func(ifname string) string {
		t.Helper()
		out, err := l.Exec("x", "ip", "link", "show", ifname)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var changes []Change
	if err := l.Do("x", func() (err error) {
		if c, err := PrepareLinks("dl0", "nosuch0", false); err == nil || c != nil {
			t.Errorf("a missing uplink: %v %v", c, err)
		}
		changes, err = PrepareLinks("dl0", "ul0", false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(changes) != "[dl0 promisc on ul0 up]" {
		t.Errorf("changes %v", changes)
	}
	if !strings.Contains(show("dl0"), "PROMISC") || !strings.Contains(show("ul0"), ",UP") || strings.Contains(show("ul0"), "PROMISC") {
		t.Errorf("while running:\n%s%s", show("dl0"), show("ul0"))
	}
	if err := l.Do("x", func() error { return Restore(changes) }); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(show("dl0"), "PROMISC") || strings.Contains(show("ul0"), ",UP") {
		t.Errorf("after restoring:\n%s%s", show("dl0"), show("ul0"))
	}
	// A downlink found down comes up and stays up: it may be down
	// because of follow_peer, and left down it would cut the LAN off.
	if err := l.Script("x", "ip link set dl0 down"); err != nil {
		t.Fatal(err)
	}
	if err := l.Do("x", func() (err error) { changes, err = PrepareLinks("dl0", "", false); return err }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(changes) != "[dl0 promisc on]" || !strings.Contains(show("dl0"), ",UP") {
		t.Errorf("downlink found down: changes %v\n%s", changes, show("dl0"))
	}
	l.Do("x", func() error { return Restore(changes) })
	// With follow_peer a downlink that is down stays down.
	if err := l.Script("x", "ip link set dl0 down"); err != nil {
		t.Fatal(err)
	}
	if err := l.Do("x", func() (err error) { changes, err = PrepareLinks("dl0", "ul0", true); return err }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(changes) != "[dl0 promisc on ul0 up]" || strings.Contains(show("dl0"), ",UP") {
		t.Errorf("follow_peer: changes %v\n%s", changes, show("dl0"))
	}
	l.Do("x", func() error { return Restore(changes) })
}

// TestDecide: what Prepare does with each feature state, without a NIC.
// igb reports rx-vlan-filter on and fixed, and stops filtering VLANs in
// promiscuous mode (the rehearsal on emulated igb): its LAN port is taken,
// its uplink and another driver's fixed filter are not.
func TestDecide(t *testing.T) {
	for _, c := range []struct {
		policy            config.NICPolicy
		drv, name         string
		downlink, on, fix bool
		off               bool
		err               string
	}{
		{config.NICFix, "veth", "rx-vlan-hw-parse", true, false, false, false, ""},
		{config.NICFix, "veth", "rx-vlan-hw-parse", true, true, false, true, ""},
		{config.NICCheck, "veth", "rx-vlan-hw-parse", true, true, false, false, `run "ethtool -K p0 rx-vlan-hw-parse off"`},
		{config.NICFix, "igb", "rx-vlan-filter", true, true, true, false, ""},
		{config.NICCheck, "igb", "rx-vlan-filter", true, true, true, false, ""},
		{config.NICFix, "igb", "rx-vlan-filter", false, true, true, false, "its driver (igb) cannot turn it off"},
		{config.NICFix, "virtio_net", "rx-vlan-filter", true, true, true, false, "its driver (virtio_net) cannot turn it off"},
		{config.NICFix, "igb", "rx-fcs", true, true, true, false, "cannot turn it off"},
	} {
		off, err := decide(c.policy, "p0", c.drv, c.name, c.downlink, c.on, c.fix)
		if off != c.off || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: got %v, %v", c, off, err)
		}
	}
}

// TestSetMTU: downlink.mtu is set, put back by Restore, left alone when the
// port has it already; an MTU the driver refuses says which port and key.
func TestSetMTU(t *testing.T) {
	l := lab.OnePort(t, "pwn")
	mtu := func() string {
		t.Helper()
		out, err := l.Exec("x", "cat", "/sys/class/net/ul0/mtu")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	was := mtu()
	var changes []Change
	if err := l.Do("x", func() (err error) { changes, err = SetMTU("ul0", 1600); return err }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(changes) != "[ul0 mtu 1600 (was "+was+")]" || mtu() != "1600" {
		t.Fatalf("changes %v, mtu %s", changes, mtu())
	}
	if err := l.Do("x", func() error {
		if c, err := SetMTU("ul0", 1600); err != nil || c != nil {
			t.Errorf("the same MTU again: %v %v", c, err)
		}
		if c, err := SetMTU("ul0", 70000); err == nil || c != nil || !strings.Contains(err.Error(), "set ul0's MTU to 70000 (downlink.mtu; driver veth)") {
			t.Errorf("an MTU veth refuses: %v %v", c, err)
		}
		return Restore(changes)
	}); err != nil {
		t.Fatal(err)
	}
	if mtu() != was {
		t.Errorf("after Restore: mtu %s, want %s", mtu(), was)
	}
}
