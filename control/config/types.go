package config

import (
	"fmt"

	"github.com/pwgate/pwgate/dataplane/wg/wgkey"
)

// The configuration's own enums. The daemon converts them to the data
// path's types (control's TestEnumsMatchTheDataPath checks that the
// values agree), so that reading a configuration links none of it.

// Mode is the pseudowire's encapsulation; values as Mode's.
type Mode uint8

// Modes.
const (
	ModeEth Mode = 1 // Ethernet over Ethernet
	ModeIP6 Mode = 2 // Ethernet over IPv6
)

// String returns "eth" or "ip6".
func (m Mode) String() string {
	switch m {
	case ModeEth:
		return "eth"
	case ModeIP6:
		return "ip6"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses "eth" or "ip6".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "eth":
		return ModeEth, nil
	case "ip6":
		return ModeIP6, nil
	}
	return 0, fmt.Errorf("unknown mode %q (want eth or ip6)", s)
}

// PollMode is how the data goroutines wait for frames; values as
// PollMode's.
type PollMode int

// Poll modes.
const (
	Adaptive PollMode = iota // spin briefly, then sleep in poll(2)
	Busy                     // never sleep
)

// String returns "busy" or "adaptive".
func (m PollMode) String() string {
	if m == Busy {
		return "busy"
	}
	return "adaptive"
}

// ParsePollMode parses "adaptive" or "busy".
func ParsePollMode(s string) (PollMode, error) {
	switch s {
	case "adaptive":
		return Adaptive, nil
	case "busy":
		return Busy, nil
	}
	return 0, fmt.Errorf("unknown poll mode %q (want busy or adaptive)", s)
}

// XDPMode is how the XDP program is attached; values as XDPMode's.
type XDPMode int

// XDP attach modes.
const (
	XDPNative XDPMode = iota
	XDPGeneric
)

// String returns "native" or "generic".
func (m XDPMode) String() string {
	if m == XDPGeneric {
		return "generic"
	}
	return "native"
}

// BindMode is how the AF_XDP sockets are bound; values as BindMode's.
type BindMode int

// Bind modes.
const (
	BindAuto     BindMode = iota // zero-copy where the driver offers it
	BindZeroCopy                 // zero-copy or nothing
	BindCopy                     // always copy
)

// String returns "auto", "zerocopy" or "copy".
func (m BindMode) String() string {
	return [...]string{"auto", "zerocopy", "copy"}[m]
}

// ParseBindMode parses "auto", "zerocopy" or "copy".
func ParseBindMode(s string) (BindMode, error) {
	switch s {
	case "auto":
		return BindAuto, nil
	case "zerocopy":
		return BindZeroCopy, nil
	case "copy":
		return BindCopy, nil
	}
	return 0, fmt.Errorf("unknown bind mode %q (want auto, zerocopy or copy)", s)
}

// NICPolicy is what pwgated does about port settings that change frames
// before it sees them (nic_offloads).
type NICPolicy int

// NIC policies.
const (
	// NICFix turns them off at start and back on at exit.
	NICFix NICPolicy = iota
	// NICCheck refuses to start while one is on, naming the ethtool command.
	NICCheck
	// NICIgnore leaves them as they are (for drivers that report wrongly).
	NICIgnore
)

func parseNICPolicy(s string) (NICPolicy, error) {
	switch s {
	case "fix":
		return NICFix, nil
	case "check":
		return NICCheck, nil
	case "ignore":
		return NICIgnore, nil
	}
	return 0, fmt.Errorf("unknown policy %q (want fix, check or ignore)", s)
}

// Key is a WireGuard key (wgkey.Key, which wg.Key is too).
type Key = wgkey.Key

// ParseKey parses a key in base64, as wg genkey and wg pubkey print it.
func ParseKey(s string) (Key, error) { return wgkey.Parse(s) }
