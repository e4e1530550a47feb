package config

import "testing"

func TestParseMode(t *testing.T) {
	for s, want := range map[string]Mode{"eth": ModeEth, "ip6": ModeIP6} {
		if m, err := ParseMode(s); err != nil || m != want || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("gre"); err == nil {
		t.Error("ParseMode accepted gre")
	}
}

func TestParsePollMode(t *testing.T) {
	for _, s := range []string{"busy", "adaptive"} {
		if m, err := ParsePollMode(s); err != nil || m.String() != s {
			t.Errorf("ParsePollMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParsePollMode("spin"); err == nil {
		t.Error("spin accepted")
	}
}

func TestParseBindMode(t *testing.T) {
	for _, s := range []string{"auto", "zerocopy", "copy"} {
		if m, err := ParseBindMode(s); err != nil || m.String() != s {
			t.Errorf("ParseBindMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseBindMode("fast"); err == nil {
		t.Error("fast accepted")
	}
}
