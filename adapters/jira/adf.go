package jira

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// Jira Cloud's REST API v3 carries comment bodies and descriptions in the
// Atlassian Document Format
// (https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/):
// a JSON tree of block nodes (paragraph, heading, lists, codeBlock,
// blockquote, panel, table, rule, media, …) holding inline nodes (text with
// marks, mention, emoji, hardBreak, inlineCard, date, status). adfToMarkdown
// renders it as Markdown; unknown nodes render their children.

// adfNode is one node of an ADF document.
type adfNode struct {
	Type    string         `json:"type"`
	Text    string         `json:"text"`
	Attrs   map[string]any `json:"attrs"`
	Marks   []adfMark      `json:"marks"`
	Content []adfNode      `json:"content"`
}

type adfMark struct {
	Type  string         `json:"type"`
	Attrs map[string]any `json:"attrs"`
}

func (n *adfNode) attr(k string) string {
	switch v := n.Attrs[k].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// walk calls f for n and every node below it, depth first.
func (n *adfNode) walk(f func(*adfNode)) {
	f(n)
	for i := range n.Content {
		n.Content[i].walk(f)
	}
}

// adfMentions returns the distinct mention references of the mentions in
// doc that carry no display text of their own, in order: only those need a
// lookup. (The bot's own mention is recognised by its id either way.)
func adfMentions(doc *adfNode) []string {
	var refs []string
	seen := map[string]bool{}
	doc.walk(func(n *adfNode) {
		if n.Type != "mention" {
			return
		}
		id := n.attr("id")
		if id == "" {
			return
		}
		ref := accountPrefix + id
		if !seen[ref] && strings.TrimPrefix(n.attr("text"), "@") == "" {
			seen[ref] = true
			refs = append(refs, ref)
		}
	})
	return refs
}

// adfPlainText concatenates the text of every text node in doc.
func adfPlainText(doc *adfNode) string {
	var b strings.Builder
	doc.walk(func(n *adfNode) {
		if n.Type == "text" {
			b.WriteString(n.Text)
		}
	})
	return b.String()
}

// adfToMarkdown renders an ADF document as Markdown. mention renders a
// mention of an account ("accountid:<id>") given the mention's own text.
func adfToMarkdown(doc *adfNode, mention func(ref, hint string) string) string {
	r := adfRenderer{mention: mention}
	if doc.Type != "doc" && doc.Type != "" {
		return strings.TrimSpace(r.blocks([]adfNode{*doc}, "\n\n"))
	}
	return strings.TrimSpace(r.blocks(doc.Content, "\n\n"))
}

type adfRenderer struct {
	mention func(ref, hint string) string
	depth   int // of the block being rendered, in container blocks
}

// maxADFDepth bounds the nesting of container blocks (lists, quotes,
// panels, tables, …) rendered with their structure. Each level re-indents
// the text below it, so deeper blocks are rendered flat, one block a line
// (see flat): their text is kept and the time stays linear.
const maxADFDepth = 16

// blocks renders block nodes joined by sep (inline nodes among them are
// rendered as one paragraph).
func (r *adfRenderer) blocks(nodes []adfNode, sep string) string {
	var parts []string
	for i := 0; i < len(nodes); i++ {
		if isInline(nodes[i].Type) {
			j := i
			for j < len(nodes) && isInline(nodes[j].Type) {
				j++
			}
			if s := r.inlines(nodes[i:j]); strings.TrimSpace(s) != "" {
				parts = append(parts, s)
			}
			i = j - 1
			continue
		}
		if s := r.block(&nodes[i]); strings.TrimSpace(s) != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, sep)
}

func isInline(t string) bool {
	switch t {
	case "text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "placeholder", "mediaInline", "inlineExtension":
		return true
	}
	return false
}

func (r *adfRenderer) block(n *adfNode) string {
	if len(n.Content) > 0 && n.Type != "codeBlock" {
		if r.depth >= maxADFDepth {
			var b strings.Builder
			r.flat(&b, n.Content)
			return strings.TrimRight(b.String(), "\n")
		}
		r.depth++
		defer func() { r.depth-- }()
	}
	switch n.Type {
	case "paragraph":
		return r.inlines(n.Content)
	case "heading":
		level, _ := strconv.Atoi(n.attr("level"))
		level = min(max(level, 1), 6)
		return strings.Repeat("#", level) + " " + r.inlines(n.Content)
	case "bulletList", "orderedList", "taskList", "decisionList":
		return r.list(n)
	case "codeBlock":
		var b strings.Builder
		for _, c := range n.Content {
			b.WriteString(c.Text)
		}
		code := strings.TrimRight(b.String(), "\n")
		fence := strings.Repeat("`", max(3, markdown.LongestRun(code, '`')+1))
		return fence + n.attr("language") + "\n" + code + "\n" + fence
	case "blockquote":
		return prefixLines(r.blocks(n.Content, "\n\n"), "> ", ">")
	case "rule":
		return "---"
	case "expand", "nestedExpand":
		body := r.blocks(n.Content, "\n\n")
		if title := n.attr("title"); title != "" {
			return "**" + title + "**\n\n" + body
		}
		return body
	case "table":
		return r.table(n)
	case "media":
		return mediaText(n)
	case "blockCard", "embedCard":
		return n.attr("url")
	}
	if len(n.Content) > 0 {
		return r.blocks(n.Content, "\n\n") // doc, panel, mediaSingle, mediaGroup, layouts, …
	}
	return n.Text
}

func mediaText(n *adfNode) string {
	if alt := n.attr("alt"); alt != "" {
		return "[attachment: " + alt + "]"
	}
	return "[attachment]"
}

// list renders a bullet, ordered, task or decision list.
func (r *adfRenderer) list(n *adfNode) string {
	num, _ := strconv.Atoi(n.attr("order"))
	if num < 1 {
		num = 1
	}
	var items []string
	for i := range n.Content {
		it := &n.Content[i]
		var marker, body string
		switch {
		case n.Type == "orderedList":
			marker = strconv.Itoa(num) + "."
			num++
		case it.Type == "taskItem":
			marker = "- [ ]"
			if it.attr("state") == "DONE" {
				marker = "- [x]"
			}
		default:
			marker = "-"
		}
		switch it.Type {
		case "listItem":
			body = r.blocks(it.Content, "\n")
		case "taskItem", "decisionItem":
			body = r.blocks(it.Content, "\n")
		default: // a nested list directly in a list (task lists do this)
			items = append(items, prefixLines(r.block(it), "  ", ""))
			continue
		}
		items = append(items, marker+" "+indentRest(body, len(marker)+1))
	}
	return strings.Join(items, "\n")
}

// table renders a table; its first row is the header.
func (r *adfRenderer) table(n *adfNode) string {
	var rows []string
	for i := range n.Content {
		row := &n.Content[i]
		var cells []string
		for j := range row.Content {
			cell := r.blocks(row.Content[j].Content, " ")
			cell = strings.ReplaceAll(strings.ReplaceAll(cell, "\n", " "), "|", `\|`)
			cells = append(cells, cell)
		}
		rows = append(rows, "| "+strings.Join(cells, " | ")+" |")
		if i == 0 {
			seps := make([]string, len(cells))
			for k := range seps {
				seps[k] = "---"
			}
			rows = append(rows, "| "+strings.Join(seps, " | ")+" |")
		}
	}
	return strings.Join(rows, "\n")
}

// flat writes the text of nodes and of the nodes below them, each run of
// inline nodes and each leaf block on a line of its own, without the
// blocks' structure: how blocks nested deeper than maxADFDepth render.
func (r *adfRenderer) flat(b *strings.Builder, nodes []adfNode) {
	for i := 0; i < len(nodes); i++ {
		n := &nodes[i]
		switch {
		case isInline(n.Type):
			j := i
			for j < len(nodes) && isInline(nodes[j].Type) {
				j++
			}
			r.writeInlines(b, nodes[i:j])
			i = j - 1
		case len(n.Content) == 0 || n.Type == "codeBlock":
			b.WriteString(r.block(n))
		default:
			r.flat(b, n.Content)
			continue
		}
		b.WriteByte('\n')
	}
}

// inlines renders inline nodes; consecutive text nodes with the same marks
// are merged first, so that "**a****b**" cannot happen.
func (r *adfRenderer) inlines(nodes []adfNode) string {
	var b strings.Builder
	r.writeInlines(&b, nodes)
	return b.String()
}

// writeInlines writes what inlines returns to b.
func (r *adfRenderer) writeInlines(b *strings.Builder, nodes []adfNode) {
	for i := 0; i < len(nodes); i++ {
		n := &nodes[i]
		switch n.Type {
		case "text":
			text, key := n.Text, marksKey(n.Marks)
			if i+1 < len(nodes) && nodes[i+1].Type == "text" && marksKey(nodes[i+1].Marks) == key {
				var merged strings.Builder
				merged.WriteString(text)
				for i+1 < len(nodes) && nodes[i+1].Type == "text" && marksKey(nodes[i+1].Marks) == key {
					i++
					merged.WriteString(nodes[i].Text)
				}
				text = merged.String()
			}
			b.WriteString(applyMarks(strings.ReplaceAll(text, botMark, ""), n.Marks))
		case "hardBreak":
			b.WriteString("\n")
		case "mention":
			b.WriteString(r.mention(accountPrefix+n.attr("id"), n.attr("text")))
		case "emoji":
			if t := n.attr("text"); t != "" {
				b.WriteString(t)
			} else {
				b.WriteString(n.attr("shortName"))
			}
		case "inlineCard":
			b.WriteString(n.attr("url"))
		case "date":
			if ms, err := strconv.ParseInt(n.attr("timestamp"), 10, 64); err == nil {
				b.WriteString(time.UnixMilli(ms).UTC().Format("2006-01-02"))
			}
		case "status":
			b.WriteString("[" + n.attr("text") + "]")
		case "mediaInline":
			b.WriteString(mediaText(n))
		case "placeholder":
		default:
			if len(n.Content) > 0 {
				r.writeInlines(b, n.Content)
			} else {
				b.WriteString(n.Text)
			}
		}
	}
}

// marksKey identifies a set of marks.
func marksKey(ms []adfMark) string {
	keys := make([]string, 0, len(ms))
	for _, m := range ms {
		k := m.Type
		if m.Type == "link" {
			k += "=" + markAttr(m, "href")
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func markAttr(m adfMark, k string) string {
	s, _ := m.Attrs[k].(string)
	return s
}

// applyMarks writes text with its marks: code, strong, em, strike and link
// (underline, colours, sub- and superscript have no Markdown and are
// dropped). Spaces at the ends stay outside the markers.
func applyMarks(text string, ms []adfMark) string {
	if len(ms) == 0 || strings.TrimSpace(text) == "" {
		return text
	}
	core := strings.TrimSpace(text)
	lead := text[:strings.Index(text, core)]
	trail := text[len(lead)+len(core):]
	has := map[string]adfMark{}
	for _, m := range ms {
		has[m.Type] = m
	}
	if _, ok := has["code"]; ok {
		fence := strings.Repeat("`", markdown.LongestRun(core, '`')+1)
		core = fence + core + fence
	} else {
		if _, ok := has["strike"]; ok {
			core = "~~" + core + "~~"
		}
		if _, ok := has["em"]; ok {
			core = "*" + core + "*"
		}
		if _, ok := has["strong"]; ok {
			core = "**" + core + "**"
		}
	}
	if l, ok := has["link"]; ok {
		if href := markAttr(l, "href"); href != "" && href != strings.TrimSpace(text) {
			core = "[" + core + "](" + href + ")"
		}
	}
	return lead + core + trail
}

// prefixLines prefixes every line of s with p (empty lines with empty).
func prefixLines(s, p, empty string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l == "" {
			lines[i] = empty
		} else {
			lines[i] = p + l
		}
	}
	return strings.Join(lines, "\n")
}

// indentRest indents every line of s but the first by n spaces.
func indentRest(s string, n int) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	pad := strings.Repeat(" ", n)
	lines := strings.Split(s, "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i] != "" {
			lines[i] = pad + lines[i]
		}
	}
	return strings.Join(lines, "\n")
}
