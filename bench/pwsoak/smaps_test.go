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
	var named bool
	for _, v := range m {
		rss += v.RSS
		named = named || v.What != ""
	}
	if len(m) == 0 || rss == 0 || !named {
		t.Fatalf("%d mappings, %d bytes resident, a named one: %v", len(m), rss, named)
	}
	if _, err := readMappings(-1); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

func TestGrew(t *testing.T) {
	before := map[string]mapping{
		"a": {Where: "1-2 rw-p", RSS: 4096, Anon: 4096},
		"b": {Where: "3-4 rw-p", RSS: 8192, Anon: 8192},
		"c": {Where: "5-6 r-xp", What: "/bin/x", RSS: 4096},
	}
	after := map[string]mapping{
		"a": {Where: "1-2 rw-p", RSS: 4096 * 5, Anon: 4096 * 5},
		"c": {Where: "5-6 r-xp", What: "/bin/x", RSS: 4096},
		"d": {Where: "7-8 rw-p", RSS: 4096, Anon: 4096},
	}
	g, anon := grew(before, after)
	if len(g) != 3 {
		t.Fatalf("%d changes, want 3: %+v", len(g), g)
	}
	if g[0].Mapping.Where != "1-2 rw-p" || g[0].Delta != 4*4096 {
		t.Fatalf("largest first: %+v", g[0])
	}
	if anon != 4*4096-8192+4096 {
		t.Fatalf("anonymous sum %d", anon)
	}
}
