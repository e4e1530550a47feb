package control

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/pwgate/pwgate/control/bgp"
)

// gtsmYAML is a forwarder with three neighbors: TTL security from the peer
// group, its own hop count, and none; sources given and the kernel's.
const gtsmYAML = `bgp:
  asn: 65000
  router_id: 10.1.0.1
  peer_groups:
    - name: servers
      asn: 65101
      ttl_security: true
  neighbors:
    - address: 10.1.0.2
      peer_group: servers
      source: 10.1.0.1
    - address: 10.1.1.2
      peer_group: servers
      ttl_security: 2
      source: 10.1.1.1
    - address: 10.1.2.2
      asn: 65102
anycast:
  forward:
    interfaces: [eth1]
    vips: [192.0.2.80/32]
`

func TestParseTTLSecurity(t *testing.T) {
	c, err := Parse("g.yaml", []byte(gtsmYAML))
	if err != nil {
		t.Fatal(err)
	}
	sc := c.speakerConfig(false)
	var hops []int
	for _, n := range sc.Neighbors {
		hops = append(hops, n.TTLSecurity)
	}
	if !slices.Equal(hops, []int{1, 2, 0}) {
		t.Errorf("ttl_security hops %v, want [1 2 0]", hops)
	}
	// No bgp.listen: the speaker listens on the sessions' sources, the
	// given ones and, for the third neighbor, the kernel's.
	if len(sc.ListenAddrs) != 0 {
		t.Errorf("listen addresses %v without bgp.listen", sc.ListenAddrs)
	}
	got := bgp.SessionSources(sc.Neighbors)
	for _, a := range []string{"10.1.0.1", "10.1.1.1"} {
		if !slices.Contains(got, netip.MustParseAddr(a)) {
			t.Errorf("default listen addresses %v lack the source %s", got, a)
		}
	}
	if len(got) > 3 || slices.ContainsFunc(got, netip.Addr.IsUnspecified) {
		t.Errorf("default listen addresses %v: more than the sessions' sources", got)
	}
	c, err = Parse("g.yaml", []byte(strings.Replace(gtsmYAML, "  router_id: 10.1.0.1\n", "  router_id: 10.1.0.1\n  listen: [0.0.0.0]\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.speakerConfig(false).ListenAddrs; len(l) != 1 || !l[0].IsUnspecified() {
		t.Errorf("bgp.listen [0.0.0.0] gave %v", l)
	}
}

func TestParseTTLSecurityErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
		line                 int
	}{
		{"hops 255", "ttl_security: 2", "ttl_security: 255", "neither true, false nor a hop count 1 to 254", 14},
		{"hops 0", "ttl_security: 2", "ttl_security: 0", "neither true, false nor a hop count 1 to 254", 14},
		{"word", "ttl_security: true", "ttl_security: yes please", "neither true, false nor a hop count", 7},
		{"with multihop", "ttl_security: 2\n", "ttl_security: 2\n      multihop: 2\n", "bgp.neighbors[1].ttl_security: excludes multihop", 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("g.yaml", []byte(strings.Replace(gtsmYAML, tc.old, tc.new, 1)))
			var ce *ConfigError
			switch {
			case err == nil:
				t.Fatal("accepted")
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %v, want %q", err, tc.want)
			case !errors.As(err, &ce) || ce.Line != tc.line:
				t.Errorf("error %v, want line %d", err, tc.line)
			}
		})
	}
}
