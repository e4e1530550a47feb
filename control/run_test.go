package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/feature"
)

// fakeFeature counts what the main goroutine asks of it.
type fakeFeature struct {
	kick             chan struct{}
	active           atomic.Bool
	kicked, ticked   atomic.Int32
	gated            atomic.Int32
	reloaded, undone atomic.Int32
	failReload       error
	closed           chan bool // graceful
	mu               sync.Mutex
}

func (f *fakeFeature) Events() []feature.Event {
	return []feature.Event{
		{C: f.kick, Do: func() { f.kicked.Add(1) }},
		{Every: 5 * time.Millisecond, Do: func() { f.ticked.Add(1) }},
		{Every: 5 * time.Millisecond, Active: f.active.Load, Do: func() { f.gated.Add(1) }},
	}
}

func (f *fakeFeature) Reload(_, _ *config.Config) ([]feature.Step, error) {
	return []feature.Step{{Name: "fake", Do: func() error { f.reloaded.Add(1); return f.failReload }, Undo: func() { f.undone.Add(1) }}}, nil
}

func (f *fakeFeature) Status(s *client.Status) { s.Peer = "fake" }
func (f *fakeFeature) Close(graceful bool)     { f.closed <- graceful }

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}

// TestRunDispatchesEvents: Run calls each feature's event functions, stops
// a ticker while it is not active, reloads on hup through the features'
// steps, and on stop closes the features, gracefully.
func TestRunDispatchesEvents(t *testing.T) {
	c, err := config.Parse("a.yaml", []byte(testYAML("announcer.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFeature{kick: make(chan struct{}), closed: make(chan bool, 1)}
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), cfg: c, load: func() (*config.Config, error) { return c, nil },
		extra: []feature.Feature{f}}
	d.publishStatus()
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, hup) }()

	for range 3 {
		f.kick <- struct{}{}
	}
	eventually(t, "three kicks", func() bool { return f.kicked.Load() == 3 })
	eventually(t, "the ticker", func() bool { return f.ticked.Load() >= 3 })
	if f.gated.Load() != 0 {
		t.Errorf("an inactive ticker fired %d times", f.gated.Load())
	}
	f.active.Store(true)
	f.kick <- struct{}{} // the main goroutine looks at Active once per event
	eventually(t, "the ticker once active", func() bool { return f.gated.Load() >= 3 })

	hup <- struct{}{}
	eventually(t, "a reload's step", func() bool { return f.reloaded.Load() == 1 })
	if st := d.Status(); st.Peer != "fake" || st.Mode != "anycast" {
		t.Errorf("status %+v", st)
	}
	f.failReload = errors.New("injected")
	hup <- struct{}{}
	eventually(t, "a failed reload's step", func() bool { return f.reloaded.Load() == 2 })
	if f.undone.Load() != 0 {
		t.Error("the failing step was undone") // only the steps before it are
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case graceful := <-f.closed:
		if !graceful {
			t.Error("a stop by signal closed the features without graceful")
		}
	default:
		t.Fatal("Run returned without closing the features")
	}
}
