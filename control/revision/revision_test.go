package revision

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
)

func TestStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "revs"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= Keep+3; i++ {
		n, err := s.Add([]byte("mode: eth # "+strings.Repeat("x", i)+"\n"), "alice", "change", now.Add(time.Duration(i)*time.Minute))
		if err != nil || n != i {
			t.Fatalf("Add %d: %d, %v", i, n, err)
		}
	}
	running := []byte("mode: eth # " + strings.Repeat("x", Keep) + "\n")
	l, err := s.List(running)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != Keep || l[0].N != Keep+3 || l[Keep-1].N != 4 {
		t.Fatalf("kept %d revisions, %d..%d; want %d, %d..4", len(l), l[0].N, l[len(l)-1].N, Keep, Keep+3)
	}
	if l[0].Who != "alice" || l[0].Message != "change" || !l[0].Time.Equal(now.Add((Keep+3)*time.Minute)) || l[3].N != Keep || !l[3].Running || l[0].Running {
		t.Errorf("revisions %+v", l[:4])
	}
	if _, err := s.Get(1); err == nil || !strings.Contains(err.Error(), "no revision 1") {
		t.Errorf("a removed revision: %v", err)
	}
	if s.Find(running) != Keep || s.Find([]byte("other")) != 0 {
		t.Error("Find")
	}
	if p, err := s.Pending(); p != nil || err != nil {
		t.Fatalf("pending at first: %v %v", p, err)
	}
	want := &client.ConfigPending{Revision: 9, Rollback: 8, Deadline: now, Boot: BootID()}
	if err := s.SetPending(want); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Pending(); err != nil || *p != *want {
		t.Fatalf("pending %+v %v", p, err)
	}
	if err := s.SetPending(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPending(nil); err != nil {
		t.Fatal("forgetting twice:", err)
	}
	if p, _ := s.Pending(); p != nil {
		t.Fatal("pending after forgetting")
	}
	os.WriteFile(filepath.Join(s.Dir(), pendingFile), []byte("{bad"), 0o600)
	if _, err := s.Pending(); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("a broken pending file: %v", err)
	}
}

func TestDiff(t *testing.T) {
	a := "mode: ip6\ndownlink:\n  interface: dl0\nuplink:\n  interface: ul0\npeer:\n  address: 2001:db8::b\nlocal:\n  token: ::a\nstats:\n  socket: /run/s\n"
	b := strings.Replace(a, "2001:db8::b", "2001:db8::c", 1) + "poll: busy\n"
	if d := Diff([]byte(a), []byte(a), "a", "b"); d != "" {
		t.Errorf("equal files: %q", d)
	}
	d := Diff([]byte(a), []byte(b), "revision 1", "revision 2")
	want := "--- revision 1\n+++ revision 2\n@@ -4,8 +4,9 @@\n   interface: ul0\n peer:\n-  address: 2001:db8::b\n+  address: 2001:db8::c\n local:\n   token: ::a\n stats:\n   socket: /run/s\n+poll: busy\n"
	if !strings.HasPrefix(d, "--- revision 1\n+++ revision 2\n@@ ") || !strings.Contains(d, "-  address: 2001:db8::b\n+  address: 2001:db8::c\n") || !strings.HasSuffix(d, "+poll: busy\n") {
		t.Errorf("diff:\n%s\nwant:\n%s", d, want)
	}
	checkPatch(t, a, b, d)
	for _, tc := range [][2]string{{"", "x\n"}, {"x\n", ""}, {"a\nb\nc\n", "c\nb\na\n"}, {strings.Repeat("l\n", 30) + "x\n" + strings.Repeat("l\n", 30) + "y\n", strings.Repeat("l\n", 30) + strings.Repeat("l\n", 30) + "z\n"}} {
		checkPatch(t, tc[0], tc[1], Diff([]byte(tc[0]), []byte(tc[1]), "a", "b"))
	}
}

// checkPatch applies d to a with patch(1), when installed: it must give b.
func checkPatch(t *testing.T, a, b, d string) {
	t.Helper()
	patch, err := exec.LookPath("patch")
	if err != nil || d == "" {
		return
	}
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte(a), 0o600)
	cmd := exec.Command(patch, "-s", f)
	cmd.Stdin = strings.NewReader(d)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch: %v\n%s\ndiff:\n%s", err, out, d)
	}
	if got, _ := os.ReadFile(f); string(got) != b {
		t.Errorf("patched %q, want %q; diff:\n%s", got, b, d)
	}
}

func FuzzDiff(f *testing.F) {
	f.Add([]byte("a\nb\nc\n"), []byte("a\nc\nd\n"))
	f.Add([]byte(""), []byte("x"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if len(a) > 4096 || len(b) > 4096 {
			return
		}
		d := Diff(a, b, "a", "b")
		x, y := lines(a), lines(b)
		if (d == "") != (strings.Join(x, "\n") == strings.Join(y, "\n")) {
			t.Fatalf("diff %q of %q and %q", d, a, b)
		}
		// Replaying the script's lines gives both sides.
		var ga, gb []string
		for _, o := range myers(x, y) {
			if o.kind != '+' {
				ga = append(ga, o.text)
			}
			if o.kind != '-' {
				gb = append(gb, o.text)
			}
		}
		if d != "" && (strings.Join(ga, "\n") != strings.Join(x, "\n") || strings.Join(gb, "\n") != strings.Join(y, "\n")) {
			t.Fatalf("script of %q -> %q gives %q -> %q", a, b, ga, gb)
		}
	})
}
