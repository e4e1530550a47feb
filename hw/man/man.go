// Package man turns the project's manuals, written in the subset of
// GitHub-flavoured Markdown they use, into man pages (roff with the man
// macros), so that the appliance's `man pwgated.yaml` and `man pwctl` show
// the same text as cmd/pwgated/README.md and cmd/pwctl/README.md.
//
// The subset: ATX headings, paragraphs, fenced code blocks, bullet and
// numbered lists, pipe tables, and inline code, bold, italics and links.
// A table becomes a list of tagged paragraphs (its first cell the tag), as
// configuration references in man pages are written. Whatever the input,
// the output holds no roff request but the macros Render writes: a line
// of text never starts with a dot or an apostrophe.
package man

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Page names a man page: name(section), with the source and manual shown
// in its header and footer.
type Page struct {
	Name    string // pwctl
	Section int    // 1
	Source  string // pwgate 1.2
	Manual  string // pwgate manual
}

// Render renders md as page p. The first level-one heading gives the
// NAME section's description.
func Render(md []byte, p Page) []byte {
	r := &renderer{}
	fmt.Fprintf(&r.out, ".TH %s %d \"\" %s %s\n", quote(strings.ToUpper(p.Name)), p.Section, quote(p.Source), quote(p.Manual))
	lines := strings.Split(strings.ReplaceAll(string(md), "\r\n", "\n"), "\n")
	named := false
	for i := 0; i < len(lines); {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			i++
		case strings.HasPrefix(trimmed, "```"):
			i = r.code(lines, i)
		case heading(trimmed) > 0:
			level := heading(trimmed)
			text := strings.TrimSpace(strings.TrimLeft(trimmed, "#"))
			switch {
			case level == 1 && !named:
				r.macro(".SH NAME")
				r.text(escape(p.Name) + ` \- ` + inline(text))
				named = true
			case level <= 2:
				r.macro(".SH " + quote(plain(text)))
			default:
				r.macro(".SS " + quote(plain(text)))
			}
			i++
		case isRow(trimmed) && i+1 < len(lines) && isSeparator(strings.TrimSpace(lines[i+1])):
			i = r.table(lines, i)
		case listItem(line) != "":
			i = r.list(lines, i)
		default:
			i = r.paragraph(lines, i)
		}
	}
	return r.out.Bytes()
}

type renderer struct {
	out bytes.Buffer
}

// macro writes a request of ours.
func (r *renderer) macro(m string) { r.out.WriteString(m + "\n") }

// text writes a line of escaped text; a leading dot or apostrophe would
// be read as a request, so it is guarded.
func (r *renderer) text(t string) {
	if t == "" {
		return
	}
	if t[0] == '.' || t[0] == '\'' {
		r.out.WriteString(`\&`)
	}
	r.out.WriteString(t + "\n")
}

func heading(s string) int {
	n := 0
	for n < len(s) && s[n] == '#' {
		n++
	}
	if n == 0 || n > 6 || (n < len(s) && s[n] != ' ') {
		return 0
	}
	return n
}

// code renders the fenced block starting at lines[i]; it returns the
// index after it.
func (r *renderer) code(lines []string, i int) int {
	r.macro(".PP")
	r.macro(".RS 4")
	r.macro(".nf")
	i++
	for ; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
		r.text(escape(lines[i]))
		if lines[i] == "" {
			r.out.WriteString("\n")
		}
	}
	r.macro(".fi")
	r.macro(".RE")
	return i + 1
}

// paragraph renders lines up to a blank line or another block.
func (r *renderer) paragraph(lines []string, i int) int {
	r.macro(".PP")
	var b []string
	for ; i < len(lines); i++ {
		t := strings.TrimSpace(lines[i])
		if t == "" || strings.HasPrefix(t, "```") || heading(t) > 0 || (len(b) > 0 && listItem(lines[i]) != "") ||
			(isRow(t) && i+1 < len(lines) && isSeparator(strings.TrimSpace(lines[i+1]))) {
			break
		}
		b = append(b, t)
	}
	r.text(inline(strings.Join(b, " ")))
	return i
}

var itemRE = regexp.MustCompile(`^(\s*)([-*+]|[0-9]+[.)])\s+`)

// listItem returns the marker of a list item line, or "".
func listItem(line string) string {
	m := itemRE.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	return m[2]
}

