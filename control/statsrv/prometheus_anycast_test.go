package statsrv

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pwgate/pwgate/control/client"
)

// The forwarder's refused paths are exported by reason, and a refused
// path is no server of the VIP (issue 21 finding 5).
func TestPrometheusAnycastRefused(t *testing.T) {
	c := newCollector(nil)
	ch := make(chan prometheus.Metric, 100)
	c.collectAnycast(ch, &client.Anycast{
		Forward: []client.AnycastForward{{Prefix: "192.0.2.80/32", Servers: []client.AnycastServer{
			{NextHop: "10.0.0.1", Peer: "10.0.0.1", Slots: 251, Packets: 5},
			{NextHop: "10.0.0.1", Peer: "10.0.0.9", Refused: "next_hop"},
			{NextHop: "10.0.0.7", Peer: "10.0.0.7", Refused: "neighbor"},
		}}},
		PathsRefused: map[string]uint64{"neighbor": 3, "next_hop": 4},
	})
	close(ch)
	got := map[string]float64{}
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		name := m.Desc().String()
		name = name[strings.Index(name, `"`)+1:]
		name = name[:strings.Index(name, `"`)]
		for _, l := range d.GetLabel() {
			name += "," + l.GetName() + "=" + l.GetValue()
		}
		got[name] = d.GetCounter().GetValue() + d.GetGauge().GetValue()
	}
	for k, want := range map[string]float64{
		"pwgate_anycast_paths_refused_total,reason=neighbor":                    3,
		"pwgate_anycast_paths_refused_total,reason=next_hop":                    4,
		"pwgate_anycast_servers,vip=192.0.2.80/32":                              1,
		"pwgate_anycast_server_packets_total,server=10.0.0.1,vip=192.0.2.80/32": 5,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (%v), want %v; all: %v", k, v, ok, want, got)
		}
	}
	if _, ok := got["pwgate_anycast_server_packets_total,server=10.0.0.7,vip=192.0.2.80/32"]; ok {
		t.Error("a refused path is exported as a server")
	}
}
