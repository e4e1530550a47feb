package revision

import (
	"fmt"
	"strings"
)

// Diff returns the unified diff (three lines of context) that turns a
// into b, headed with their names; "" when they are equal. Lines are
// compared whole (Myers' algorithm), so that a one-line change shows as
// one line however long the files.
func Diff(a, b []byte, nameA, nameB string) string {
	x, y := lines(a), lines(b)
	ops := myers(x, y)
	if len(ops) == 0 {
		return ""
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
	const context = 3
	// Hunks: runs of changes with up to 2×context equal lines between.
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-context, 0)
		end := i
		for j := i; j < len(ops); j++ {
			if ops[j].kind != ' ' {
				end = j
			} else if j-end > 2*context {
				break
			}
		}
		end = min(end+context+1, len(ops))
		h := ops[start:end]
		ax, bx := h[0].ai, h[0].bi
		var an, bn int
		for _, o := range h {
			if o.kind != '+' {
				an++
			}
			if o.kind != '-' {
				bn++
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", span(ax, an), span(bx, bn))
		for _, o := range h {
			out.WriteByte(o.kind)
			out.WriteString(o.text)
			out.WriteByte('\n')
		}
		i = end
	}
	return out.String()
}

// span is a hunk's range as unified diffs write it (1-based).
func span(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprint(start + 1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func lines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

type op struct {
	kind   byte // ' ', '-', '+'
	text   string
	ai, bi int // the line's index in a and in b (where it would be)
}

// myers returns the edit script from x to y, or nil if they are equal.
func myers(x, y []string) []op {
	n, m := len(x), len(y)
	maxD := n + m
	off := maxD + 1
	v := make([]int, 2*maxD+3)
	var trace [][]int
	found := false
	for d := 0; d <= maxD && !found; d++ {
		trace = append(trace, append([]int(nil), v...))
		for k := -d; k <= d; k += 2 {
			var i int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				i = v[off+k+1]
			} else {
				i = v[off+k-1] + 1
			}
			j := i - k
			for i < n && j < m && x[i] == y[j] {
				i, j = i+1, j+1
			}
			v[off+k] = i
			if i >= n && j >= m {
				found = true
				break
			}
		}
	}
	if len(trace) == 1 { // d = 0: equal
		return nil
	}
	// Walk back from (n, m): trace[d] holds the frontier round d
	// started from, so it tells which move (down: an insertion; right: a
	// deletion) reached each point, after a run of equal lines.
	var rev []op
	i, j := n, m
	for d := len(trace) - 1; d >= 0; d-- {
		v := trace[d]
		k := i - j
		pk := k - 1
		if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
			pk = k + 1
		}
		pi := v[off+pk]
		pj := pi - pk
		for i > pi && j > pj {
			rev = append(rev, op{' ', x[i-1], i - 1, j - 1})
			i, j = i-1, j-1
		}
		if d > 0 {
			if i == pi {
				rev = append(rev, op{'+', y[pj], pi, pj})
			} else {
				rev = append(rev, op{'-', x[pi], pi, pj})
			}
		}
		i, j = pi, pj
	}
	ops := make([]op, len(rev))
	for k, o := range rev {
		ops[len(rev)-1-k] = o
	}
	return ops
}
