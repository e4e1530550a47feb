// Package revision keeps pwgated's configuration files as numbered
// revisions (pwctl config history, diff, rollback) and the one change
// that waits for confirmation (pwctl config apply --confirm), in a
// directory: NNNNNN.yaml and NNNNNN.json (when, who, why) per revision,
// pending.json for the change waiting. Every file is written whole and
// synced before it replaces the old one: a power cut leaves the old file
// or the new, never half of one. Standard library and control/client
// only.
package revision

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pwgate/pwgate/control/client"
)

// Keep is how many revisions a Store keeps; older ones are removed.
const Keep = 50

// Store is a directory of revisions. Only pwgated's main goroutine uses
// it.
type Store struct {
	dir string
}

// Open opens (and makes, for root only) the directory dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("configuration revisions: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// DirFor is where the revisions of the configuration file path are kept:
// on the appliance (with /etc/pwgate-release) on its data partition, on
// another host beside the file.
func DirFor(path string) string {
	if _, err := os.Stat("/etc/pwgate-release"); err == nil {
		return "/var/lib/pwgate/config-revisions"
	}
	return path + ".revisions"
}

type meta struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who,omitempty"`
	Message string    `json:"message,omitempty"`
}

func (s *Store) file(n int, ext string) string {
	return filepath.Join(s.dir, fmt.Sprintf("%06d.%s", n, ext))
}

// numbers returns the revisions' numbers, oldest first.
func (s *Store) numbers() ([]int, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var ns []int
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		if !ok || len(name) != 6 {
			continue
		}
		if n, err := strconv.Atoi(name); err == nil && n > 0 {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns, nil
}

// List returns the revisions, newest first; running marks the newest
// whose file equals running.
func (s *Store) List(running []byte) ([]client.ConfigRevision, error) {
	ns, err := s.numbers()
	if err != nil {
		return nil, err
	}
	out := make([]client.ConfigRevision, 0, len(ns))
	marked := false
	for i := len(ns) - 1; i >= 0; i-- {
		n := ns[i]
		r := client.ConfigRevision{N: n}
		b, err := os.ReadFile(s.file(n, "yaml"))
		if err != nil {
			continue
		}
		r.Size = len(b)
		var m meta
		if j, err := os.ReadFile(s.file(n, "json")); err == nil && json.Unmarshal(j, &m) == nil {
			r.Time, r.Who, r.Message = m.Time, m.Who, m.Message
		}
		if !marked && running != nil && bytes.Equal(b, running) {
			r.Running, marked = true, true
		}
		out = append(out, r)
	}
	return out, nil
}

// Get returns revision n's file.
func (s *Store) Get(n int) ([]byte, error) {
	b, err := os.ReadFile(s.file(n, "yaml"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no revision %d (pwctl config history lists them)", n)
	}
	return b, err
}

// Find returns the newest revision whose file is b, or 0.
func (s *Store) Find(b []byte) int {
	ns, _ := s.numbers()
	for i := len(ns) - 1; i >= 0; i-- {
		if old, err := os.ReadFile(s.file(ns[i], "yaml")); err == nil && bytes.Equal(old, b) {
			return ns[i]
		}
	}
	return 0
}

// Add keeps b as a new revision and removes those beyond Keep.
func (s *Store) Add(b []byte, who, message string, now time.Time) (int, error) {
	ns, err := s.numbers()
	if err != nil {
		return 0, err
	}
	n := 1
	if len(ns) > 0 {
		n = ns[len(ns)-1] + 1
	}
	j, _ := json.Marshal(meta{Time: now.UTC().Round(time.Second), Who: who, Message: message})
	if err := WriteFile(s.file(n, "json"), j, 0o600); err != nil {
		return 0, err
	}
	if err := WriteFile(s.file(n, "yaml"), b, 0o600); err != nil {
		os.Remove(s.file(n, "json"))
		return 0, err
	}
	ns = append(ns, n)
	for len(ns) > Keep {
		os.Remove(s.file(ns[0], "yaml"))
		os.Remove(s.file(ns[0], "json"))
		ns = ns[1:]
	}
	return n, nil
}

const pendingFile = "pending.json"

// Pending returns the change waiting for confirmation, or nil.
func (s *Store) Pending() (*client.ConfigPending, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, pendingFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p client.ConfigPending
	if err := json.Unmarshal(b, &p); err != nil || p.Rollback <= 0 {
		return nil, fmt.Errorf("%s: not a pending change (%v): remove it to forget it", filepath.Join(s.dir, pendingFile), err)
	}
	return &p, nil
}

// SetPending records p as the change waiting for confirmation; nil
// forgets it.
func (s *Store) SetPending(p *client.ConfigPending) error {
	path := filepath.Join(s.dir, pendingFile)
	if p == nil {
		err := os.Remove(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	b, _ := json.Marshal(p)
	return WriteFile(path, b, 0o600)
}

// WriteFile replaces path with b durably: written beside it, synced,
// renamed over it, and the directory synced.
func WriteFile(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() // not every file system syncs a directory (FAT)
		d.Close()
	}
	return nil
}

// BootID is the kernel's identifier of this boot: a pending change made
// in another boot was interrupted by a reboot.
func BootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}
