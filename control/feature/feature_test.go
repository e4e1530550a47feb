package feature

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestRunUndoesInReverse: a failing step undoes those done before it, in
// reverse, and not itself or those after it.
func TestRunUndoesInReverse(t *testing.T) {
	for failAt := range 4 {
		var log []string
		var steps []Step
		for i, name := range []string{"a", "b", "c", "d"} {
			steps = append(steps, Step{Name: name,
				Do: func() error {
					if i == failAt {
						return errors.New("boom")
					}
					log = append(log, "do "+name)
					return nil
				},
				Undo: func() { log = append(log, "undo "+name) }})
		}
		err := Run(steps)
		if err == nil || !strings.HasPrefix(err.Error(), steps[failAt].Name+": boom") {
			t.Fatalf("fail at %d: error %v", failAt, err)
		}
		var want []string
		for _, s := range steps[:failAt] {
			want = append(want, "do "+s.Name)
		}
		for i := failAt - 1; i >= 0; i-- {
			want = append(want, "undo "+steps[i].Name)
		}
		if !slices.Equal(log, want) {
			t.Errorf("fail at %d: %q, want %q", failAt, log, want)
		}
	}
	if err := Run([]Step{{Name: "ok", Do: func() error { return nil }, Undo: func() { t.Error("undone") }}}); err != nil {
		t.Error(err)
	}
}

// TestRunFinalStepsLast: a step that cannot be undone runs after every
// step that can, wherever it is listed; when it fails, those are undone.
func TestRunFinalStepsLast(t *testing.T) {
	var log []string
	do := func(name string, err error) func() error {
		return func() error { log = append(log, "do "+name); return err }
	}
	undo := func(name string) func() { return func() { log = append(log, "undo "+name) } }
	err := Run([]Step{{Name: "token", Do: do("token", errors.New("boom"))}, {Name: "a", Do: do("a", nil), Undo: undo("a")}, {Name: "b", Do: do("b", nil), Undo: undo("b")}})
	if err == nil || err.Error() != "token: boom" {
		t.Fatalf("error %v", err)
	}
	if want := []string{"do a", "do b", "do token", "undo b", "undo a"}; !slices.Equal(log, want) {
		t.Errorf("%q, want %q", log, want)
	}
}
