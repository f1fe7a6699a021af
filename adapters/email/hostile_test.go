package email

import (
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

// The hostile-input benchmarks: each converter takes about 1 MiB of each
// input of markdowntest.Inputs in time linear in its input. HTMLToText and
// StripQuotes scan by hand, in well under 100 ms; MarkdownToHTML parses
// goldmark's tree in guarded parts (markdown.Render), which costs up to
// about 0.3 s a MiB on the worst inputs (measured on a loaded 2-core
// machine) and stays linear.

func BenchmarkMarkdownToHTMLHostile(b *testing.B) { markdowntest.Bench(b, MarkdownToHTML) }

func BenchmarkHTMLToTextHostile(b *testing.B) {
	markdowntest.Bench(b, func(s string) string { return HTMLToText(s, true) })
}

func BenchmarkStripQuotesHostile(b *testing.B) { markdowntest.Bench(b, StripQuotes) }

func TestMarkdownToHTMLHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, MarkdownToHTML, map[string]string{
		"fence": "the language of a fenced code block is dropped, as HTML shows none",
	})
}

func TestHTMLToTextHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, func(s string) string { return HTMLToText(s, false) }, map[string]string{
		"html-comment": "tags are markup, not text",
		"html-tag":     "tags are markup, not text",
	})
}
