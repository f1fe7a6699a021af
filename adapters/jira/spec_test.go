package jira

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/yuin/goldmark/ast"
	east "github.com/yuin/goldmark/extension/ast"

	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// The CommonMark spec examples that wiki markup can express (see
// testdata/commonmark/README.md) are rendered to wiki markup and compared
// with a golden file, and converted back with wikiToMarkdown without loss
// of text, emphasis, code, links, lists, quotes, tables or headings.

const specDir = "testdata/commonmark"

type specExample struct {
	Markdown  string `json:"markdown"`
	HTML      string `json:"html"`
	Example   int    `json:"example"`
	StartLine int    `json:"start_line"`
	EndLine   int    `json:"end_line"`
	Section   string `json:"section"`
}

func specExamples(t *testing.T) []specExample {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(specDir, "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ex []specExample
	if err := json.Unmarshal(b, &ex); err != nil {
		t.Fatalf("read the spec examples: %v", err)
	}
	return ex
}

// TestCommonMarkWikiGolden renders each example to wiki markup and
// compares the whole with testdata/commonmark/wiki.golden (-update
// rewrites it).
func TestCommonMarkWikiGolden(t *testing.T) {
	var b strings.Builder
	for _, ex := range specExamples(t) {
		fmt.Fprintf(&b, "=== example %d (%s)\n%s\n", ex.Example, ex.Section, toWiki(ex.Markdown))
	}
	golden := filepath.Join(specDir, "wiki.golden")
	if *adaptertest.Update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	got, wantS := strings.Split(b.String(), "=== "), strings.Split(string(want), "=== ")
	for i := 0; i < min(len(got), len(wantS)); i++ {
		if got[i] != wantS[i] {
			t.Fatalf("wiki markup differs from %s:\n got %q\nwant %q", golden, got[i], wantS[i])
		}
	}
	if len(got) != len(wantS) {
		t.Fatalf("%d examples rendered, %d in %s", len(got)-1, len(wantS)-1, golden)
	}
}

// TestCommonMarkRoundTrip converts each example to wiki markup and back to
// Markdown, and compares what both Markdown texts hold (mdContent).
func TestCommonMarkRoundTrip(t *testing.T) {
	for _, ex := range specExamples(t) {
		if _, ok := roundTripExceptions[ex.Example]; ok {
			continue
		}
		wiki := toWiki(ex.Markdown)
		back := wikiToMarkdown(wiki, testMention)
		want, got := mdContent(ex.Markdown), mdContent(back)
		for _, k := range contentKinds {
			if !slices.Equal(got[k], want[k]) && (!joinedKinds[k] || strings.Join(got[k], "") != strings.Join(want[k], "")) {
				t.Errorf("example %d (%s): %s differ after the round trip\nmarkdown %q\nwiki     %q\nback     %q\n got %q\nwant %q",
					ex.Example, ex.Section, k, ex.Markdown, wiki, back, got[k], want[k])
			}
		}
	}
}

// roundTripExceptions are the examples whose wiki markup is right but
// whose round trip differs, by example number. Most are wikiToMarkdown's:
// it writes wiki text as Markdown without escaping what Markdown reads as
// markup (a literal "*", "#", "[", "`", a "---" under a line), so the
// Markdown it gives back holds constructs the original did not.
var roundTripExceptions = map[int]string{
	12: inbound, 14: inbound, 26: inbound, 37: inbound, 38: inbound, 41: inbound, 49: inbound,
	58: inbound, 65: inbound, 66: inbound, 70: inbound, 76: inbound, 87: inbound, 88: inbound,
	93: inbound, 105: inbound, 106: inbound, 238: inbound, 346: inbound, 349: inbound,
	440: inbound, 441: inbound, 449: inbound, 452: inbound, 470: inbound, 480: inbound,
	481: inbound, 493: inbound, 526: inbound, 538: inbound, 606: inbound,
	597: "wikiToMarkdown knows mailto: in lower case only",
	600: "wikiToMarkdown does not link https://../",
	20:  "the URL's backslash is percent-encoded (%5C) in wiki markup",
	603: "the URL's backslash and bracket are percent-encoded (%5C, %5B) in wiki markup",
}

const inbound = "wikiToMarkdown does not escape Markdown in text"

// joinedKinds are compared joined: emphasis across a line break is
// written as emphasis on each line, and read back as two.
var joinedKinds = map[string]bool{"emphasis": true, "strong": true, "strike": true}

// contentKinds are what mdContent collects.
var contentKinds = []string{"text", "emphasis", "strong", "strike", "code", "links", "items", "quoted", "cells", "headings"}

// mdContent returns what a Markdown text holds, by kind: its text (without
// white space), the texts of its emphasis, strong emphasis,
// strikethrough, code spans and code blocks (each line trimmed), link
// and image destinations, list items (their kind and depth), the text in
// quotes, table cells and headings (their level and text).
func mdContent(md string) map[string][]string {
	src := []byte(md)
	out := map[string][]string{}
	add := func(k, v string) { out[k] = append(out[k], v) }
	var text strings.Builder
	_ = ast.Walk(markdown.Parse(src), func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Text, *ast.String, *ast.AutoLink, *ast.RawHTML:
			text.WriteString(squeeze(plainOf(n, src)))
		case *ast.CodeSpan:
			code := squeeze(plainOf(n, src))
			text.WriteString(code)
			add("code", code)
			return ast.WalkSkipChildren, nil
		case *ast.FencedCodeBlock, *ast.CodeBlock:
			var b strings.Builder
			for i := 0; i < n.Lines().Len(); i++ {
				seg := n.Lines().At(i)
				b.WriteString(strings.TrimSpace(string(seg.Value(src))))
			}
			text.WriteString(squeeze(b.String()))
			add("code", squeeze(b.String()))
		case *ast.Emphasis:
			if !inEmphasis(n) {
				add(map[int]string{1: "emphasis", 2: "strong"}[n.Level], squeeze(plainOf(n, src)))
			}
		case *east.Strikethrough:
			add("strike", squeeze(plainOf(n, src)))
		case *ast.Link:
			add("links", string(n.Destination))
		case *ast.Image:
			add("links", string(n.Destination))
		case *ast.ListItem:
			add("items", itemPath(n))
		case *ast.Blockquote:
			if q := squeeze(plainOf(n, src)); q != "" && !inQuote(n) {
				add("quoted", q)
			}
		case *east.TableCell:
			add("cells", squeeze(plainOf(n, src)))
		case *ast.Heading:
			add("headings", fmt.Sprintf("h%d %s", n.Level, squeeze(plainOf(n, src))))
		}
		if al, ok := n.(*ast.AutoLink); ok {
			add("links", string(al.URL(src)))
		}
		return ast.WalkContinue, nil
	})
	if s := text.String(); s != "" {
		out["text"] = []string{s}
	}
	return out
}

