package control

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/uplink"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/frame"
)

type fakeEngine struct {
	p    *dataplane.Params
	fail error
}

func (f *fakeEngine) Params() *dataplane.Params { return f.p }
func (f *fakeEngine) SetParams(p *dataplane.Params) error {
	if f.fail != nil {
		return f.fail
	}
	f.p = p
	return nil
}

type fakeXDP struct {
	peers []bpf.PeerKey
	fail  error
}

func (f *fakeXDP) setPeers(k []bpf.PeerKey) error {
	if f.fail != nil && !slices.Equal(k, f.peers) {
		return f.fail
	}
	f.peers = k
	return nil
}

type fakeTracker struct {
	token netip.Addr
	fail  error
}

func (f *fakeTracker) View() uplink.View {
	return uplink.View{Local: netip.MustParseAddr("2001:db8:a::a"), NextHop: frame.MAC{2, 0, 0, 0, 0xf, 0xa}}
}
func (f *fakeTracker) Update(c *config.Config) error {
	if f.fail != nil {
		return f.fail
	}
	f.token = c.LocalToken
	return nil
}
func (f *fakeTracker) Changed() <-chan struct{} { return nil }
func (f *fakeTracker) Close()                   {}

// TestReloadIsTransactional makes each step of a reload fail in turn and
// checks that the running state is then exactly what it was: the
// configuration, the XDP peers, the data path's parameters and the
// uplink's token.
func TestReloadIsTransactional(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw.yaml")
	conf := func(peer, token string) string {
		return "mode: ip6\ndownlink:\n  interface: dl0\nuplink:\n  interface: ul0\npeer:\n  address: " + peer +
			"\nlocal:\n  token: " + token + "\nstats:\n  socket: " + dir + "/s.sock\n"
	}
	load := func() (*config.Config, error) { return config.LoadFile(file) }
	boom := errors.New("injected failure")
	for _, failAt := range []string{"", "file", "check", "xdp peers", "data path", "uplink address"} {
		t.Run("fail at "+failAt, func(t *testing.T) {
			if err := os.WriteFile(file, []byte(conf("2001:db8:b::b", "::a")), 0o644); err != nil {
				t.Fatal(err)
			}
			old, err := load()
			if err != nil {
				t.Fatal(err)
			}
			eng, xdp, track := &fakeEngine{}, &fakeXDP{peers: peerKeys(old)}, &fakeTracker{token: old.LocalToken}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			d := &Daemon{log: log, cfg: old, load: load,
				path: &dataPath{log: log, eng: eng, xdp: xdp, ulMTU: 1500},
			}
			d.path.params = d.params
			d.up = uplink.NewRole(track, d.refresh, d.waiting)
			if eng.p, err = d.params(old); err != nil {
				t.Fatal(err)
			}
			d.publishStatus()
			oldParams, oldPeers := eng.p, xdp.peers

			next := conf("2001:db8:c::c", "::aa")
			switch failAt {
			case "file":
				next += "bogus: 1\n"
			case "check":
				next = strings.Replace(next, "interface: ul0\n", "interface: ul0\n  mtu: 9000\n", 1) // above the interface's 1500
			case "xdp peers":
				xdp.fail = boom
			case "data path":
				eng.fail = boom
			case "uplink address":
				track.fail = boom
			}
			if err := os.WriteFile(file, []byte(next), 0o644); err != nil {
				t.Fatal(err)
			}
			err = d.Reload()
			if failAt == "" {
				if err != nil {
					t.Fatal(err)
				}
				if d.cfg.PeerAddr.String() != "2001:db8:c::c" || eng.p.Decap.PeerAddr.String() != "2001:db8:c::c" ||
					!slices.Equal(xdp.peers, peerKeys(d.cfg)) || track.token.String() != "::aa" {
					t.Fatalf("reload did not take effect: config %v, data path %v, xdp %x, token %v", d.cfg.PeerAddr, eng.p.Decap.PeerAddr, xdp.peers, track.token)
				}
				return
			}
			if err == nil {
				t.Fatal("reload succeeded")
			}
			if d.cfg != old || eng.p != oldParams || !slices.Equal(xdp.peers, oldPeers) || track.token != old.LocalToken {
				t.Errorf("state changed by a failed reload: config %v, params changed %v, xdp %x (was %x), token %v",
					d.cfg.PeerAddr, eng.p != oldParams, xdp.peers, oldPeers, track.token)
			}
			if st := d.status.Load(); st.Peer != "2001:db8:b::b" {
				t.Errorf("status shows peer %s", st.Peer)
			}
		})
	}
}
