package markdown

import (
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
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