// inEmphasis reports whether emphasis n is inside emphasis of its level,
// which shows it already.
func inEmphasis(n *ast.Emphasis) bool {
	for p := n.Parent(); p != nil; p = p.Parent() {
		if e, ok := p.(*ast.Emphasis); ok && e.Level == n.Level {
			return true
		}
	}
	return false
}

// inQuote reports whether n is inside a quote: Jira's quotes do not
// nest, and toWiki writes a quote in a quote as the outer quote's text.
func inQuote(n ast.Node) bool {
	for p := n.Parent(); p != nil; p = p.Parent() {
		if _, ok := p.(*ast.Blockquote); ok {
			return true
		}
	}
	return false
}

// itemPath describes a list item by the kinds of the lists it is in,
// outermost first: "*#" is a numbered item in a bullet list.
func itemPath(n ast.Node) string {
	var path []byte
	for p := n.Parent(); p != nil; p = p.Parent() {
		if l, ok := p.(*ast.List); ok {
			k := byte('*')
			if l.IsOrdered() {
				k = '#'
			}
			path = append([]byte{k}, path...)
		}
	}
	return string(path)
}

// plainOf returns the text of n and what it holds, references and escapes
// resolved, without the check boxes of task items.
func plainOf(n ast.Node, src []byte) string {
	switch n := n.(type) {
	case *ast.Text:
		if n.IsRaw() {
			return string(n.Segment.Value(src))
		}
		return mdText(n.Segment.Value(src))
	case *ast.String:
		return string(n.Value)
	case *ast.AutoLink:
		return string(n.Label(src))
	case *ast.RawHTML:
		var b strings.Builder
		for i := 0; i < n.Segments.Len(); i++ {
			seg := n.Segments.At(i)
			b.Write(seg.Value(src))
		}
		return b.String()
	case *ast.FencedCodeBlock, *ast.CodeBlock:
		var b strings.Builder
		for i := 0; i < n.Lines().Len(); i++ {
			seg := n.Lines().At(i)
			b.Write(seg.Value(src))
		}
		return b.String()
	}
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		b.WriteString(plainOf(c, src))
	}
	return b.String()
}

// squeeze removes white space, and the check boxes toWiki writes.
func squeeze(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || r == '☐' || r == '☑' {
			return -1
		}
		return r
	}, s)
}
