package main

import (
	"os"
	"testing"
)

func TestReadMappingsOfSelf(t *testing.T) {
	m, err := readMappings(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var rss uint64
	for _, v := range m {
		rss += v.RSS
	}
	if exe, _ := os.Executable(); m[exe+" r-xp"].RSS == 0 || m["anonymous (Go's memory, the UMEM)"].Anon == 0 || rss == 0 {
		t.Fatalf("%d bytes resident in %+v", rss, m)
	}
	if _, err := readMappings(-1); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		perms, what, want string
	}{
		{"rw-p", "", "anonymous (Go's memory, the UMEM)"},
		{"r-xp", "/bin/pwgated (deleted)", "/bin/pwgated r-xp"},
		{"rw-s", "socket:[12345]", "socket rw-s"},
		{"rw-p", "[stack]", "stack rw-p"},
	} {
		if got := kindOf(tc.perms, tc.what); got != tc.want {
			t.Errorf("kindOf(%s, %q) = %q, want %q", tc.perms, tc.what, got, tc.want)
		}
	}
}

func TestGrew(t *testing.T) {
	before := map[string]mapping{
		"a": {Kind: "a", RSS: 4096, Anon: 4096},
		"b": {Kind: "b", RSS: 8192, Anon: 8192},
		"c": {Kind: "c", RSS: 4096},
	}
	after := map[string]mapping{
		"a": {Kind: "a", RSS: 4096 * 5, Anon: 4096 * 5},
		"c": {Kind: "c", RSS: 4096},
		"d": {Kind: "d", RSS: 4096, Anon: 4096},
	}
	g := grew(before, after)
	var anon int64
	for _, c := range g {
		anon += c.AnonDelta
	}
	if len(g) != 3 {
		t.Fatalf("%d changes, want 3: %+v", len(g), g)
	}
	if g[0].Mapping.Kind != "a" || g[0].Delta != 4*4096 {
		t.Fatalf("largest first: %+v", g[0])
	}
	if anon != 4*4096-8192+4096 {
		t.Fatalf("anonymous sum %d", anon)
	}
}
