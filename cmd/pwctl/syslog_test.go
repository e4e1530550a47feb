package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSyslog(t *testing.T) {
	dir := t.TempDir()
	good, bad, out := filepath.Join(dir, "syslog.yaml"), filepath.Join(dir, "bad.yaml"), filepath.Join(dir, "run", "rsyslog.conf")
	os.WriteFile(good, []byte("servers:\n  - address: 2001:db8::514\n    protocol: tcp\n"), 0o600)
	os.WriteFile(bad, []byte("servers:\n  - address: 2001:db8::514\n    protocol: tls\n"), 0o600)
	if stdout, errs, code := pwctl("syslog", "check", good); code != 0 || stdout != "2001:db8::514 port 514 over tcp, severity info and above\n" {
		t.Errorf("check: exit %d %q %s", code, stdout, errs)
	}
	if stdout, _, code := pwctl("syslog", "rsyslog", good); code != 0 || !strings.Contains(stdout, `target="2001:db8::514" port="514" protocol="tcp" TCP_Framing="octet-counted"`) {
		t.Errorf("rsyslog to stdout: exit %d\n%s", code, stdout)
	}
	os.MkdirAll(filepath.Dir(out), 0o755)
	if _, errs, code := pwctl("syslog", "rsyslog", good, out); code != 0 {
		t.Fatalf("rsyslog to a file: exit %d %s", code, errs)
	}
	before, _ := os.ReadFile(out)
	if !strings.Contains(string(before), "imjournal") {
		t.Errorf("written: %s", before)
	}
	// A bad file: a clear error, exit 2, and the file written before
	// stays as it was.
	if _, errs, code := pwctl("syslog", "rsyslog", bad, out); code != 2 || !strings.Contains(errs, `bad.yaml: servers[0].protocol: "tls", want udp or tcp`) {
		t.Errorf("bad file: exit %d %q", code, errs)
	}
	if after, _ := os.ReadFile(out); string(after) != string(before) {
		t.Error("a bad file changed what was written before")
	}
	if _, errs, code := pwctl("syslog", "check", filepath.Join(dir, "none.yaml")); code != 2 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: exit %d %q", code, errs)
	}
	if _, errs, code := pwctl("syslog", "rsyslog", good, filepath.Join(dir, "nodir", "x")); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("unwritable output: exit %d %q", code, errs)
	}
	for _, args := range [][]string{{"syslog"}, {"syslog", "check"}, {"syslog", "check", good, out}, {"syslog", "show", good}} {
		if _, errs, code := pwctl(args...); code != 2 || !strings.Contains(errs, "usage: pwctl syslog") {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
}
