package markdown

import (
	"html"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// One Markdown model
//
// Agents answer in Markdown. The adapters parse it once, with Parse, into
// goldmark's CommonMark tree, and render the tree in their channel's terms
// (Slack mrkdwn, Jira wiki markup, email text and HTML); GitHub takes
// Markdown as it is.

// md is the parser shared by every adapter: CommonMark with the GitHub
// extensions agents write (tables, strikethrough, autolinks, task lists).
// Raw HTML is parsed as such (ast.HTMLBlock, ast.RawHTML) and left for the
// renderers to escape or drop. goldmark's parser is safe for concurrent
// use.
var md = goldmark.New(goldmark.WithExtensions(extension.GFM))

// Parse parses src as Markdown and returns the document. The tree's text
// segments index into src, which the caller must keep unchanged while it
// reads the tree (ast.Node.Text, ast.Text.Segment.Value(src)).
//
// goldmark v1.8.7 is not linear on every input (see Guard): a channel
// renders with Render, which guards its input and parses it in parts of
// bounded size, rather than with Parse on the whole text.
func Parse(src []byte) ast.Node {
	return md.Parser().Parse(text.NewReader(src), parser.WithContext(parser.NewContext()))
}

// HTML renders Markdown as an HTML fragment with goldmark's own renderer,
// part by part (Render), for a mail's text/html alternative. It is safe to
// show: text is escaped, raw HTML in src is shown as the text it is (not
// dropped, as goldmark's safe mode would, with whatever text it held), and
// a link or image whose URL is dangerous (javascript:, vbscript:, file:,
// data: but for images) gets an empty one.
func HTML(src string) string {
	return Render(src, 0, func(doc ast.Node, src []byte, w *strings.Builder) {
		_ = mdHTML.Renderer().Render(w, src, doc) // writing to a strings.Builder never fails
	})
}

// mdHTML renders HTML as md parses: goldmark's HTML renderer in safe mode,
// but for raw HTML, which rawAsText shows as text.
var mdHTML = goldmark.New(goldmark.WithExtensions(extension.GFM),
	goldmark.WithRendererOptions(renderer.WithNodeRenderers(util.Prioritized(rawAsText{}, 100))))

// rawAsText renders raw HTML, block and inline, as escaped text: an HTML
// block as a paragraph of its lines, inline HTML in its place.
type rawAsText struct{}

var _ renderer.NodeRenderer = rawAsText{}

// RegisterFuncs implements renderer.NodeRenderer; its priority (100, before
// goldmark's own 1000) makes its functions win.
func (rawAsText) RegisterFuncs(r renderer.NodeRendererFuncRegisterer) {
	r.Register(ast.KindHTMLBlock, func(w util.BufWriter, src []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
		n := node.(*ast.HTMLBlock)
		if !entering {
			return ast.WalkContinue, nil
		}
		var lines []string
		for i := range n.Lines().Len() {
			seg := n.Lines().At(i)
			lines = append(lines, strings.TrimRight(string(seg.Value(src)), "\r\n"))
		}
		if n.HasClosure() {
			lines = append(lines, strings.TrimRight(string(n.ClosureLine.Value(src)), "\r\n"))
		}
		_, _ = w.WriteString("<p>")
		for i, l := range lines {
			if i > 0 {
				_, _ = w.WriteString("<br>\n")
			}
			_, _ = w.WriteString(html.EscapeString(l))
		}
		_, _ = w.WriteString("</p>\n")
		return ast.WalkContinue, nil
	})
	r.Register(ast.KindRawHTML, func(w util.BufWriter, src []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			n := node.(*ast.RawHTML)
			for i := range n.Segments.Len() {
				seg := n.Segments.At(i)
				_, _ = w.WriteString(html.EscapeString(string(seg.Value(src))))
			}
		}
		return ast.WalkSkipChildren, nil
	})
}
