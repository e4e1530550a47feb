package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
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
