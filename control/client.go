package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/dataplane/stats"
)

// Query sends one request to a pwgated statistics socket and returns the
// answer. Its errors say what an operator should do: the daemon is not
// running, or the caller may not use the socket.
func Query(socket, req string, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED):
			return nil, fmt.Errorf("cannot reach pwgated at %s: is it running? (%w)", socket, errors.Unwrap(errors.Unwrap(err)))
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("permission denied on %s: the socket is for root and the group set in stats.group", socket)
		}
		return nil, fmt.Errorf("cannot reach pwgated at %s: %w", socket, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(req + "\n")); err != nil {
		return nil, fmt.Errorf("query %s: %w", socket, err)
	}
	b, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", socket, err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("pwgated at %s: %s", socket, e.Error)
	}
	return b, nil
}

// Counter is one named value as reported by the statistics socket.
type Counter struct {
	Name  string
	Value uint64
}

// FetchCounters returns the counters in their documented order; names this
// version does not know follow at the end.
func FetchCounters(socket string, timeout time.Duration) ([]Counter, error) {
	b, err := Query(socket, ReqStats, timeout)
	if err != nil {
		return nil, err
	}
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("pwgated at %s answered %q: %w", socket, b, err)
	}
	var out []Counter
	for c := stats.Counter(0); c < stats.NumCounters; c++ {
		if v, ok := m[c.Name()]; ok {
			out = append(out, Counter{c.Name(), v})
			delete(m, c.Name())
		}
	}
	for _, n := range slices.Sorted(maps.Keys(m)) {
		out = append(out, Counter{n, m[n]})
	}
	return out, nil
}

// FetchStatus returns the daemon's status.
func FetchStatus(socket string, timeout time.Duration) (Status, error) {
	var s Status
	b, err := Query(socket, ReqStatus, timeout)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("pwgated at %s answered %q: %w", socket, b, err)
	}
	return s, nil
}
