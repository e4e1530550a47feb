// Package feature is the one small interface between pwgated's daemon
// (package control) and each of its features: the uplink's tracking
// (control/uplink), WireGuard (control/wireguard), VXLAN and EVPN,
// anycast, the data path. The daemon starts each from its section of the
// configuration, hands every feature's events to its main goroutine,
// reloads them all as one transaction of steps, adds their status and
// counters to its own, and closes them in reverse order.
package feature

import (
	"fmt"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// A Feature is one running part of pwgated. Only the daemon's main
// goroutine calls its methods, except Status.
type Feature interface {
	// Reload checks next and returns the steps that change the feature
	// from old to it, each with its undo. An error changes nothing.
	Reload(old, next *config.Config) ([]Step, error)
	// Events are what wakes the main goroutine for the feature.
	Events() []Event
	// Status adds the feature's state to s. Safe from any goroutine.
	Status(s *client.Status)
	// Close stops the feature; graceful when pwgated stops on a signal
	// (BGP may then leave with graceful restart).
	Close(graceful bool)
}

// Counter is a Feature with counters of its own. AddCounters is safe
// from any goroutine.
type Counter interface {
	AddCounters(s *stats.Snapshot)
}

// An Event wakes the main goroutine, which then calls Do: a value on C,
// or a tick Every period (only while Active, if set).
type Event struct {
	C      <-chan struct{}
	Every  time.Duration
	Active func() bool
	Do     func()
}

// A Step is one change a reload makes, with what undoes it; Undo is nil
// for a change that cannot be taken back (an IPv6 token: the kernel
// deprecates the addresses formed with the old one).
type Step struct {
	Name string
	Do   func() error
	Undo func()
}

// Run runs the steps that can be undone, in order, then those that
// cannot. When one fails, it undoes those done, in reverse, and returns
// the failure.
func Run(steps []Step) error {
	ordered := make([]Step, 0, len(steps))
	for _, final := range []bool{false, true} {
		for _, s := range steps {
			if (s.Undo == nil) == final {
				ordered = append(ordered, s)
			}
		}
	}
	for i, s := range ordered {
		if err := s.Do(); err != nil {
			for j := i - 1; j >= 0; j-- {
				if ordered[j].Undo != nil {
					ordered[j].Undo()
				}
			}
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return nil
}
