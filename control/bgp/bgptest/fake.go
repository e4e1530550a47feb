// Package bgptest is a fake bgp.Speaker for unit tests: it records what is
// announced and lets the test deliver received routes.
package bgptest

import (
	"errors"
	"sync"

	"github.com/pwgate/pwgate/control/bgp"
)

// Fake is a bgp.Speaker without sessions.
type Fake struct {
	mu        sync.Mutex
	Config    bgp.Config
	Announced map[string]bgp.Route // by route ID
	watch     func([]bgp.Update)
	Started   bool
	Stopped   bool
	Graceful  bool
	// Fail, when set, is returned by every method that can fail.
	Fail error
	// Log records every Announce ("+ID") and Withdraw ("-ID") in order.
	Log []string
}

var _ bgp.Speaker = (*Fake)(nil)

// New returns a fake speaker.
func New() *Fake { return &Fake{Announced: map[string]bgp.Route{}} }

// Start implements bgp.Speaker.
func (f *Fake) Start(c bgp.Config, watch func([]bgp.Update)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return f.Fail
	}
	if err := c.Validate(); err != nil {
		return err
	}
	f.Config, f.watch, f.Started = c, watch, true
	return nil
}

// Reconfigure implements bgp.Speaker.
func (f *Fake) Reconfigure(c bgp.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return f.Fail
	}
	if err := c.Validate(); err != nil {
		return err
	}
	f.Config = c
	return nil
}

// Announce implements bgp.Speaker.
func (f *Fake) Announce(r bgp.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return f.Fail
	}
	if f.Stopped {
		return errors.New("stopped")
	}
	f.Announced[r.ID()] = r
	f.Log = append(f.Log, "+"+r.ID())
	return nil
}

// Withdraw implements bgp.Speaker.
func (f *Fake) Withdraw(r bgp.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return f.Fail
	}
	if _, ok := f.Announced[r.ID()]; ok {
		delete(f.Announced, r.ID())
		f.Log = append(f.Log, "-"+r.ID())
	}
	return nil
}

// Peers implements bgp.Speaker.
func (f *Fake) Peers() []bgp.PeerState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []bgp.PeerState
	for _, n := range f.Config.Neighbors {
		out = append(out, bgp.PeerState{Key: n.Key(), Address: n.Address, ASN: n.ASN, State: "established", Received: map[bgp.Family]int{}})
	}
	return out
}

// Stop implements bgp.Speaker.
func (f *Fake) Stop(graceful bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Stopped, f.Graceful = true, graceful
}

// Deliver hands updates to the watcher, as the speaker's goroutine would.
func (f *Fake) Deliver(us ...bgp.Update) {
	f.mu.Lock()
	w := f.watch
	f.mu.Unlock()
	w(us)
}

// Get returns the announced route with id.
func (f *Fake) Get(id string) (bgp.Route, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.Announced[id]
	return r, ok
}

// Routes returns the announced routes of kind k.
func (f *Fake) Routes(k bgp.RouteKind) []bgp.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []bgp.Route
	for _, r := range f.Announced {
		if r.Kind == k {
			out = append(out, r)
		}
	}
	return out
}
