package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotify runs the eth lab as systemd would with Type=notify
// and WatchdogSec: each pwgated says READY=1, then WATCHDOG=1 every half
// WATCHDOG_USEC while its data goroutines turn, and STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "400000")
	s := newSites(t, "eth")
	got := map[string]int{}
	read := func(d time.Duration) {
		buf := make([]byte, 256)
		for deadline := time.Now().Add(d); time.Now().Before(deadline); {
			ln.SetReadDeadline(deadline)
			n, err := ln.Read(buf)
			if err != nil {
				return
			}
			got[string(buf[:n])]++
		}
	}
	read(2 * time.Second)
	if got["READY=1"] != 2 || got["WATCHDOG=1"] < 4 {
		t.Errorf("notifications from two pwgated in 2 s: %v", got)
	}
	s.A.Proc.Signal(syscall.SIGTERM)
	if code, err := s.A.Proc.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("exit %d, %v", code, err)
	}
	read(500 * time.Millisecond)
	if got["STOPPING=1"] != 1 {
		t.Errorf("after SIGTERM: %v", got)
	}
	if log := s.A.Proc.Out.String(); strings.Contains(log, "made no progress") {
		t.Errorf("the watchdog thought a data goroutine stuck:\n%s", log)
	}
}
