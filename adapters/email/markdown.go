package email

import (
	"strings"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// MarkdownToHTML renders the Markdown agents write (CommonMark with
// GitHub's tables, strikethrough, autolinks and task lists) as a small HTML
// document for the text/html alternative of a reply, with goldmark's
// renderer (markdown.HTML): it never passes on raw HTML from its input nor
// a dangerous link. NUL bytes in md are dropped.
func MarkdownToHTML(md string) string {
	return "<!DOCTYPE html>\n<html><body>\n" + markdown.HTML(strings.ReplaceAll(md, "\x00", "")) + "</body></html>\n"
}
