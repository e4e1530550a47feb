package control

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/feature"
	"github.com/pwgate/pwgate/control/revision"
	"github.com/pwgate/pwgate/hw"
)

// Source is where pwgated's configuration comes from.
type Source struct {
	// Load reads the configuration again, for a reload.
	Load func() (*config.Config, error)
	// File is the YAML file Load reads; "" when pwgated runs the
	// reference's file (pwctl config then changes nothing).
	File string
	// Check reads another file as Load reads File (hardware profile
	// applied) and checks it as pwgated --check does.
	Check func(path string) error
	// Profile is the hardware profile in force, nil for none: pwctl
	// status shows it, and the ports' interrupts go on its core.
	Profile *hw.Profile
}

// configRole is pwctl config: the file's revisions, a new file checked,
// kept and reloaded on request, and put back when a change that asked for
// confirmation is not confirmed in time. Requests come from the
// statistics socket's goroutines and are served by the main goroutine.
type configRole struct {
	log    *slog.Logger
	src    Source
	store  *revision.Store
	reload func() error // the daemon's Reload

	pending *client.ConfigPending // main goroutine
	state   atomic.Pointer[configState]

	mu    sync.Mutex
	queue []configCall
	wake  chan struct{}
}

// configState is what Status shows.
type configState struct {
	running int
	pending *client.ConfigPending
}

type configCall struct {
	req   client.ConfigRequest
	reply chan client.ConfigAnswer
}

// configAnswerWithin bounds how long a request waits for the main
// goroutine (a reload resolves WireGuard endpoint names, up to 5 s each).
const configAnswerWithin = 50 * time.Second

func startConfig(src Source, reload func() error, log *slog.Logger) (*configRole, error) {
	store, err := revision.Open(revision.DirFor(src.File))
	if err != nil {
		return nil, err
	}
	r := &configRole{log: log, src: src, store: store, reload: reload, wake: make(chan struct{}, 1)}
	if r.pending, err = store.Pending(); err != nil {
		log.Warn("pwctl config: " + err.Error())
	}
	if r.pending != nil {
		log.Warn("pwctl config: a change waits for confirmation", "revision", r.pending.Revision, "rolls_back_to", r.pending.Rollback, "at", r.pending.Deadline.Format(time.RFC3339))
	}
	r.publish()
	return r, nil
}

func (r *configRole) running() []byte {
	b, _ := os.ReadFile(r.src.File)
	return b
}

func (r *configRole) publish() {
	r.state.Store(&configState{running: r.store.Find(r.running()), pending: r.pending})
}

// call hands req to the main goroutine and waits for its answer (any
// goroutine).
func (r *configRole) call(req client.ConfigRequest) client.ConfigAnswer {
	c := configCall{req: req, reply: make(chan client.ConfigAnswer, 1)}
	r.mu.Lock()
	r.queue = append(r.queue, c)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	select {
	case a := <-c.reply:
		return a
	case <-time.After(configAnswerWithin):
		return client.ConfigAnswer{Error: "pwgated's main goroutine did not answer in time"}
	}
}

func (r *configRole) Events() []feature.Event {
	return []feature.Event{
		{C: r.wake, Do: r.serve},
		{Every: time.Second, Active: func() bool { return r.pending != nil }, Do: r.expire},
	}
}

// serve answers the queued requests (main goroutine).
func (r *configRole) serve() {
	r.mu.Lock()
	q := r.queue
	r.queue = nil
	r.mu.Unlock()
	for _, c := range q {
		a, err := r.do(c.req)
		if err != nil {
			a = client.ConfigAnswer{Error: err.Error()}
		}
		r.publish() // before the answer: a status read after it shows the change
		c.reply <- a
	}
}

