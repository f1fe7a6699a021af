package markdown

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/yuin/goldmark/ast"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

func TestGuard(t *testing.T) {
	deep := func(unit string, n int) string { return strings.Repeat(unit, n) }
	longLinks := deep("[a](", 3000)
	for _, c := range []struct{ name, in, want string }{
		{"prose", "Some **bold**, `code` and a [link](https://x.io/a_(b)) <https://y.io>.", ""},
		{"links on a line", strings.Repeat("[l](https://example.com/path?q=1) ", 200), ""},
		{"angle destinations", "[a](<b c>) [d]( <e> ) [f](g \"t\")", ""},
		{"nested parentheses", "[a](b(c(d)e)f) and ](( alone", ""},
		{"quotes at the bound", deep(">", MaxDepth) + " a\n" + deep("> ", MaxDepth) + "b", ""},
		{"lists at the bound", deep("- ", MaxDepth) + "a\n" + deep("1. ", MaxDepth) + "b\n" + deep("* ", MaxDepth-1) + "> c", ""},
		{"thematic break", deep("- ", 40) + "\n" + deep("*", 50), ""},
		{"not markers", deep("-a ", 40) + "\n" + deep("1.a ", 40) + "\n" + deep("1234567890. ", 20), ""},
		{"fenced code", "```\n" + deep(">", 40) + "\n" + longLinks + "\n```\nafter", ""},
		{"quote past the bound", deep(">", MaxDepth+3) + "a", deep(">", MaxDepth) + `\>>>a`},
		{"spaced quote past the bound", deep("> ", MaxDepth+1) + "a", deep("> ", MaxDepth) + `\> a`},
		{"bullets past the bound", deep("- ", MaxDepth+2) + "a", deep("- ", MaxDepth) + `\- - a`},
		{"numbers past the bound", deep("12) ", MaxDepth+1) + "a", deep("12) ", MaxDepth) + `12\) a`},
		{"mixed past the bound", deep("> - 1. ", 6) + "a", deep("> - 1. ", 5) + `> \- 1. a`},
		{"after a fence closes", "~~~\nx\n~~~\n" + deep(">", MaxDepth+1), "~~~\nx\n~~~\n" + deep(">", MaxDepth) + `\>`},
	} {
		want := c.want
		if want == "" {
			want = c.in
		}
		if got := Guard(c.in); got != want {
			t.Errorf("%s: Guard(%.80q…) = %.200q…, want %.200q…", c.name, c.in, got, want)
		}
	}
}

// TestGuardLinks checks that a line of "[a](" keeps its first links' "("
// (within the budget) and has the rest escaped, whatever follows them.
func TestGuardLinks(t *testing.T) {
	for _, unit := range []string{"[a](", "[a](<", "[a](< ", "[a]((x)"} {
		in := strings.Repeat(unit, 3000)
		got := Guard(in)
		escaped := strings.Count(got, `](\(`) + strings.Count(got, `]\(`)
		if escaped == 0 || escaped == 3000 {
			t.Errorf("%q: %d of 3000 destinations escaped, want some", unit, escaped)
		}
		if strings.ReplaceAll(got, `\`, "") != in {
			t.Errorf("%q: Guard changed more than backslashes", unit)
		}
		if !strings.HasPrefix(got, unit+unit) {
			t.Errorf("%q: Guard escaped the first destinations: %.40q", unit, got)
		}
	}
}

// TestRenderKeepsText renders each hostile input of 1 MiB (256 KiB with
// -short) as its plain text: Guard and the cuts lose none of its 'a's.
func TestRenderKeepsText(t *testing.T) {
	size := 1 << 20
	if testing.Short() || raceEnabled {
		size = 256 << 10
	}
	markdowntest.KeepsText(t, size, func(s string) string { return Render(s, 0, plainText) }, nil)
}

// plainText writes the text of doc: its text nodes, code, HTML and link
// destinations, one block a line.
func plainText(doc ast.Node, src []byte, w *strings.Builder) {
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Text:
			w.Write(n.Segment.Value(src))
		case *ast.String:
			w.Write(n.Value)
		case *ast.AutoLink:
			w.Write(n.Label(src))
		case *ast.RawHTML:
			for i := range n.Segments.Len() {
				seg := n.Segments.At(i)
				w.Write(seg.Value(src))
			}
		case *ast.Link:
			w.Write(n.Destination)
			w.Write(n.Title)
		case *ast.Image:
			w.Write(n.Destination)
			w.Write(n.Title)
		case *ast.FencedCodeBlock:
			if n.Info != nil {
				w.Write(n.Info.Value(src))
			}
		case *ast.HTMLBlock:
			if n.HasClosure() {
				w.Write(n.ClosureLine.Value(src))
			}
		}
		switch n.(type) {
		case *ast.CodeBlock, *ast.FencedCodeBlock, *ast.HTMLBlock:
			for i := range n.Lines().Len() {
				seg := n.Lines().At(i)
				w.Write(seg.Value(src))
			}
		}
		if n.Type() == ast.TypeBlock {
			w.WriteByte('\n')
		}
		return ast.WalkContinue, nil
	})
}

// BenchmarkParseHostile renders the worst hostile inputs for goldmark, at
// 64 KiB, 256 KiB and 1 MiB, with Render: ns/op grows linearly with the
// size (MB/s stays about the same).
func BenchmarkParseHostile(b *testing.B) {
	worst := []string{"link", "quote", "star", "code-span", "mention", "bracket", "tilde", "list-lines", "newlines"}
	for _, size := range []int{64 << 10, 256 << 10, 1 << 20} {
		for _, in := range markdowntest.Inputs(size) {
			if !slices.Contains(worst, in.Name) {
				continue
			}
			b.Run(fmt.Sprintf("%s/%dKiB", in.Name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(in.Text)))
				for b.Loop() {
					Render(in.Text, 0, func(ast.Node, []byte, *strings.Builder) {})
				}
			})
		}
	}
}
