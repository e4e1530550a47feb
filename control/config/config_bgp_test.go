package config

import (
	"errors"
	"strings"
	"testing"
)

var gtsmYAML = testYAML("gtsm.yaml")

func TestParseTTLSecurityErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
		line                 int
	}{
		{"hops 255", "ttl_security: 2", "ttl_security: 255", "neither true, false nor a hop count 1 to 254", 14},
		{"hops 0", "ttl_security: 2", "ttl_security: 0", "neither true, false nor a hop count 1 to 254", 14},
		{"word", "ttl_security: true", "ttl_security: yes please", "neither true, false nor a hop count", 7},
		{"with multihop", "ttl_security: 2\n", "ttl_security: 2\n      multihop: 2\n", "bgp.neighbors[1].ttl_security: excludes multihop", 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("g.yaml", []byte(strings.Replace(gtsmYAML, tc.old, tc.new, 1)))
			var ce *ConfigError
			switch {
			case err == nil:
				t.Fatal("accepted")
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %v, want %q", err, tc.want)
			case !errors.As(err, &ce) || ce.Line != tc.line:
				t.Errorf("error %v, want line %d", err, tc.line)
			}
		})
	}
}
