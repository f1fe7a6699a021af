package jira

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

// The hostile-input benchmarks: each converter takes about 1 MiB of each
// input of markdowntest.Inputs in well under 100 ms (ns/op), because each
// runs in time linear in its input.

func BenchmarkWikiToMarkdownHostile(b *testing.B) {
	markdowntest.Bench(b, func(s string) string { return wikiToMarkdown(s, testMention) })
}

func BenchmarkToWikiHostile(b *testing.B) { markdowntest.Bench(b, toWiki) }

func BenchmarkRenderCommentsHostile(b *testing.B) {
	markdowntest.Bench(b, func(s string) string { return strings.Join(renderComments(s, DefaultMaxChars), "") })
}

func BenchmarkADFToMarkdownHostile(b *testing.B) {
	for _, in := range []struct {
		name string
		doc  []byte
	}{
		{"nested-lists", nestedADFLists(1 << 20)},
		{"nested-quotes", nestedADF(1<<20, `{"type":"blockquote","content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]},`, `]}`)},
		{"text-nodes", adfTextNodes(1 << 20)},
	} {
		var doc adfNode
		if err := json.Unmarshal(in.doc, &doc); err != nil {
			b.Fatal(err)
		}
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.doc)))
			for b.Loop() {
				adfToMarkdown(&doc, testMention)
			}
		})
	}
}

// nestedADFLists returns an ADF document of about size bytes: bullet lists
// nested in one another as deep as that takes (376 KB made a renderer that
// re-indents each level take 102 s and 32 MB of text).
func nestedADFLists(size int) []byte {
	return nestedADF(size, `{"type":"bulletList","content":[{"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]},`, `]}]}`)
}

// nestedADF returns an ADF document of about size bytes of open … close
// nested, innermost a paragraph "a". JSON nesting stops at a depth
// encoding/json accepts.
func nestedADF(size int, open, close string) []byte {
	depth := min(size/(len(open)+len(close)), 9000/(strings.Count(open, "[")+strings.Count(open, "{")))
	var b strings.Builder
	b.WriteString(`{"type":"doc","content":[`)
	for range depth {
		b.WriteString(open)
	}
	b.WriteString(`{"type":"paragraph","content":[{"type":"text","text":"a"}]}`)
	for range depth {
		b.WriteString(close)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// adfTextNodes returns an ADF paragraph of about size bytes of text nodes
// with the same marks, which the renderer merges, and code marks holding
// backticks.
func adfTextNodes(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"type":"doc","content":[{"type":"paragraph","content":[`)
	node := `{"type":"text","text":"a` + "``" + `","marks":[{"type":"code"}]},`
	for b.Len() < size {
		b.WriteString(node)
	}
	b.WriteString(`{"type":"text","text":"a"}]}]}`)
	return []byte(b.String())
}

func TestWikiToMarkdownHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, func(s string) string { return wikiToMarkdown(s, testMention) }, nil)
}

func TestToWikiHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, toWiki, nil)
}

func TestRenderCommentsHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, func(s string) string { return strings.Join(renderComments(s, DefaultMaxChars), "") }, nil)
}

// TestADFDeepNestingStaysSmall checks that blocks nested deeper than
// maxADFDepth keep their text but are not indented level by level: the
// Markdown of a deeply nested document is about as long as its text, not
// quadratic in its depth.
func TestADFDeepNestingStaysSmall(t *testing.T) {
	for name, doc := range map[string][]byte{
		"lists":  nestedADFLists(256 << 10),
		"quotes": nestedADF(256<<10, `{"type":"blockquote","content":[{"type":"paragraph","content":[{"type":"text","text":"a"}]},`, `]}`),
	} {
		var n adfNode
		if err := json.Unmarshal(doc, &n); err != nil {
			t.Fatal(err)
		}
		text := adfPlainText(&n)
		md := adfToMarkdown(&n, testMention)
		if got, want := strings.Count(md, "a"), strings.Count(text, "a"); got < want {
			t.Errorf("%s: the Markdown keeps %d of the text's %d letters a", name, got, want)
		}
		if limit := 8 * maxADFDepth * len(text); len(md) > limit {
			t.Errorf("%s: %d bytes of Markdown for %d bytes of text, want at most %d", name, len(md), len(text), limit)
		}
	}
}

// TestToWikiDeepQuotes checks that nested quotes are one {quote} (Jira's
// does not nest), and that their text is kept.
func TestToWikiDeepQuotes(t *testing.T) {
	md := strings.Repeat(">", 3000) + " a"
	w := toWiki(md)
	if n := strings.Count(w, "{quote}"); n != 2 {
		t.Errorf("%d {quote} tags, want 2", n)
	}
	if !strings.Contains(w, "a") {
		t.Errorf("the text is lost: %.100q", w)
	}
}
