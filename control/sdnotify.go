package control

import (
	"net"
	"os"
	"strconv"
	"time"
)

// notifier speaks systemd's notification protocol (sd_notify(3)) on the
// socket NOTIFY_SOCKET names: READY=1 once the data path runs, STOPPING=1
// when pwgated stops, and WATCHDOG=1 every half WATCHDOG_USEC while the
// data goroutines make progress (WatchdogSec= in the unit: a stuck
// goroutine gets pwgated restarted). Without NOTIFY_SOCKET it does nothing.
type notifier struct {
	conn  *net.UnixConn
	every time.Duration // 0: no watchdog
	tick  *time.Ticker  // the watchdog's, from ready
}

func newNotifier() *notifier {
	n := &notifier{}
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return n
	}
	if addr[0] == '@' { // abstract namespace
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return n
	}
	n.conn = c
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	pid := os.Getenv("WATCHDOG_PID")
	if err == nil && usec > 0 && (pid == "" || pid == strconv.Itoa(os.Getpid())) {
		n.every = time.Duration(usec) * time.Microsecond / 2
	}
	return n
}

// send sends one state ("READY=1"); errors are ignored, as sd_notify's are.
func (n *notifier) send(state string) {
	if n.conn != nil {
		n.conn.Write([]byte(state))
	}
}

// ready says READY=1 and returns a channel that ticks at the watchdog's
// pace (nil without a watchdog): on each tick the caller sends WATCHDOG=1
// if all is well.
func (n *notifier) ready() <-chan time.Time {
	n.send("READY=1")
	if n.conn == nil || n.every == 0 {
		return nil
	}
	n.tick = time.NewTicker(n.every)
	return n.tick.C
}

// stop says STOPPING=1, stops the watchdog's ticker and closes the socket.
func (n *notifier) stop() {
	n.send("STOPPING=1")
	if n.tick != nil {
		n.tick.Stop()
	}
	if n.conn != nil {
		n.conn.Close()
	}
}

// progressed reports whether every data goroutine moved since the last
// watchdog tick (prev), given their beats now.
func progressed(prev, now [2]uint64) bool { return now[0] != prev[0] && now[1] != prev[1] }
