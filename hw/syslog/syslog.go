// Package syslog is the appliance's remote syslog: /config/syslog.yaml,
// checked, made into the configuration of rsyslogd, which reads the
// journal and sends it to the servers named there in RFC 5424's format,
// over UDP (RFC 5426) or TCP (RFC 6587, octet-counted framing).
// pwctl syslog check|rsyslog runs it; pwgate-syslog.service (hw/image)
// runs rsyslogd with what it writes.
package syslog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is syslog.yaml.
type Config struct {
	// Servers receive every message at Severity or more severe.
	Servers []Server `yaml:"servers"`
	// Severity is the least severe sent (a name, as in syslog.conf);
	// default info.
	Severity string `yaml:"severity"`
	// Hostname is the HOSTNAME field of the messages; default the box's
	// host name (every appliance is "pwgate": name your sites here).
	Hostname string `yaml:"hostname"`
}

// Server is one syslog server.
type Server struct {
	Address  string `yaml:"address"`  // an IP address or a DNS name
	Port     int    `yaml:"port"`     // default 514
	Protocol string `yaml:"protocol"` // udp (default) or tcp
}

// Limits on what the file may hold.
const (
	MaxFileSize = 64 << 10
	MaxServers  = 8
)

// severities are syslog's severity names and their numbers (RFC 5424).
var severities = map[string]int{
	"emerg": 0, "alert": 1, "crit": 2, "err": 3, "error": 3,
	"warning": 4, "warn": 4, "notice": 5, "info": 6, "debug": 7,
}

// Parse reads and checks syslog.yaml; unknown keys, bad values and
// duplicate servers are errors, and defaults are filled in.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%d bytes: more than %d", len(data), MaxFileSize)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty: no servers")
		}
		return nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if len(c.Servers) == 0 {
		return nil, errors.New("servers: none given (to send nothing, remove the file)")
	}
	if len(c.Servers) > MaxServers {
		return nil, fmt.Errorf("servers: %d, at most %d", len(c.Servers), MaxServers)
	}
	seen := map[Server]bool{}
	for i := range c.Servers {
		s := &c.Servers[i]
		where := fmt.Sprintf("servers[%d]", i)
		if err := checkAddress(s.Address); err != nil {
			return nil, fmt.Errorf("%s.address: %w", where, err)
		}
		if s.Port == 0 {
			s.Port = 514
		}
		if s.Port < 1 || s.Port > 65535 {
			return nil, fmt.Errorf("%s.port: %d, want 1 to 65535", where, s.Port)
		}
		switch s.Protocol {
		case "":
			s.Protocol = "udp"
		case "udp", "tcp":
		default:
			return nil, fmt.Errorf("%s.protocol: %q, want udp or tcp", where, s.Protocol)
		}
		if seen[*s] {
			return nil, fmt.Errorf("%s: %s port %d over %s is named twice", where, s.Address, s.Port, s.Protocol)
		}
		seen[*s] = true
	}
	if c.Severity == "" {
		c.Severity = "info"
	}
	if _, ok := severities[c.Severity]; !ok {
		return nil, fmt.Errorf("severity: %q, want emerg, alert, crit, err, warning, notice, info or debug", c.Severity)
	}
	if c.Hostname != "" {
		if err := checkHostname(c.Hostname); err != nil {
			return nil, fmt.Errorf("hostname: %w", err)
		}
	}
	return &c, nil
}

// checkAddress accepts an IP address or a DNS name, nothing else: the
// value goes into rsyslogd's configuration.
func checkAddress(a string) error {
	if a == "" {
		return errors.New("missing")
	}
	if ip, err := netip.ParseAddr(a); err == nil {
		if ip.Zone() != "" {
			return fmt.Errorf("%q: an address with a zone cannot be sent to by name; give a global address", a)
		}
		return nil
	}
	if strings.ContainsAny(a, ":[]") {
		return fmt.Errorf("%q: not an IP address or a host name (the port is port:, apart)", a)
	}
	if len(a) > 253 {
		return fmt.Errorf("a name of %d characters: at most 253", len(a))
	}
	for _, label := range strings.Split(strings.TrimSuffix(a, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q: not an IP address or a host name", a)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("%q: not an IP address or a host name", a)
			}
		}
	}
	return nil
}

// checkHostname accepts what RFC 5424 allows in HOSTNAME (printable
// US-ASCII, at most 255) less quotes and backslashes.
func checkHostname(h string) error {
	if len(h) > 255 {
		return fmt.Errorf("%d characters: at most 255", len(h))
	}
	for _, r := range h {
		if r < 33 || r > 126 || r == '"' || r == '\\' {
			return fmt.Errorf("%q: printable ASCII without spaces, quotes or backslashes", h)
		}
	}
	return nil
}

// StateDir is where rsyslogd keeps its place in the journal (so that
// what was logged while it was stopped, or before a reboot, is sent
// after): pwgate-syslog.service's StateDirectory.
const StateDir = "/var/lib/pwgate-syslog"

// Rsyslog is rsyslogd's configuration for c: the journal in, each server
// an omfwd action in RFC 5424's format with its own queue in memory that
// keeps trying while the server or the route to it is away (a full
// queue drops the newest messages, never blocks the box). source names
// the file c came from, for the header.
func (c *Config) Rsyslog(source string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# pwgate: rsyslogd's configuration, made by pwctl syslog rsyslog from %s.\n", strconv.Quote(source))
	fmt.Fprintf(&b, "# Edit that file, not this one; systemctl restart pwgate-syslog applies it.\n")
	fmt.Fprintf(&b, "global(workDirectory=%q maxMessageSize=\"8k\"", StateDir)
	if c.Hostname != "" {
		fmt.Fprintf(&b, " localHostname=%q", c.Hostname)
	}
	b.WriteString(")\n")
	b.WriteString("module(load=\"imjournal\" StateFile=\"imjournal.state\")\n")
	for i, s := range c.Servers {
		fmt.Fprintf(&b, "*.%s action(type=\"omfwd\" name=\"server%d\" target=%q port=\"%d\" protocol=%q", c.Severity, i+1, s.Address, s.Port, s.Protocol)
		if s.Protocol == "tcp" {
			b.WriteString(" TCP_Framing=\"octet-counted\"")
		}
		b.WriteString(" template=\"RSYSLOG_SyslogProtocol23Format\"" +
			" queue.type=\"LinkedList\" queue.size=\"10000\" queue.timeoutEnqueue=\"0\"" +
			" action.resumeRetryCount=\"-1\" action.resumeInterval=\"10\")\n")
	}
	return b.String()
}

// Summary is one line per server, for pwctl syslog check.
func (c *Config) Summary() string {
	var b strings.Builder
	for _, s := range c.Servers {
		fmt.Fprintf(&b, "%s port %d over %s, severity %s and above\n", s.Address, s.Port, s.Protocol, c.Severity)
	}
	return b.String()
}
