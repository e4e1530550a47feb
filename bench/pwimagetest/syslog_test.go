package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestParse5424(t *testing.T) {
	m, err := parse5424("<30>1 2026-12-06T01:02:03.456789+00:00 site-a pwgated 312 - - \ufefftime=x level=INFO msg=started")
	if err != nil || m.pri != 30 || m.host != "site-a" || m.app != "pwgated" || m.procid != "312" || m.msgid != "-" || m.msg != "time=x level=INFO msg=started" || m.time.Nanosecond() != 456789000 {
		t.Fatalf("%+v %v", m, err)
	}
	if m, err := parse5424(`<13>1 2026-12-06T01:02:03Z h app - ID7 [x@1 a="b"] hello`); err != nil || m.msg != "hello" || m.msgid != "ID7" {
		t.Fatalf("with structured data: %+v %v", m, err)
	}
	for _, bad := range []string{"", "<>1 x", "<999>1 2026-12-06T01:02:03Z h a - - - m", "<13>2 2026-12-06T01:02:03Z h a - - - m",
		"<13>1 yesterday h a - - - m", "<13>1 2026-12-06T01:02:03Z h a - -", "<13>1 2026-12-06T01:02:03Z h a - - x m", "Dec  6 01:02:03 h a: m"} {
		if _, err := parse5424(bad); err == nil {
			t.Errorf("parse5424(%q) accepted", bad)
		}
	}
	r := bufio.NewReader(strings.NewReader("5 hello11 hello world3 ab"))
	for _, want := range []string{"hello", "hello world"} {
		if got, err := readOctetCounted(r); err != nil || got != want {
			t.Errorf("readOctetCounted = %q, %v, want %q", got, err, want)
		}
	}
	if _, err := readOctetCounted(r); err == nil {
		t.Error("a short frame was read")
	}
	if _, err := readOctetCounted(bufio.NewReader(strings.NewReader("<13>1 ..."))); err == nil {
		t.Error("non-transparent framing taken for octet counting")
	}
}

func FuzzParse5424(f *testing.F) {
	f.Add("<30>1 2026-12-06T01:02:03.456789+00:00 site-a pwgated 312 - - msg")
	f.Add(`<13>1 2026-12-06T01:02:03Z h app - ID7 [x@1 a="b"] hello`)
	f.Fuzz(func(t *testing.T, s string) {
		parse5424(s)
		readOctetCounted(bufio.NewReader(strings.NewReader(s)))
	})
}