func (r *configRole) do(q client.ConfigRequest) (client.ConfigAnswer, error) {
	q.Who, q.Message = oneLine(q.Who), oneLine(q.Message)
	switch q.Verb {
	case "apply":
		return r.apply([]byte(q.File), q.Confirm, q.Who, q.Message)
	case "rollback":
		b, err := r.store.Get(q.N)
		if err != nil {
			return client.ConfigAnswer{}, err
		}
		if q.Message == "" {
			q.Message = fmt.Sprintf("rollback to revision %d", q.N)
		}
		return r.apply(b, q.Confirm, q.Who, q.Message)
	case "confirm":
		if r.pending == nil {
			return client.ConfigAnswer{}, errors.New("no change waits for confirmation")
		}
		if err := r.store.SetPending(nil); err != nil {
			return client.ConfigAnswer{}, err
		}
		r.log.Info("pwctl config: change confirmed", "revision", r.pending.Revision, "who", q.Who)
		n := r.pending.Revision
		r.pending = nil
		return client.ConfigAnswer{Revision: n}, nil
	case "history":
		h, err := r.store.List(r.running())
		return client.ConfigAnswer{History: h, Pending: r.pending}, err
	case "show":
		b, _, err := r.file(q.N)
		return client.ConfigAnswer{Text: string(b)}, err
	case "diff":
		n := q.N
		if n == 0 { // the revision before the running file's
			cur := r.store.Find(r.running())
			h, _ := r.store.List(nil)
			for _, rev := range h {
				if cur == 0 || rev.N < cur {
					n = rev.N
					break
				}
			}
			if n == 0 {
				return client.ConfigAnswer{}, errors.New("no revision before the running file: pwctl config history")
			}
		}
		a, an, err := r.file(n)
		if err != nil {
			return client.ConfigAnswer{}, err
		}
		b, bn, err := r.file(q.M)
		if err != nil {
			return client.ConfigAnswer{}, err
		}
		return client.ConfigAnswer{Text: revision.Diff(a, b, an, bn)}, nil
	}
	return client.ConfigAnswer{}, fmt.Errorf("unknown config request %q (want apply, confirm, rollback, history, diff or show)", q.Verb)
}

// file returns revision n, or the running file for 0, and its name.
func (r *configRole) file(n int) ([]byte, string, error) {
	if n == 0 {
		b, err := os.ReadFile(r.src.File)
		return b, r.src.File + " (running)", err
	}
	b, err := r.store.Get(n)
	return b, fmt.Sprintf("revision %d", n), err
}

// apply checks b, keeps the running file and b as revisions, installs b
// and reloads; with confirm, b is put back unless confirmed in time. A
// file that fails the check never reaches the configuration; one whose
// reload fails is put back at once.
func (r *configRole) apply(b []byte, confirm float64, who, message string) (client.ConfigAnswer, error) {
	if r.pending != nil {
		return client.ConfigAnswer{}, fmt.Errorf("revision %d waits for confirmation until %s: pwctl config confirm, or let it roll back, first",
			r.pending.Revision, r.pending.Deadline.Local().Format(time.TimeOnly))
	}
	if len(b) > client.MaxConfigFile {
		return client.ConfigAnswer{}, fmt.Errorf("the file is %d bytes, more than %d", len(b), client.MaxConfigFile)
	}
	if confirm < 0 || confirm > (24*time.Hour).Seconds() {
		return client.ConfigAnswer{}, fmt.Errorf("--confirm %gs: want a window of up to 24 h", confirm)
	}
	old, err := os.ReadFile(r.src.File)
	if err != nil {
		return client.ConfigAnswer{}, err
	}
	if bytes.Equal(old, b) {
		return client.ConfigAnswer{}, errors.New("the file is the running one: nothing to apply")
	}
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(r.src.File); err == nil {
		mode = fi.Mode().Perm()
	}
	// Checked where it will live (a relative key path means the same),
	// under another name, as pwgated --check would.
	tmp := r.src.File + ".new"
	if err := revision.WriteFile(tmp, b, mode); err != nil {
		return client.ConfigAnswer{}, err
	}
	err = r.src.Check(tmp)
	os.Remove(tmp)
	if err != nil {
		return client.ConfigAnswer{}, fmt.Errorf("not applied: %s", strings.ReplaceAll(err.Error(), tmp, "the new file"))
	}
	oldRev := r.store.Find(old)
	if oldRev == 0 {
		if oldRev, err = r.store.Add(old, "", "the file running before pwctl config apply", time.Now()); err != nil {
			return client.ConfigAnswer{}, err
		}
	}
	newRev, err := r.store.Add(b, who, message, time.Now())
	if err != nil {
		return client.ConfigAnswer{}, err
	}
	var p *client.ConfigPending
	if confirm > 0 {
		// On disk before the file changes: a reboot from here on comes
		// back with the old file.
		p = &client.ConfigPending{Revision: newRev, Rollback: oldRev, Deadline: time.Now().Add(time.Duration(confirm * float64(time.Second))).Round(time.Millisecond), Boot: revision.BootID()}
		if err := r.store.SetPending(p); err != nil {
			return client.ConfigAnswer{}, err
		}
	}
	if err := revision.WriteFile(r.src.File, b, mode); err != nil {
		r.store.SetPending(nil)
		return client.ConfigAnswer{}, err
	}
	if err := r.reload(); err != nil {
		werr := revision.WriteFile(r.src.File, old, mode)
		r.store.SetPending(nil)
		r.log.Error("pwctl config: the new file's reload failed; the old file is back", "revision", newRev, "err", err, "put_back", werr)
		return client.ConfigAnswer{}, fmt.Errorf("reload failed, so the running configuration stays and the file is put back: %w", errors.Join(err, werr))
	}
	r.pending = p
	args := []any{"revision", newRev, "who", who, "message", message}
	if p != nil {
		args = append(args, "rolls_back_to", oldRev, "unless_confirmed_by", p.Deadline.Format(time.RFC3339))
	}
	r.log.Info("pwctl config: applied", args...)
	return client.ConfigAnswer{Revision: newRev, Pending: p}, nil
}

