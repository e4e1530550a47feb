package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/controltest"
)

func TestConfig(t *testing.T) {
	d := controltest.Start(t)
	var got []client.ConfigRequest
	deadline := time.Now().Add(10 * time.Minute)
	d.OnConfig = func(q client.ConfigRequest) client.ConfigAnswer {
		got = append(got, q)
		switch q.Verb {
		case "apply":
			return client.ConfigAnswer{Revision: 7, Pending: &client.ConfigPending{Revision: 7, Rollback: 6, Deadline: deadline}}
		case "confirm":
			return client.ConfigAnswer{Revision: 7}
		case "history":
			return client.ConfigAnswer{History: []client.ConfigRevision{{N: 7, Who: "alice", Message: "peer b", Time: time.Now()}, {N: 6, Running: false, Time: time.Now()}},
				Pending: &client.ConfigPending{Revision: 7, Rollback: 6, Deadline: deadline}}
		case "diff":
			return client.ConfigAnswer{Text: "--- revision 6\n+++ revision 7\n"}
		}
		return client.ConfigAnswer{Error: "no revision 99 (pwctl config history lists them)"}
	}
	file := filepath.Join(t.TempDir(), "new.yaml")
	os.WriteFile(file, []byte("mode: eth\n"), 0o600)
	out, errs, code := pwctl("--socket", d.Socket, "config", "apply", file, "--confirm", "10m", "-m", "peer b")
	if code != 0 || !strings.Contains(out, "revision 7 runs") || !strings.Contains(out, "revision 6 comes back") {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errs)
	}
	if q := got[0]; q.File != "mode: eth\n" || q.Confirm != 600 || q.Message != "peer b" || q.Who == "" {
		t.Errorf("request %+v", q)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--socket", d.Socket, "config", "apply", "-"}, strings.NewReader("mode: ip6\n"), &stdout, &stderr); code != 0 || got[1].File != "mode: ip6\n" {
		t.Fatalf("apply from stdin: exit %d, %+v\n%s", code, got[1], stderr.String())
	}
	if out, _, code := pwctl("--socket", d.Socket, "config", "confirm"); code != 0 || !strings.Contains(out, "revision 7 stays") {
		t.Errorf("confirm: %d %s", code, out)
	}
	out, _, code = pwctl("--socket", d.Socket, "config", "history")
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "unconfirmed: revision 6 comes back") {
		t.Errorf("history: %d\n%s", code, out)
	}
	if out, _, code := pwctl("--socket", d.Socket, "config", "diff", "6", "7"); code != 0 || !strings.HasPrefix(out, "--- revision 6") || got[len(got)-1].N != 6 || got[len(got)-1].M != 7 {
		t.Errorf("diff: %d %s %+v", code, out, got[len(got)-1])
	}
	if _, errs, code := pwctl("--socket", d.Socket, "config", "show", "99"); code != 1 || !strings.Contains(errs, "no revision 99") {
		t.Errorf("show 99: %d %s", code, errs)
	}
	for _, bad := range [][]string{{"config"}, {"config", "frob"}, {"config", "apply"}, {"config", "rollback", "x"}, {"config", "diff", "1", "2", "3"}, {"config", "apply", "/nonexistent"}} {
		if _, _, code := pwctl(append([]string{"--socket", d.Socket}, bad...)...); code == 0 {
			t.Errorf("%q succeeded", bad)
		}
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	os.WriteFile(big, bytes.Repeat([]byte("#"), client.MaxConfigFile+1), 0o600)
	if _, errs, code := pwctl("--socket", d.Socket, "config", "apply", big); code == 0 || !strings.Contains(errs, "larger than") {
		t.Errorf("a file too large: %d %s", code, errs)
	}
	// The socket bounds what it reads, whoever sends it: an oversized
	// request is refused (or cut off while still being written), and the
	// socket still answers.
	if _, err := client.Query(d.Socket, client.ReqConfig+"\n{\"verb\":\"apply\",\"file\":\""+strings.Repeat("x", 7*client.MaxConfigFile)+"\"}", 5*time.Second); err == nil {
		t.Error("an oversized request was taken")
	}
	if _, err := client.Query(d.Socket, client.ReqConfig+"\n{\"verb\":\"history\"}", 5*time.Second); err != nil {
		t.Errorf("after an oversized request: %v", err)
	}
	if _, err := client.Query(d.Socket, client.ReqConfig+"\n{bad", 5*time.Second); err == nil || !strings.Contains(err.Error(), "bad config request") {
		t.Errorf("a bad request: %v", err)
	}
}

func TestSSHKeyComment(t *testing.T) {
	dir := t.TempDir()
	auth := filepath.Join(dir, "auth")
	keys := filepath.Join(dir, "authorized_keys")
	os.WriteFile(auth, []byte("publickey ssh-ed25519 AAAAC3Nza2\n"), 0o600)
	os.WriteFile(keys, []byte("ssh-ed25519 AAAAC3Nza1 bob@old\nno-pty ssh-ed25519 AAAAC3Nza2 alice@laptop\n"), 0o600)
	if c := sshKeyComment(auth, filepath.Join(dir, "missing"), keys); c != "alice@laptop" {
		t.Errorf("comment %q", c)
	}
	if c := sshKeyComment("", keys); c != "" {
		t.Errorf("without SSH_USER_AUTH: %q", c)
	}
}
