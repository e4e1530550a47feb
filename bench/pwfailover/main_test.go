package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/dataplane/wg"
)

func pingOutput(times ...float64) string {
	var b strings.Builder
	b.WriteString("PING 10.78.0.2 (10.78.0.2) 56(84) bytes of data.\n")
	for i, t := range times {
		fmt.Fprintf(&b, "[%.6f] 64 bytes from 10.78.0.2: icmp_seq=%d ttl=64 time=0.4 ms\n", t, i+1)
	}
	return b.String() + "^C\n--- 10.78.0.2 ping statistics ---\n"
}

func TestOutage(t *testing.T) {
	at := time.Unix(1000, 0)
	out := pingOutput(999.98, 999.99, 1000.00, 1000.01, 1000.35, 1000.36, 1002.0, 1002.01)
	gap, from, note := outage(out, at)
	if gap.Round(time.Millisecond) != 1640*time.Millisecond || from.Round(time.Millisecond) != 360*time.Millisecond || note != "" {
		t.Errorf("outage %v from %v (%q)", gap, from, note)
	}
	if _, _, note := outage(pingOutput(999.98, 999.99), at); note == "" {
		t.Error("no reply after the fault, and no note")
	}
	if _, ok := reply("[garbage] 64 bytes from x"); ok {
		t.Error("a line without a time parsed")
	}
}

func TestFlowing(t *testing.T) {
	now := float64(time.Now().UnixNano()) / 1e9
	var steady, gap []float64
	for i := 200; i >= 0; i-- {
		steady = append(steady, now-float64(i)*0.01)
		if i < 50 || i > 100 {
			gap = append(gap, now-float64(i)*0.01)
		}
	}
	if !flowing(pingOutput(steady...), time.Second) {
		t.Error("steady replies not flowing")
	}
	if flowing(pingOutput(gap...), time.Second) {
		t.Error("a 0.5 s gap counted as flowing")
	}
	if flowing(pingOutput(now-2), time.Second) {
		t.Error("no recent reply counted as flowing")
	}
}

// TestConfigs: what the lab writes for each pwgated is a valid
// configuration, in eth mode and inside WireGuard, with follow_peer on and
// off.
func TestConfigs(t *testing.T) {
	defer func(e string) { encrypt = e }(encrypt)
	for _, e := range []string{"none", "wireguard"} {
		encrypt = e
		f := &fo{dir: t.TempDir(), wgKey: map[string]wg.Key{}}
		for _, pw := range pws {
			k, _ := wg.GenerateKey()
			f.wgKey[pw] = k
			os.WriteFile(f.keyFile(pw), []byte(k.String()+"\n"), 0o600)
		}
		for _, follow := range []bool{false, true} {
			f.follow = follow
			for _, pw := range pws {
				c, err := config.Parse(pw, []byte(f.config(pw)))
				if err != nil {
					t.Fatalf("%s, follow %v, %s: %v\n%s", e, follow, pw, err, f.config(pw))
				}
				if (c.FollowPeer != nil) != follow || c.Keepalive == nil || (c.WireGuard != nil) != (e == "wireguard") {
					t.Errorf("%s, follow %v, %s: %+v", e, follow, pw, c)
				}
			}
		}
	}
}
