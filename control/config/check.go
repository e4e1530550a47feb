package config

import (
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"strings"
)

// CheckSpec is a VIP's health check as the configuration writes it:
// Kind "http" (Target a URL, Want the status), "tcp" (Target HOST:PORT)
// or "exec" (Target the command and its arguments, Want the exit code).
// control/anycast runs it.
type CheckSpec struct {
	Kind, Target string
	Want         int
}

// ParseCheck checks a health check as the configuration writes it and
// fills in the defaults (status 200).
func ParseCheck(kind, target string, want int) (CheckSpec, error) {
	s := CheckSpec{Kind: kind, Target: target, Want: want}
	switch kind {
	case "http":
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return s, fmt.Errorf("%q is not an http:// or https:// URL", target)
		}
		if s.Want == 0 {
			s.Want = 200
		}
		if s.Want < 100 || s.Want > 599 {
			return s, fmt.Errorf("status %d is not an HTTP status", s.Want)
		}
	case "tcp":
		host, port, err := net.SplitHostPort(target)
		if err != nil || host == "" || port == "" {
			return s, fmt.Errorf("%q is not HOST:PORT", target)
		}
	case "exec":
		argv := strings.Fields(target)
		if len(argv) == 0 {
			return s, fmt.Errorf("exec: no command")
		}
		if _, err := exec.LookPath(argv[0]); err != nil {
			return s, fmt.Errorf("exec: %v", err)
		}
		if want < 0 || want > 255 {
			return s, fmt.Errorf("exit code %d is not 0 to 255", want)
		}
	default:
		return s, fmt.Errorf("unknown check %q (want http, tcp or exec)", kind)
	}
	return s, nil
}
