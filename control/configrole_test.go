package control

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/revision"
)

const cfgA = "mode: eth\ndownlink:\n  interface: dl0\nuplink:\n  interface: ul0\npeer:\n  mac: 02:00:00:00:00:0a\n"

// newConfigRole is a configRole on a file in a temporary directory whose
// reload is counted and fails when told to.
func newConfigRole(t *testing.T) (*configRole, string, *int, *error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "pwgated.yaml")
	if err := os.WriteFile(file, []byte(cfgA), 0o640); err != nil {
		t.Fatal(err)
	}
	reloads, fail := 0, error(nil)
	src := Source{File: file, Check: func(p string) error { _, err := config.LoadFile(p); return err }}
	r, err := startConfig(src, func() error { reloads++; return fail }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return r, file, &reloads, &fail
}

func read(t *testing.T, f string) string {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestConfigApplyConfirm(t *testing.T) {
	r, file, reloads, _ := newConfigRole(t)
	cfgB := strings.Replace(cfgA, ":0a", ":0b", 1)
	a, err := r.do(client.ConfigRequest{Verb: "apply", File: cfgB, Confirm: 60, Who: "alice", Message: "peer b"})
	if err != nil || a.Revision != 2 || a.Pending == nil || a.Pending.Rollback != 1 {
		t.Fatalf("apply: %+v, %v", a, err)
	}
	if read(t, file) != cfgB || *reloads != 1 {
		t.Fatalf("file %q, %d reloads", read(t, file), *reloads)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
		t.Errorf("the file's mode became %v", fi.Mode().Perm())
	}
	if p, _ := r.store.Pending(); p == nil || p.Revision != 2 {
		t.Fatal("the pending change is not on disk")
	}
	if _, err := r.do(client.ConfigRequest{Verb: "apply", File: cfgA}); err == nil || !strings.Contains(err.Error(), "waits for confirmation") {
		t.Errorf("a second change while one waits: %v", err)
	}
	r.expire() // within the window: nothing
	if read(t, file) != cfgB {
		t.Fatal("rolled back within the window")
	}
	if a, err := r.do(client.ConfigRequest{Verb: "confirm"}); err != nil || a.Revision != 2 {
		t.Fatalf("confirm: %+v %v", a, err)
	}
	if p, _ := r.store.Pending(); p != nil || r.pending != nil {
		t.Fatal("still pending after confirm")
	}
	if _, err := r.do(client.ConfigRequest{Verb: "confirm"}); err == nil {
		t.Error("a second confirm was taken")
	}
	h, err := r.do(client.ConfigRequest{Verb: "history"})
	if err != nil || len(h.History) != 2 || h.History[0].N != 2 || !h.History[0].Running || h.History[0].Who != "alice" || h.History[0].Message != "peer b" {
		t.Fatalf("history %+v %v", h.History, err)
	}
	d, err := r.do(client.ConfigRequest{Verb: "diff"})
	if err != nil || !strings.Contains(d.Text, "-  mac: 02:00:00:00:00:0a\n+  mac: 02:00:00:00:00:0b\n") {
		t.Errorf("diff %q %v", d.Text, err)
	}
	if s, err := r.do(client.ConfigRequest{Verb: "show", N: 1}); err != nil || s.Text != cfgA {
		t.Errorf("show 1: %q %v", s.Text, err)
	}
	// Rolled back to revision 1, unconfirmed: back to 2 after the window.
	if a, err := r.do(client.ConfigRequest{Verb: "rollback", N: 1, Confirm: 60}); err != nil || a.Revision != 3 || a.Pending.Rollback != 2 {
		t.Fatalf("rollback: %+v %v", a, err)
	}
	if read(t, file) != cfgA {
		t.Fatal("rollback did not install revision 1")
	}
	r.pending.Deadline = time.Now().Add(-time.Second)
	r.expire()
	if read(t, file) != cfgB || r.pending != nil || *reloads != 3 {
		t.Fatalf("after the window: file %q, pending %v, %d reloads", read(t, file), r.pending, *reloads)
	}
	if p, _ := r.store.Pending(); p != nil {
		t.Fatal("pending on disk after the rollback")
	}
}

func TestConfigApplyRefused(t *testing.T) {
	r, file, reloads, fail := newConfigRole(t)
	for _, tc := range []struct{ name, file, want string }{
		{"bad key", cfgA + "bogus: 1\n", "the new file:8: bogus: unknown key"},
		{"the same", cfgA, "nothing to apply"},
		{"too large", strings.Repeat("#", client.MaxConfigFile+1), "more than"},
	} {
		if _, err := r.do(client.ConfigRequest{Verb: "apply", File: tc.file}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if read(t, file) != cfgA || *reloads != 0 {
		t.Fatal("a refused file reached the configuration")
	}
	if l, _ := r.store.List(nil); len(l) != 0 {
		t.Errorf("refused files were kept: %+v", l)
	}
	if _, err := os.Stat(file + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Error("the checked copy was left behind")
	}
	*fail = errors.New("injected")
	cfgB := strings.Replace(cfgA, ":0a", ":0b", 1)
	if _, err := r.do(client.ConfigRequest{Verb: "apply", File: cfgB, Confirm: 60}); err == nil || !strings.Contains(err.Error(), "put back") {
		t.Fatalf("a failed reload: %v", err)
	}
	if read(t, file) != cfgA || r.pending != nil {
		t.Fatal("the file is not back after a failed reload")
	}
	if p, _ := r.store.Pending(); p != nil {
		t.Fatal("pending on disk after a failed reload")
	}
	for _, q := range []client.ConfigRequest{{Verb: "rollback", N: 99}, {Verb: "show", N: 99}, {Verb: "frobnicate"}} {
		if _, err := r.do(q); err == nil {
			t.Errorf("%+v was taken", q)
		}
	}
}

// TestRecoverConfig: a change left waiting by a reboot, or past its
// window, is rolled back before pwgated reads the file; one in its window
// in the same boot is not, unless forced.
func TestRecoverConfig(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfgB := strings.Replace(cfgA, ":0a", ":0b", 1)
	fresh := filepath.Join(t.TempDir(), "pwgated.yaml")
	if rolled, err := RecoverConfig(fresh, true, log); rolled || err != nil {
		t.Fatalf("no revisions kept: rolled %v, %v", rolled, err)
	}
	if _, err := os.Stat(revision.DirFor(fresh)); err == nil {
		t.Error("RecoverConfig made the revisions' directory")
	}
	for _, tc := range []struct {
		name     string
		boot     string
		deadline time.Duration
		force    bool
		rolled   bool
	}{
		{"another boot", "0000", time.Hour, false, true},
		{"past its window", revision.BootID(), -time.Second, false, true},
		{"in its window", revision.BootID(), time.Hour, false, false},
		{"forced", revision.BootID(), time.Hour, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, file, _, _ := newConfigRole(t)
			if _, err := r.do(client.ConfigRequest{Verb: "apply", File: cfgB, Confirm: 60}); err != nil {
				t.Fatal(err)
			}
			p, _ := r.store.Pending()
			p.Boot, p.Deadline = tc.boot, time.Now().Add(tc.deadline)
			r.store.SetPending(p)
			rolled, err := RecoverConfig(file, tc.force, log)
			if err != nil || rolled != tc.rolled {
				t.Fatalf("rolled %v, %v; want %v", rolled, err, tc.rolled)
			}
			want := cfgB
			if tc.rolled {
				want = cfgA
			}
			if read(t, file) != want {
				t.Errorf("file %q", read(t, file))
			}
		})
	}
}

// TestConfigCall: a request from another goroutine is served by the main
// goroutine's event, and what Status shows has changed by the time the
// answer arrives.
func TestConfigCall(t *testing.T) {
	r, _, _, _ := newConfigRole(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the main goroutine's part
		ev := r.Events()[0]
		for {
			select {
			case <-ev.C:
				ev.Do()
			case <-stop:
				return
			}
		}
	}()
	a := r.call(client.ConfigRequest{Verb: "apply", File: strings.Replace(cfgA, ":0a", ":0b", 1), Confirm: 60})
	if a.Error != "" || a.Pending == nil {
		t.Fatalf("answer %+v", a)
	}
	var s client.Status
	r.Status(&s)
	if s.ConfigPending == nil || s.ConfigRevision != a.Revision {
		t.Errorf("status right after the answer: revision %d, pending %v", s.ConfigRevision, s.ConfigPending)
	}
	if a := r.call(client.ConfigRequest{Verb: "nonsense"}); !strings.Contains(a.Error, "unknown config request") {
		t.Errorf("answer %+v", a)
	}
}

// TestConfigNotes: who and why, as a client sends them, are kept as one
// bounded line.
func TestConfigNotes(t *testing.T) {
	r, _, _, _ := newConfigRole(t)
	long := strings.Repeat("é", maxNote) // two bytes each
	if _, err := r.do(client.ConfigRequest{Verb: "apply", File: strings.Replace(cfgA, ":0a", ":0b", 1), Who: "eve\nroot", Message: long}); err != nil {
		t.Fatal(err)
	}
	h, _ := r.do(client.ConfigRequest{Verb: "history"})
	if w := h.History[0].Who; w != "eve root" {
		t.Errorf("who %q", w)
	}
	if m := h.History[0].Message; len(m) > maxNote || !strings.HasPrefix(long, m) || m == "" {
		t.Errorf("message of %d bytes: %q", len(m), m)
	}
}
