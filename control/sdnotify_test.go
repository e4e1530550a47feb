package control

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestNotifier(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "")
	n := newNotifier()
	if n.every != 100*time.Millisecond {
		t.Errorf("watchdog every %v, want half of 200 ms", n.every)
	}
	tick := n.ready()
	buf := make([]byte, 64)
	ln.SetReadDeadline(time.Now().Add(time.Second))
	k, err := ln.Read(buf)
	if err != nil || string(buf[:k]) != "READY=1" {
		t.Fatalf("got %q, %v", buf[:k], err)
	}
	if tick == nil {
		t.Fatal("no watchdog ticker")
	}
	<-tick
	n.stop()
	if k, err := ln.Read(buf); err != nil || string(buf[:k]) != "STOPPING=1" {
		t.Fatalf("got %q, %v", buf[:k], err)
	}
	// Another process's watchdog: none for us.
	t.Setenv("WATCHDOG_PID", "1")
	if m := newNotifier(); m.every != 0 {
		t.Error("a watchdog meant for another process was taken")
	}
	// No socket: nothing, quietly.
	t.Setenv("NOTIFY_SOCKET", "")
	m := newNotifier()
	if c := m.ready(); c != nil {
		t.Error("a ticker without a socket")
	}
	m.stop()
}

func TestProgressed(t *testing.T) {
	for _, c := range []struct {
		prev, now [2]uint64
		ok        bool
	}{
		{[2]uint64{1, 1}, [2]uint64{2, 2}, true},
		{[2]uint64{1, 1}, [2]uint64{1, 2}, false}, // encap stuck
		{[2]uint64{1, 1}, [2]uint64{2, 1}, false}, // decap stuck
	} {
		if got := progressed(c.prev, c.now); got != c.ok {
			t.Errorf("%v → %v: %v", c.prev, c.now, got)
		}
	}
}
