package slack

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/yuin/goldmark/ast"
	extast "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/renderer/html"

	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// specExample is one CommonMark spec example of testdata/commonmark.
type specExample struct {
	Example  int    `json:"example"`
	Section  string `json:"section"`
	Markdown string `json:"markdown"`
}

// specGolden is the golden rendering of one example.
type specGolden struct {
	Example int    `json:"example"`
	Mrkdwn  string `json:"mrkdwn"`
}

const specDir = "testdata/commonmark"

func readSpec(t *testing.T) []specExample {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(specDir, "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	var examples []specExample
	if err := json.Unmarshal(b, &examples); err != nil {
		t.Fatalf("read spec.json: %v", err)
	}
	return examples
}

// TestCommonMarkSpec renders the CommonMark spec examples that mrkdwn can
// express and compares each with its golden rendering (-update rewrites
// them), one JSON object a line in mrkdwn.golden.
func TestCommonMarkSpec(t *testing.T) {
	examples := readSpec(t)
	path := filepath.Join(specDir, "mrkdwn.golden")
	if *adaptertest.Update {
		var b bytes.Buffer
		for _, ex := range examples {
			line, err := json.Marshal(specGolden{ex.Example, toMrkdwn(ex.Markdown)})
			if err != nil {
				t.Fatal(err)
			}
			b.Write(line)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[int]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var g specGolden
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		want[g.Example] = g.Mrkdwn
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, ex := range examples {
		w, ok := want[ex.Example]
		if !ok {
			t.Errorf("example %d has no golden rendering", ex.Example)
			continue
		}
		if got := toMrkdwn(ex.Markdown); got != w {
			t.Errorf("example %d (%s): toMrkdwn(%q)\n got %q\nwant %q", ex.Example, ex.Section, ex.Markdown, got, w)
		}
	}
}

// TestCommonMarkSpecRoundTrip renders each spec example to mrkdwn and
// reads the mrkdwn back as Slack's inbound text (render): the text, the
// code, the links' labels and URLs are all there, in order; each emphasis
// is marked; each list item starts a line with its mark, and each quote's
// lines start with ">".
func TestCommonMarkSpecRoundTrip(t *testing.T) {
	for _, ex := range readSpec(t) {
		mrk := toMrkdwn(ex.Markdown)
		back := render(mrk, nil)
		src := []byte(strings.ReplaceAll(ex.Markdown, "\x00", "") + "\n")
		doc := markdown.Parse(src)
		var problems []string
		at := 0 // the words of the text are found in back in order
		for _, w := range specWords(doc, src) {
			i := strings.Index(back[at:], w)
			if i < 0 {
				problems = append(problems, fmt.Sprintf("lost %q", w))
				continue
			}
			at += i + len(w)
		}
		items, quotes := 0, false
		_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
			if !entering {
				return ast.WalkContinue, nil
			}
			switch n := n.(type) {
			case *ast.Emphasis:
				if first := specFirstWord(n, src); first != "" && !specMarked(mrk, first) && !specInside(n) {
					problems = append(problems, fmt.Sprintf("emphasis of %q unmarked", first))
				}
			case *ast.ListItem:
				items++
			case *ast.Blockquote:
				quotes = quotes || n.HasChildren()
			}
			return ast.WalkContinue, nil
		})
		// Text may look like an item too ("1. not a list", escaped).
		if got := strings.Count(mrk, "•") + strings.Count(mrk, "◦") + strings.Count(mrk, "☐") + strings.Count(mrk, "☑") +
			len(numberRe.FindAllString(mrk, -1)); got < items {
			problems = append(problems, fmt.Sprintf("%d list items, %d marked", items, got))
		}
		if quotes && !quoteRe.MatchString(mrk) {
			problems = append(problems, "quote lost")
		}
		if problems != nil {
			t.Errorf("example %d (%s): %q → %q → %q: %s", ex.Example, ex.Section, ex.Markdown, mrk, back, strings.Join(problems, "; "))
		}
	}
}

// numberRe matches the mark of an ordered list item in mrkdwn: a number
// at the start of a line (after indentation or quote markers) or after
// another item's mark (a list nested on the same line).
var numberRe = regexp.MustCompile(`(?m)(?:^[ >]*|[•◦☐☑] |\d+\. )\d+\.(?: |$)`)

// quoteRe matches a quote's line in mrkdwn, in a list item or not.
var quoteRe = regexp.MustCompile(`(?m)^[ •◦☐☑\d.]*>`)

// specWords returns the words of the text of doc, in order: its text
// (escapes and entities resolved), code, link labels and destinations.
func specWords(doc ast.Node, src []byte) []string {
	var words []string
	add := func(s []byte) {
		words = append(words, strings.Fields(string(s))...)
	}
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			if l, ok := n.(*ast.Link); ok {
				add(l.Destination)
			}
			if l, ok := n.(*ast.Image); ok {
				add(l.Destination)
			}
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Text:
			if _, ok := n.Parent().(*ast.CodeSpan); ok {
				add(n.Segment.Value(src))
			} else {
				add(specResolved(n.Segment.Value(src)))
			}
		case *ast.String:
			add(n.Value)
		case *ast.AutoLink:
			add(n.Label(src))
		case *ast.CodeBlock, *ast.FencedCodeBlock:
			for i := range n.Lines().Len() {
				seg := n.Lines().At(i)
				add(seg.Value(src))
			}
		}
		return ast.WalkContinue, nil
	})
	return words
}

// specResolved returns Markdown text with its escapes and entities
// resolved, as goldmark's HTML writer resolves them.
func specResolved(s []byte) []byte {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	html.DefaultWriter.Write(bw, s)
	_ = bw.Flush()
	return []byte(unescaper.Replace(strings.ReplaceAll(b.String(), "&quot;", `"`)))
}

// specFirstWord returns the first word of the text of an emphasis,
// escapes resolved.
func specFirstWord(n ast.Node, src []byte) string {
	for c := n.FirstChild(); c != nil; c = c.FirstChild() {
		if t, ok := c.(*ast.Text); ok {
			if f := strings.Fields(string(specResolved(t.Segment.Value(src)))); len(f) > 0 {
				return f[0]
			}
			return ""
		}
	}
	return ""
}

// specMarked reports whether mrkdwn holds word after an emphasis mark.
func specMarked(mrkdwn, word string) bool {
	w := escaper.Replace(word)
	for _, m := range []string{"_", "*", "~"} {
		if strings.Contains(mrkdwn, m+w) {
			return true
		}
	}
	return false
}

// specInside reports whether an emphasis renders without marks on
// purpose: in a heading (bold already), a link's label or a table.
func specInside(n ast.Node) bool {
	for p := n.Parent(); p != nil; p = p.Parent() {
		switch p.(type) {
		case *ast.Heading, *ast.Link, *ast.Image, *extast.Table:
			return true
		}
	}
	return false
}
