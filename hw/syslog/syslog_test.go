package syslog

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	c, err := Parse([]byte("servers:\n  - address: 2001:db8::514\n  - address: logs.example.net\n    port: 6514\n    protocol: tcp\nhostname: site-a\nseverity: notice\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{{"2001:db8::514", 514, "udp"}, {"logs.example.net", 6514, "tcp"}}
	if len(c.Servers) != 2 || c.Servers[0] != want[0] || c.Servers[1] != want[1] || c.Hostname != "site-a" || c.Severity != "notice" {
		t.Fatalf("%+v", c)
	}
	if c, err := Parse([]byte("servers: [{address: 192.0.2.1}]\n")); err != nil || c.Severity != "info" || c.Hostname != "" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
}

// TestParseErrors: every refusal names what is wrong, and nothing that
// could break out of rsyslogd's quoted strings gets through.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"servers: []\n", "none given"},
		{"server: [{address: 192.0.2.1}]\n", "field server not found"},
		{"servers: [{address: 192.0.2.1, proto: udp}]\n", "field proto not found"},
		{"servers: [{port: 514}]\n", "servers[0].address: missing"},
		{"servers: [{address: \"192.0.2.1:514\"}]\n", "the port is port:"},
		{"servers: [{address: \"[2001:db8::1]\"}]\n", "not an IP address"},
		{"servers: [{address: \"fe80::1%eth0\"}]\n", "zone"},
		{"servers: [{address: 'a\" target=\"x'}]\n", "not an IP address or a host name"},
		{"servers: [{address: -bad.example}]\n", "not an IP address"},
		{"servers: [{address: a..b}]\n", "not an IP address"},
		{"servers: [{address: " + strings.Repeat("a.", 130) + "b}]\n", "at most 253"},
		{"servers: [{address: 192.0.2.1, port: 70000}]\n", "servers[0].port: 70000"},
		{"servers: [{address: 192.0.2.1, port: -1}]\n", "servers[0].port: -1"},
		{"servers: [{address: 192.0.2.1, protocol: tls}]\n", `"tls", want udp or tcp`},
		{"servers: [{address: 192.0.2.1}, {address: 192.0.2.1, port: 514, protocol: udp}]\n", "named twice"},
		{"servers: [{address: 192.0.2.1}]\nseverity: loud\n", `severity: "loud"`},
		{"servers: [{address: 192.0.2.1}]\nhostname: \"a b\"\n", "hostname"},
		{"servers: [{address: 192.0.2.1}]\nhostname: 'a\"b'\n", "hostname"},
		{"servers: [{address: 192.0.2.1}]\n---\nservers: []\n", "more than one"},
		{"servers: " + strings.Repeat("[{address: 192.0.2.1}]", 1) + "\n" + "x: [", "did not find"},
		{"servers:\n" + strings.Repeat("  - address: 192.0.2.1\n", 9), "9, at most 8"},
		{strings.Repeat("#", MaxFileSize+1), "more than"},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%.60q) = %v, want an error with %q", c.in, err, c.want)
		}
	}
}

func TestRsyslog(t *testing.T) {
	c, err := Parse([]byte("servers:\n  - address: 2001:db8::514\n  - address: logs.example.net\n    port: 6514\n    protocol: tcp\nhostname: site-a\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Rsyslog("/config/syslog.yaml")
	for _, want := range []string{
		`global(workDirectory="/var/lib/pwgate-syslog" maxMessageSize="8k" localHostname="site-a")`,
		`module(load="imjournal" StateFile="imjournal.state")`,
		`*.info action(type="omfwd" name="server1" target="2001:db8::514" port="514" protocol="udp" template="RSYSLOG_SyslogProtocol23Format"`,
		`*.info action(type="omfwd" name="server2" target="logs.example.net" port="6514" protocol="tcp" TCP_Framing="octet-counted" template=`,
		`queue.timeoutEnqueue="0" action.resumeRetryCount="-1"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %s:\n%s", want, got)
		}
	}
	// rsyslogd itself, where installed, finds nothing wrong with it
	// (-N1: check the configuration only).
	rsyslogd, err := exec.LookPath("rsyslogd")
	if err != nil {
		t.Log("rsyslogd not installed: the configuration is checked on the image (make image-test)")
		return
	}
	f := filepath.Join(t.TempDir(), "rsyslog.conf")
	os.WriteFile(f, []byte(got), 0o644)
	if out, err := exec.Command(rsyslogd, "-N1", "-f", f).CombinedOutput(); err != nil {
		t.Errorf("rsyslogd -N1: %v\n%s", err, out)
	}
}

// FuzzParse: no input crashes Parse, and what it accepts renders without
// a quote or a line break out of place.
func FuzzParse(f *testing.F) {
	f.Add([]byte("servers:\n  - address: 2001:db8::514\n    protocol: tcp\nhostname: a\n"))
	f.Add([]byte("servers: [{address: x.example, port: 1}]\nseverity: debug\n"))
	f.Add([]byte("servers: [{address: \"a\\nb\"}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		out := c.Rsyslog("f")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			if strings.Count(line, `"`)%2 != 0 || strings.Contains(line, `\`) {
				t.Fatalf("line with an odd quote or a backslash: %q", line)
			}
		}
		if n := strings.Count(out, "action("); n != len(c.Servers) {
			t.Fatalf("%d actions for %d servers", n, len(c.Servers))
		}
	})
}