// expire puts the previous revision back when a change was not confirmed
// in time (main goroutine, every second while one waits).
func (r *configRole) expire() {
	if r.pending == nil || time.Now().Before(r.pending.Deadline) {
		return
	}
	p := r.pending
	r.pending = nil
	if err := rollBack(r.src.File, r.store, p, "not confirmed by "+p.Deadline.Format(time.RFC3339), r.log); err != nil {
		r.log.Error("pwctl config: rollback", "err", err)
	} else if err := r.reload(); err != nil {
		r.log.Error("pwctl config: the rolled back file's reload failed (a restart runs it)", "err", err)
	}
	r.publish()
}

// rollBack writes p's previous revision over the file at path and forgets
// p.
func rollBack(path string, store *revision.Store, p *client.ConfigPending, why string, log *slog.Logger) error {
	b, err := store.Get(p.Rollback)
	if err != nil {
		return err
	}
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := revision.WriteFile(path, b, mode); err != nil {
		return err
	}
	log.Warn("pwctl config: change rolled back", "revision", p.Revision, "back_to", p.Rollback, "why", why)
	return store.SetPending(nil)
}

// RecoverConfig runs before pwgated reads the file at path: a change that
// waits for confirmation since before a reboot, or past its window, is
// rolled back; so is any pending one when force is set (pwgated could not
// start with it). It reports whether it rolled back.
func RecoverConfig(path string, force bool, log *slog.Logger) (bool, error) {
	dir := revision.DirFor(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return false, nil // nothing kept yet, so nothing waits
	}
	store, err := revision.Open(dir)
	if err != nil {
		return false, err
	}
	p, err := store.Pending()
	if err != nil || p == nil {
		return false, err
	}
	var why string
	switch {
	case force:
		why = "pwgated could not start with it"
	case p.Boot != revision.BootID():
		why = "the box restarted before it was confirmed"
	case !time.Now().Before(p.Deadline):
		why = "not confirmed by " + p.Deadline.Format(time.RFC3339)
	default:
		return false, nil // still in its window: the daemon waits for it
	}
	return true, rollBack(path, store, p, why, log)
}

func (r *configRole) Reload(_, _ *config.Config) ([]feature.Step, error) { return nil, nil }

func (r *configRole) Status(s *client.Status) {
	if st := r.state.Load(); st != nil {
		s.ConfigRevision, s.ConfigPending = st.running, st.pending
	}
}

// Close leaves a pending change on disk: the next start rolls it back if
// its window has passed or the box rebooted.
func (r *configRole) Close(bool) {}

// maxNote bounds who and why kept with a revision: fifty revisions of
// them must not fill the data partition, and each is one line of pwctl
// config history.
const maxNote = 200

// oneLine is s with control characters as spaces, cut to maxNote bytes
// (on a character boundary).
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxNote {
		s = strings.ToValidUTF8(s[:maxNote], "")
	}
	return s
}
