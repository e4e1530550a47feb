// Package controltest runs pwgated's statistics socket over counters a
// test sets, for testing the tools that read it (pwctl, check_pwbpdu).
package controltest

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/statsrv"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// Daemon is a stand-in for pwgated: a statistics socket whose counters and
// status the test controls.
type Daemon struct {
	Socket string
	mu     sync.Mutex
	snap   stats.Snapshot
	status client.Status
	// OnSnapshot, if set, is called on every read of the counters (under
	// the lock), to make counters move between two reads.
	OnSnapshot func(s *stats.Snapshot)
	// OnConfig, if set, answers pwctl config's requests.
	OnConfig func(client.ConfigRequest) client.ConfigAnswer
}

// Start serves a Daemon on a socket in a temporary directory until the test
// ends.
func Start(t testing.TB) *Daemon {
	d := &Daemon{Socket: filepath.Join(t.TempDir(), "pwgated.sock"),
		status: client.Status{Mode: "eth", Peer: "02:00:00:00:00:0b", Ready: true, Started: time.Now(), Version: "test"}}
	srv, err := statsrv.ServeStats(d.Socket, "", d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return d
}

// Set sets counter c.
func (d *Daemon) Set(c stats.Counter, v uint64) {
	d.mu.Lock()
	d.snap[c] = v
	d.mu.Unlock()
}

// SetStatus replaces the status.
func (d *Daemon) SetStatus(s client.Status) {
	d.mu.Lock()
	d.status = s
	d.mu.Unlock()
}

// Snapshot implements statsrv.Source.
func (d *Daemon) Snapshot() stats.Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.OnSnapshot != nil {
		d.OnSnapshot(&d.snap)
	}
	return d.snap
}

// FDB implements statsrv.Source: the fake is no VTEP.
func (d *Daemon) FDB() []client.FDBEntry { return nil }

// Config implements statsrv.ConfigSource.
func (d *Daemon) Config(req client.ConfigRequest) client.ConfigAnswer {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.OnConfig == nil {
		return client.ConfigAnswer{Error: "the fake takes no config requests"}
	}
	return d.OnConfig(req)
}

// Status implements statsrv.Source.
func (d *Daemon) Status() client.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.status
	s.Uptime = time.Since(s.Started).Seconds()
	return s
}
