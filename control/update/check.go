package update

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pwgate/pwgate/control/client"
)

// bootCountVar is the EFI variable systemd-boot sets when the entry it
// booted counts its tries: this boot is a trial.
const bootCountVar = "LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// Trial reports whether this boot is a trial boot.
func (s System) Trial() bool {
	_, err := os.Stat(filepath.Join(s.EFIVars, bootCountVar))
	return err == nil
}

// Wants are what a trial boot may wait for beyond pwgated's readiness.
var Wants = []string{"bpdu", "bgp"}

// ParseWants checks a comma-separated list of Wants.
func ParseWants(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, w := range strings.Split(s, ",") {
		if w != "bpdu" && w != "bgp" {
			return nil, fmt.Errorf("want %q: not one of %s", w, strings.Join(Wants, ", "))
		}
		out = append(out, w)
	}
	return out, nil
}

// Healthy says whether a pwgated status shows a healthy box: ready, and
// what wants names: a BPDU from the far site ("bpdu"), every BGP session
// established ("bgp").
func Healthy(st client.Status, wants []string) (bool, string) {
	if !st.Ready {
		return false, "pwgated not ready: " + st.NotReady
	}
	for _, w := range wants {
		switch w {
		case "bpdu":
			if st.LastBPDU.UL == nil {
				return false, "no BPDU from the far site yet"
			}
		case "bgp":
			if st.BGP == nil || len(st.BGP.Neighbors) == 0 {
				return false, "no BGP sessions configured"
			}
			for _, n := range st.BGP.Neighbors {
				if n.State != "established" {
					return false, fmt.Sprintf("BGP session with %s is %s", n.Neighbor, n.State)
				}
			}
		}
	}
	return true, ""
}

// CheckBoot decides a trial boot: it asks health every interval until it
// says yes (nil: the boot may be blessed) or deadline passes (an error
// saying why: the caller reboots into the other slot). The reason is kept
// in the record of the last update. A boot that is not a trial passes.
func (s System) CheckBoot(deadline, interval time.Duration, health func() (bool, string), logf func(string, ...any)) error {
	if !s.Trial() {
		logf("not a trial boot: nothing to decide")
		return nil
	}
	booted, err := s.BootedSlot()
	if err != nil {
		return err
	}
	start := time.Now()
	why := "no answer"
	for {
		ok, w := health()
		if ok {
			s.noteTrial(fmt.Sprintf("healthy %.0f s after the check began", time.Since(start).Seconds()))
			logf("trial boot of slot %s: healthy after %.1f s; it will be blessed", booted, time.Since(start).Seconds())
			return nil
		}
		if w != why {
			logf("trial boot of slot %s: waiting: %s", booted, w)
			why = w
		}
		if time.Since(start) >= deadline {
			break
		}
		time.Sleep(min(interval, deadline-time.Since(start)))
	}
	reason := fmt.Sprintf("not healthy within %v: %s", deadline, why)
	s.noteTrial(reason)
	return errors.New("trial boot of slot " + booted + " failed: " + reason + "; rebooting into slot " + Other(booted))
}

// noteTrial keeps what the trial boot found in the record, best effort:
// the decision does not depend on it.
func (s System) noteTrial(what string) {
	r, err := s.readRecord()
	if err != nil || r == nil {
		return
	}
	r.Trial = what
	_ = s.writeRecord(*r)
}
