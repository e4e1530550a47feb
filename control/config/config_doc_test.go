package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// schemaKeys lists the keys the configuration file may hold, dotted, with
// "[]" after a list of mappings (bgp.neighbors[].asn); sections and plain
// mappings (bgp, anycast.forward) only through their keys.
func schemaKeys(prefix string, sch map[string]any) []string {
	var out []string
	for k, e := range sch {
		key := prefix + k
		switch s := e.(type) {
		case map[string]any:
			out = append(out, schemaKeys(key+".", s)...)
		case section:
			out = append(out, schemaKeys(key+".", s.schema)...)
		case items:
			out = append(out, key)
			out = append(out, schemaKeys(key+"[].", s.schema)...)
		default:
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out
}

// refRow is a row of a table in the configuration reference: the keys
// its first cell names and the whole row.
type refRow struct {
	keys []string
	text string
}

// referenceRows reads the tables' rows of a reference. A first cell names
// keys in backticks: in full (`bgp.asn`), as the end of a list entry's
// key (`…asn`), or as another ending of the key before it (`.tcp` after
// `…check.http`, `_rx` after `…checksum_tx`).
func referenceRows(doc string) []refRow {
	var rows []refRow
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(l, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(l[1:], " | ")
		var keys []string
		for i, tok := range strings.Split(cell, "`") {
			if i%2 == 0 {
				continue
			}
			if n := len(keys); n > 0 && (tok[0] == '.' || tok[0] == '_') {
				prev := keys[n-1]
				tok = prev[:strings.LastIndexByte(prev, tok[0])] + tok
			}
			keys = append(keys, tok)
		}
		rows = append(rows, refRow{keys, l})
	}
	return rows
}

// documents reports whether row names key, in full or as "…" and what
// follows the key's last list.
func (r refRow) documents(key string) bool {
	short := key
	if i := strings.LastIndex(key, "[]."); i >= 0 {
		short = "…" + key[i+3:]
	}
	return slices.Contains(r.keys, key) || slices.Contains(r.keys, short)
}

// TestReferenceHasEveryKey: the configuration reference
// (cmd/pwgated/README.md) documents every key the parser accepts, so the
// two cannot drift apart: a table row names it (see referenceRows), a
// list by its entries' keys (`vxlan.vnis[].vni`), or, for a key of a list
// inside a list entry (an import rule's action), the row of its list
// shows it as "`action: …`".
func TestReferenceHasEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../cmd/pwgated/README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := referenceRows(string(b))
	for _, k := range schemaKeys("", schema) {
		if slices.ContainsFunc(rows, func(r refRow) bool { return r.documents(k) }) {
			continue
		}
		// A list is documented by the rows of its entries' keys.
		if slices.ContainsFunc(rows, func(r refRow) bool {
			return slices.ContainsFunc(r.keys, func(rk string) bool { return strings.HasPrefix(rk, k+"[].") })
		}) {
			continue
		}
		if i := strings.LastIndex(k, "[]."); i >= 0 {
			list, leaf := k[:i], k[i+3:]
			if slices.ContainsFunc(rows, func(r refRow) bool { return r.documents(list) && strings.Contains(r.text, "`"+leaf+":") }) {
				continue
			}
		}
		t.Errorf("%s is not in the configuration reference (cmd/pwgated/README.md)", k)
	}
}
