package man

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// ours matches the requests Render writes; any other line starting with
// a dot or an apostrophe would be a request the input smuggled in.
var ours = regexp.MustCompile(`^\.(TH|SH|SS|PP|TP|IP|nf|fi|RS|RE|br)( |$)`)

func checkRequests(t *testing.T, out []byte) {
	t.Helper()
	for i, l := range strings.Split(string(out), "\n") {
		if (strings.HasPrefix(l, ".") && !ours.MatchString(l)) || strings.HasPrefix(l, "'") {
			t.Fatalf("line %d is a request Render does not write: %q", i+1, l)
		}
	}
}

func TestRender(t *testing.T) {
	page := Page{Name: "pwctl", Section: 1, Source: "pwgate 1.0", Manual: "pwgate manual"}
	for _, tc := range []struct{ name, md, want string }{
		{"title", "# pwctl: a tool\n", ".TH \"PWCTL\" 1 \"\" \"pwgate 1.0\" \"pwgate manual\"\n.SH NAME\npwctl \\- pwctl: a tool\n"},
		{"sections", "# t\n## Two\n### Three `x`\n", ".SH \"Two\"\n.SS \"Three x\"\n"},
		{"paragraph joined", "a line\nand `--flag` **bold** *it* [doc](x.md) [w](https://e.org)\n", ".PP\na line and \\fB\\-\\-flag\\fR \\fBbold\\fR \\fIit\\fR doc w <https://e.org>\n"},
		{"dot guarded", "x\n\n.TH evil\n", ".PP\n\\&.TH evil\n"},
		{"apostrophe guarded", "'sp 10\n", ".PP\n\\&'sp 10\n"},
		{"backslash", "a \\fB b\n", "a \\efB b\n"},
		{"code", "```yaml\nmode: ip6\n.x\n\n  y\n```\n", ".PP\n.RS 4\n.nf\nmode: ip6\n\\&.x\n\n  y\n.fi\n.RE\n"},
		{"list", "- one\n  more\n  - nested\n- two\n1. first\n", ".IP \\(bu 4\none more\n.RS 2\n.IP \\(bu 4\nnested\n.RE\n.IP \\(bu 4\ntwo\n.IP \"1.\" 4\nfirst\n"},
		{"table", "| key | meaning | default |\n|---|---|---|\n| `a.b` | x \\| y | `1` |\n| c | d | |\n", ".TP\n\\fBa.b\\fR\nx | y\n.br\n\\fIdefault\\fR: \\fB1\\fR\n.TP\nc\nd\n"},
		{"quote in heading", "## say \"hi\"\n", ".SH \"say \\(dqhi\\(dq\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := Render([]byte(tc.md), page)
			if !bytes.Contains(out, []byte(tc.want)) {
				t.Errorf("Render(%q) =\n%s\nwant it to hold\n%s", tc.md, out, tc.want)
			}
			checkRequests(t, out)
		})
	}
}

// TestManuals renders the two manuals the image ships: every key of the
// configuration reference is a tag of its own, and groff (when installed)
// finds nothing to warn about.
func TestManuals(t *testing.T) {
	for _, m := range []struct {
		src  string
		page Page
	}{
		{"../../cmd/pwgated/README.md", Page{Name: "pwgated.yaml", Section: 5, Source: "pwgate test", Manual: "pwgate manual"}},
		{"../../cmd/pwctl/README.md", Page{Name: "pwctl", Section: 1, Source: "pwgate test", Manual: "pwgate manual"}},
	} {
		md, err := os.ReadFile(m.src)
		if err != nil {
			t.Fatal(err)
		}
		out := Render(md, m.page)
		checkRequests(t, out)
		tags := map[string]bool{}
		lines := strings.Split(string(out), "\n")
		for i, l := range lines {
			if l == ".TP" && i+1 < len(lines) {
				tags[lines[i+1]] = true
			}
		}
		rows := 0
		for _, l := range strings.Split(string(md), "\n") {
			if !strings.HasPrefix(l, "| `") {
				continue
			}
			rows++
			if tag := inline(cells(l)[0]); !tags[tag] {
				t.Errorf("%s: row %q has no tag %q", m.src, l, tag)
			}
		}
		if m.page.Section == 5 && rows < 50 {
			t.Errorf("%s: only %d key rows rendered", m.src, rows)
		}
		groff, err := exec.LookPath("groff")
		if err != nil {
			t.Log("groff not installed: the pages are not typeset")
			continue
		}
		cmd := exec.Command(groff, "-man", "-Tutf8", "-K", "utf-8", "-ww", "-z")
		cmd.Stdin = bytes.NewReader(out)
		if msg, err := cmd.CombinedOutput(); err != nil || len(msg) > 0 {
			t.Errorf("%s: groff: %v\n%s", m.src, err, msg)
		}
	}
}

func FuzzRender(f *testing.F) {
	for _, s := range []string{"# t\n\ntext\n", "| a | b |\n|---|---|\n| `x` | y |\n", "```\n.x\n```\n", "- a\n  - b\n", "[a](b) **c** *d* `e`", ".TH x\n'x\n\\\"x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, md []byte) {
		checkRequests(t, Render(md, Page{Name: "x", Section: 1}))
	})
}