// list renders the list starting at lines[i]: each item a paragraph with
// its bullet or number, continuation lines joined to it; nested items are
// indented.
func (r *renderer) list(lines []string, i int) int {
	base := len(itemRE.FindStringSubmatch(lines[i])[1])
	for i < len(lines) {
		m := itemRE.FindStringSubmatch(lines[i])
		if m == nil {
			break
		}
		depth := len(m[1])
		if depth < base {
			break
		}
		text := []string{strings.TrimSpace(lines[i][len(m[0]):])}
		i++
		for ; i < len(lines); i++ {
			t := strings.TrimSpace(lines[i])
			if t == "" || itemRE.MatchString(lines[i]) || strings.HasPrefix(t, "```") || heading(t) > 0 || !strings.HasPrefix(lines[i], " ") {
				break
			}
			text = append(text, t)
		}
		mark := `\(bu`
		if m[2][0] >= '0' && m[2][0] <= '9' {
			mark = quote(m[2])
		}
		if depth > base {
			r.macro(".RS 2")
		}
		r.macro(".IP " + mark + " 4")
		r.text(inline(strings.Join(text, " ")))
		if depth > base {
			r.macro(".RE")
		}
		if i < len(lines) && strings.TrimSpace(lines[i]) == "" && i+1 < len(lines) && itemRE.MatchString(lines[i+1]) {
			i++ // a blank line between items
		}
	}
	return i
}

func isRow(s string) bool { return strings.HasPrefix(s, "|") }

var sepRE = regexp.MustCompile(`^\|?(\s*:?-+:?\s*\|)+\s*(:?-+:?\s*)?$`)

func isSeparator(s string) bool { return sepRE.MatchString(s) }

// cells splits a table row at the pipes that are not escaped.
func cells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(row, "|")
	if strings.HasSuffix(row, "|") && !strings.HasSuffix(row, `\|`) {
		row = row[:len(row)-1]
	}
	var out []string
	var cur strings.Builder
	for j := 0; j < len(row); j++ {
		switch {
		case row[j] == '\\' && j+1 < len(row) && row[j+1] == '|':
			cur.WriteByte('|')
			j++
		case row[j] == '|':
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(row[j])
		}
	}
	return append(out, strings.TrimSpace(cur.String()))
}

// table renders the table starting at lines[i] (its header) as tagged
// paragraphs: the first cell is the tag, the second the text, and each
// further cell a line "header: value".
func (r *renderer) table(lines []string, i int) int {
	head := cells(lines[i])
	i += 2
	for ; i < len(lines) && isRow(strings.TrimSpace(lines[i])); i++ {
		c := cells(lines[i])
		r.macro(".TP")
		r.text(inline(c[0]))
		if len(c) > 1 {
			r.text(inline(c[1]))
		}
		for k := 2; k < len(c); k++ {
			if c[k] == "" {
				continue
			}
			r.macro(".br")
			h := ""
			if k < len(head) && head[k] != "" {
				h = `\fI` + inline(head[k]) + `\fR: `
			}
			r.text(h + inline(c[k]))
		}
	}
	return i
}

// escape makes s roff text: backslashes and hyphens escaped.
func escape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// quote makes s one argument of a request.
func quote(s string) string {
	return `"` + strings.ReplaceAll(escape(s), `"`, `\(dq`) + `"`
}

var (
	codeRE   = regexp.MustCompile("`+([^`]+)`+")
	boldRE   = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	italicRE = regexp.MustCompile(`(^|[\s(])\*([^*\s][^*]*)\*`)
	linkRE   = regexp.MustCompile(`\[([^\]]+)\]\(([^)\s]+)\)`)
)

// plain is s without its inline marks, escaped (headings).
func plain(s string) string {
	s = linkRE.ReplaceAllString(s, "$1")
	s = codeRE.ReplaceAllString(s, "$1")
	s = boldRE.ReplaceAllString(s, "$1")
	return s
}

// inline renders code as bold, bold, italics, and links as their text
// (with the address when it is a web page); the rest is escaped.
func inline(s string) string {
	var out strings.Builder
	for s != "" {
		loc := codeRE.FindStringSubmatchIndex(s)
		if loc == nil {
			out.WriteString(marks(s))
			break
		}
		out.WriteString(marks(s[:loc[0]]))
		out.WriteString(`\fB` + escape(s[loc[2]:loc[3]]) + `\fR`)
		s = s[loc[1]:]
	}
	return out.String()
}

// marks renders bold, italics and links in s, which holds no code.
func marks(s string) string {
	s = linkRE.ReplaceAllStringFunc(s, func(m string) string {
		g := linkRE.FindStringSubmatch(m)
		if strings.HasPrefix(g[2], "http://") || strings.HasPrefix(g[2], "https://") {
			return g[1] + " <" + g[2] + ">"
		}
		return g[1]
	})
	s = escape(s)
	s = boldRE.ReplaceAllString(s, `\fB$1\fR`)
	s = italicRE.ReplaceAllString(s, `$1\fI$2\fR`)
	return s
}
