package control

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pwgate/pwgate/control/anycast"
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/bgp/bgptest"
	"github.com/pwgate/pwgate/control/config"
)

// An announcer-only pwgated (the same Daemon, without a data path) with a
// fake speaker: control requests, status
// and each way a reload can be refused.
func TestAnycastDaemon(t *testing.T) {
	fake := bgptest.New()
	old := newSpeaker
	newSpeaker = func(*slog.Logger) bgp.Speaker { return fake }
	t.Cleanup(func() { newSpeaker = old })
	sock := filepath.Join(t.TempDir(), "a.sock")
	yaml := strings.Replace(strings.Replace(testYAML("announcer.yaml"), "/run/pwgate/a.sock", sock, 1),
		"        http: http://127.0.0.1:8080/health\n        status: 204\n", "        exec: true\n", 1)
	c, err := config.Parse("a.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	next := yaml
	load := func() (*config.Config, error) { return config.Parse("a.yaml", []byte(next)) }
	d, err := Start(c, Source{Load: load}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !fake.Started {
		t.Fatal("the speaker was not started")
	}
	st := d.Status()
	if st.Mode != "anycast" || st.BGP == nil || st.BGP.ASN != 65101 || st.Anycast == nil || len(st.Anycast.VIPs) != 2 {
		t.Errorf("status %+v", st)
	}
	if err := d.Control("drain", "192.0.2.80"); err != nil {
		t.Error(err)
	}
	if err := d.Control("resume", "192.0.2.80/32"); err != nil {
		t.Error(err)
	}
	for _, bad := range [][2]string{{"drain", "192.0.2.99/32"}, {"drain", "not a prefix"}, {"pause", "192.0.2.80/32"}} {
		if err := d.Control(bad[0], bad[1]); err == nil {
			t.Errorf("%s %s was taken", bad[0], bad[1])
		}
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad file", "anycast: [", "a.yaml"},
		{"a pseudowire now", "mode: eth\ndownlink:\n  interface: a\nuplink:\n  interface: b\npeer:\n  mac: 02:00:00:00:00:02\n", "has a mode or ports"},
		{"asn", strings.Replace(yaml, "asn: 65101", "asn: 65102", 1), "bgp.asn and bgp.router_id cannot change"},
		{"forwarder added", strings.Replace(yaml, "stats:", "  forward:\n    interfaces: [eth1]\n    vips: [192.0.2.80/32]\nstats:", 1), "anycast.forward cannot change"},
	} {
		next = tc.yaml
		if err := d.Reload(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: reload error %v, want %q", tc.name, err, tc.want)
		}
	}
	next = strings.Replace(yaml, "med: 100", "med: 200", 1)
	if err := d.Reload(); err != nil {
		t.Fatalf("a good reload: %v", err)
	}
	if anycast.VIPsOf(d.cfg)[0].MED != 200 {
		t.Error("the reload did not apply")
	}
}
