package config

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/frame"
)

// Interfaces names what the reference's file leaves out: which interfaces
// are the downlink and uplink (the reference took DPDK ports 0 and 1).
type Interfaces struct {
	Downlink, Uplink string
}

// LoadGPWFile reads the reference's configuration file: the mode on the
// first line, then the peer's MAC as 12 hex digits (eth), or the peer's and
// our own IPv6 address as 32 hex digits each (ip6). As in the reference,
// only the first word of a line counts, so "eth   # mode" is fine; blank
// lines and lines starting with # are skipped. The statistics socket of the
// reference protocol is on, at /run/gpwstats.socket, as the reference's was.
func LoadGPWFile(path string, ifs Interfaces) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseGPW(path, data, ifs)
}

// ParseGPW parses the reference's configuration; name is used in messages.
func ParseGPW(name string, data []byte, ifs Interfaces) (*Config, error) {
	c := &Config{Source: name, CoreMain: NoCore, CoreEncap: NoCore, CoreDecap: NoCore,
		StatsSocket: client.DefaultStatsSocket, GPWSocket: client.DefaultGPWSocket}
	type word struct {
		line int
		text string
	}
	var words []word
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if f := strings.Fields(line); len(f) > 0 {
			words = append(words, word{n, f[0]})
		}
	}
	fail := func(w word, format string, args ...any) error {
		return &ConfigError{File: name, Line: w.line, Msg: fmt.Sprintf(format, args...)}
	}
	if len(words) == 0 {
		return nil, &ConfigError{File: name, Msg: "empty configuration: want the mode (eth or ip6) on the first line"}
	}
	mode, err := ParseMode(words[0].text)
	if err != nil {
		return nil, fail(words[0], "%v", err)
	}
	c.Mode = mode
	want := 2
	if mode == ModeIP6 {
		want = 3
	}
	if len(words) != want {
		return nil, &ConfigError{File: name, Msg: fmt.Sprintf("%v mode wants %d lines (mode, %s), found %d", mode, want,
			map[bool]string{true: "peer address, own address", false: "peer MAC"}[mode == ModeIP6], len(words))}
	}
	if mode == ModeEth {
		w := words[1]
		if len(w.text) != 12 {
			return nil, fail(w, "peer MAC %q: want 12 hex digits without colons", w.text)
		}
		if c.PeerMAC, err = frame.ParseMAC(w.text); err != nil || c.PeerMAC.IsZero() || c.PeerMAC.IsMulticast() {
			return nil, fail(w, "peer MAC %q is not a unicast MAC address", w.text)
		}
	} else {
		addrs := [2]netip.Addr{}
		for i, w := range words[1:] {
			b, err := hex.DecodeString(w.text)
			if err != nil || len(b) != 16 {
				return nil, fail(w, "%q: want an IPv6 address as 32 hex digits", w.text)
			}
			if addrs[i], err = unicast6(netip.AddrFrom16([16]byte(b)).String()); err != nil {
				return nil, fail(w, "%v", err)
			}
		}
		c.PeerAddr, c.LocalAddr = addrs[0], netip.PrefixFrom(addrs[1], 64)
	}
	if ifs.Downlink == "" || ifs.Uplink == "" {
		return nil, &ConfigError{File: name, Msg: "the reference's file names no interfaces: give --downlink and --uplink"}
	}
	for _, v := range []struct {
		dst *string
		v   string
	}{{&c.Downlink, ifs.Downlink}, {&c.Uplink, ifs.Uplink}} {
		if err := ifname(v.dst, v.v); err != nil {
			return nil, &ConfigError{File: name, Msg: err.Error()}
		}
	}
	if err := c.check(map[string]int{}); err != nil {
		return nil, err
	}
	return c, nil
}
