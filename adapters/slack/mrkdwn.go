package slack

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/yuin/goldmark/ast"
	extast "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/renderer/html"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// Agents write Markdown; Slack shows mrkdwn
// (https://docs.slack.dev/messaging/formatting-message-text). toMrkdwn
// renders goldmark's CommonMark+GFM tree of the Markdown as mrkdwn:
// **bold** → *bold*, *italic* → _italic_, ~~strike~~ → ~strike~,
// [label](url) → <url|label>, <url> → <url>, headings → bold lines, bullets
// → • and ◦ by level, task items → ☐ and ☑, ordered items → "1.", quotes →
// "> " lines, code blocks → ``` blocks without their language, tables →
// aligned code blocks, raw HTML → text. &, < and > are escaped everywhere
// (&amp; &lt; &gt;, as Slack requires) except in the Slack markup agents
// write themselves: <@U123>, <#C123|general>, <!here>, <!subteam^S1|@eng>.

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// toMrkdwn converts Markdown to Slack mrkdwn, in time linear in its length
// (markdown.Render).
func toMrkdwn(md string) string {
	return markdown.Render(strings.ReplaceAll(md, "\x00", ""), 0, renderMrkdwn)
}

// renderMrkdwn writes the mrkdwn of one part's tree to w.
func renderMrkdwn(doc ast.Node, src []byte, w *strings.Builder) {
	r := mrkdwn{src: src}
	out := r.blocks(doc)
	if out == "" {
		return
	}
	if w.Len() > 0 {
		w.WriteString("\n\n")
	}
	w.WriteString(out)
}

// mrkdwn renders the tree of one part.
type mrkdwn struct {
	src []byte
	buf bytes.Buffer  // text resolved by goldmark's HTML writer
	bw  *bufio.Writer // writes to buf
}

// inline says how inline content renders.
type inline int

const (
	styled inline = iota // with its markup
	noBold               // without bold (a heading's text, already bold)
	label                // a link's label: no bold, no line breaks
	plain                // a table cell in a code block: text only
)

// blocks renders the children of n, separated as they were in the source:
// by a blank line where one stood before a block, else by a line break.
func (r *mrkdwn) blocks(n ast.Node) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		s := r.block(c)
		if s == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(r.separator(c))
		}
		b.WriteString(s)
	}
	return b.String()
}

// separator returns what stands before block n, after another: a blank
// line where the source has one before n (blank but for quote markers),
// else a line break.
func (r *mrkdwn) separator(n ast.Node) string {
	pos := n.Pos()
	if pos < 0 || pos > len(r.src) {
		if n.HasBlankPreviousLines() {
			return "\n\n"
		}
		return "\n"
	}
	start := bytes.LastIndexByte(r.src[:pos], '\n') // the end of the line before n's
	if start < 0 {
		return "\n"
	}
	prev := r.src[bytes.LastIndexByte(r.src[:start], '\n')+1 : start]
	if len(bytes.Trim(prev, " \t\r>")) == 0 {
		return "\n\n"
	}
	return "\n"
}

// block renders one block.
func (r *mrkdwn) block(n ast.Node) string {
	switch n := n.(type) {
	case *ast.Paragraph, *ast.TextBlock:
		return r.inlines(n, styled)
	case *ast.Heading:
		if t := strings.TrimSpace(r.inlines(n, noBold)); t != "" {
			return "*" + t + "*"
		}
		return ""
	case *ast.ThematicBreak:
		return "──────────"
	case *ast.CodeBlock, *ast.FencedCodeBlock:
		return codeBlock(escaper.Replace(r.lines(n)))
	case *ast.HTMLBlock:
		s := r.lines(n)
		if n.HasClosure() {
			s += string(n.ClosureLine.Value(r.src))
		}
		var b strings.Builder
		keepMarkup(&b, []byte(strings.TrimRight(s, "\n")), escapeTo)
		return b.String()
	case *ast.Blockquote:
		return prefixLines(r.blocks(n), "> ", "> ")
	case *ast.List:
		return r.list(n)
	case *extast.Table:
		return r.table(n)
	}
	return r.blocks(n)
}

// lines returns the source lines of a block, as they are.
func (r *mrkdwn) lines(n ast.Node) string {
	var b strings.Builder
	lines := n.Lines()
	for i := range lines.Len() {
		seg := lines.At(i)
		b.Write(seg.Value(r.src))
	}
	return b.String()
}

// codeBlock fences code (its lines, escaped) as a Slack code block.
func codeBlock(code string) string {
	if code != "" && !strings.HasSuffix(code, "\n") {
		code += "\n"
	}
	return "```\n" + code + "```"
}

// prefixLines prefixes the first line of s with first and the others with
// rest; blank lines get the prefix without its trailing spaces.
func prefixLines(s, first, rest string) string {
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		p := rest
		if i == 0 {
			p = first
			b.Grow(len(s) + len(s)/8)
		} else {
			b.WriteByte('\n')
		}
		if line == "" {
			p = strings.TrimRight(p, " ")
		}
		b.WriteString(p)
		b.WriteString(line)
	}
	return b.String()
}

// list renders a list: "•" bullets ("◦" for a list nested in an odd
// number of lists), "☐" and "☑" for task items, "1." numbers from the
// list's start. An item's later lines are indented under its text.
func (r *mrkdwn) list(n *ast.List) string {
	bullet := "•"
	depth := 0
	for p := n.Parent(); p != nil; p = p.Parent() {
		if _, ok := p.(*ast.List); ok {
			depth++
		}
	}
	if depth%2 == 1 {
		bullet = "◦"
	}
	var b strings.Builder
	num := n.Start
	for item := n.FirstChild(); item != nil; item = item.NextSibling() {
		mark := bullet
		if n.IsOrdered() {
			mark = strconv.Itoa(num) + "."
			num++
		}
		if box := taskBox(item); box != nil {
			task := "☐"
			if box.IsChecked {
				task = "☑"
			}
			if n.IsOrdered() {
				mark += " " + task
			} else {
				mark = task
			}
		}
		if b.Len() > 0 {
			b.WriteString(r.separator(item))
		}
		body := r.blocks(item)
		if body == "" {
			b.WriteString(mark)
			continue
		}
		b.WriteString(prefixLines(body, mark+" ", strings.Repeat(" ", utf8.RuneCountInString(mark)+1)))
	}
	return b.String()
}

// taskBox returns the check box that starts a task list item, or nil.
func taskBox(item ast.Node) *extast.TaskCheckBox {
	if first := item.FirstChild(); first != nil {
		if box, ok := first.FirstChild().(*extast.TaskCheckBox); ok {
			return box
		}
	}
	return nil
}

// table renders a GFM table as a code block, its columns aligned as the
// delimiter row says; where padding would make it much larger than its
// text, the cells are only separated.
func (r *mrkdwn) table(n *extast.Table) string {
	var rows [][]string
	var widths []int
	text := 0
	for row := n.FirstChild(); row != nil; row = row.NextSibling() {
		var cells []string
		for i, cell := 0, row.FirstChild(); cell != nil; i, cell = i+1, cell.NextSibling() {
			c := strings.ReplaceAll(r.inlines(cell, plain), "\n", " ")
			w := utf8.RuneCountInString(unescaper.Replace(c))
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], w)
			text += len(c)
			cells = append(cells, c)
		}
		rows = append(rows, cells)
	}
	lineWidth := 0
	for _, w := range widths {
		lineWidth += w + 3
	}
	align := lineWidth*len(rows) <= 2*text+1024
	var b strings.Builder
	for i, cells := range rows {
		if !align {
			// goldmark pads a row to the header's cells: leave out the
			// empty ones at its end.
			for len(cells) > 1 && cells[len(cells)-1] == "" {
				cells = cells[:len(cells)-1]
			}
		}
		for j, c := range cells {
			if j > 0 {
				b.WriteString(" | ")
			}
			if !align {
				b.WriteString(c)
				continue
			}
			pad := widths[j] - utf8.RuneCountInString(unescaper.Replace(c))
			left := 0
			if j < len(n.Alignments) {
				switch n.Alignments[j] {
				case extast.AlignRight:
					left = pad
				case extast.AlignCenter:
					left = pad / 2
				}
			}
			b.WriteString(strings.Repeat(" ", left))
			b.WriteString(c)
			if j < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", pad-left))
			}
		}
		b.WriteString("\n")
		if i == 0 && align {
			for j, w := range widths {
				if j > 0 {
					b.WriteString("-+-")
				}
				b.WriteString(strings.Repeat("-", w))
			}
			b.WriteString("\n")
		}
	}
	return codeBlock(strings.TrimRight(b.String(), " "))
}

// inlines renders the inline children of n. Runs of text (text, raw HTML)
// are gathered from the source and written at once, so that the Slack
// markup that goldmark cuts into several nodes stays whole.
func (r *mrkdwn) inlines(n ast.Node, mode inline) string {
	var b strings.Builder
	var run []byte // source text not written yet
	flush := func() {
		if len(run) > 0 {
			r.text(&b, run)
			run = run[:0]
		}
	}
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			run = append(run, c.Segment.Value(r.src)...)
			if c.SoftLineBreak() || c.HardLineBreak() {
				if mode == label {
					run = append(run, ' ')
				} else {
					run = append(run, '\n')
				}
			}
			continue
		case *ast.String:
			run = append(run, c.Value...)
			continue
		case *ast.RawHTML:
			for i := range c.Segments.Len() {
				seg := c.Segments.At(i)
				run = append(run, seg.Value(r.src)...)
			}
			continue
		}
		flush()
		switch c := c.(type) {
		case *ast.Emphasis:
			inner := r.inlines(c, mode)
			switch {
			case inner == "":
			case mode == plain || mode == label || mode == noBold && c.Level == 2:
				b.WriteString(inner)
			case intraword(b.String(), c.NextSibling(), r.src):
				// Slack reads markup only between words: keep the stars.
				stars := strings.Repeat("*", c.Level)
				b.WriteString(stars + inner + stars)
			default:
				delim := "_"
				if c.Level == 2 {
					delim = "*"
				}
				b.WriteString(delim + inner + delim)
			}
		case *extast.Strikethrough:
			if inner := r.inlines(c, mode); inner != "" && mode != plain {
				b.WriteString("~" + inner + "~")
			} else {
				b.WriteString(inner)
			}
		case *ast.CodeSpan:
			code := escaper.Replace(r.code(c))
			if mode == plain {
				b.WriteString(code)
			} else {
				b.WriteString("`" + code + "`")
			}
		case *ast.Link:
			b.WriteString(r.link(destination(c.Destination), r.inlines(c, label), mode))
		case *ast.Image:
			b.WriteString(r.link(destination(c.Destination), r.inlines(c, label), mode))
		case *ast.AutoLink:
			b.WriteString(r.autoLink(c, mode))
		case *extast.TaskCheckBox:
			// the list item's mark
		default:
			b.WriteString(r.inlines(c, mode))
		}
	}
	flush()
	return b.String()
}

// code returns the text of a code span, its line breaks as spaces.
func (r *mrkdwn) code(n *ast.CodeSpan) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		if t, ok := c.(*ast.Text); ok {
			b.Write(t.Segment.Value(r.src))
		}
	}
	return strings.ReplaceAll(b.String(), "\n", " ")
}

// text writes source text: backslash escapes and entities resolved as
// goldmark resolves them, &, < and > escaped, and Slack's own markup kept.
func (r *mrkdwn) text(b *strings.Builder, s []byte) { keepMarkup(b, s, r.resolve) }

// keepMarkup writes s with write, except the Slack markup in it, which it
// writes as it is.
func keepMarkup(b *strings.Builder, s []byte, write func(*strings.Builder, []byte)) {
	for len(s) > 0 {
		i := bytes.IndexByte(s, '<')
		if i < 0 {
			break
		}
		n := slackMarkup(s[i:])
		if n == 0 || escapedAt(s, i) {
			write(b, s[:i+1])
			s = s[i+1:]
			continue
		}
		write(b, s[:i])
		b.Write(s[i : i+n])
		s = s[i+n:]
	}
	write(b, s)
}

// escapedAt reports whether s[i] follows an odd number of backslashes:
// Markdown's escape, which makes it a plain character.
func escapedAt(s []byte, i int) bool {
	n := 0
	for i-n > 0 && s[i-n-1] == '\\' {
		n++
	}
	return n%2 == 1
}

// escapeTo writes s with &, < and > escaped.
func escapeTo(b *strings.Builder, s []byte) { _, _ = escaper.WriteString(b, string(s)) }

// resolve writes text through goldmark's HTML writer, which resolves
// backslash escapes and entities and escapes &, <, > and ", then puts the
// quotes back: Slack escapes only &, < and >.
func (r *mrkdwn) resolve(b *strings.Builder, s []byte) {
	if len(s) == 0 {
		return
	}
	if r.bw == nil {
		r.bw = bufio.NewWriter(&r.buf)
	}
	r.buf.Reset()
	html.DefaultWriter.Write(r.bw, s)
	_ = r.bw.Flush() // to a bytes.Buffer: no error
	out := r.buf.Bytes()
	for {
		i := bytes.Index(out, []byte("&quot;"))
		if i < 0 {
			break
		}
		b.Write(out[:i])
		b.WriteByte('"')
		out = out[i+len("&quot;"):]
	}
	b.Write(out)
}

// maxMarkup bounds the length of the Slack markup that text keeps, so
// that looking for its end costs at most a constant.
const maxMarkup = 256

// slackMarkup returns the length of the Slack markup that s starts with
// (<@U123>, <@W123|name>, <#C123|general>, <!here>, <!subteam^S1|@eng>,
// <!date^…|…>), or 0.
func slackMarkup(s []byte) int {
	if len(s) < 3 || s[0] != '<' {
		return 0
	}
	end := bytes.IndexByte(s[:min(len(s), maxMarkup)], '>')
	if end < 0 {
		return 0
	}
	body := s[1:end]
	if bytes.ContainsAny(body, "<\n") {
		return 0
	}
	id, _, _ := bytes.Cut(body, []byte("|"))
	if len(id) < 2 {
		return 0
	}
	word := func(s []byte, ok func(byte) bool) bool {
		for _, c := range s {
			if !ok(c) {
				return false
			}
		}
		return len(s) > 0
	}
	upper := func(c byte) bool { return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	switch id[0] {
	case '@':
		if (id[1] == 'U' || id[1] == 'W') && word(id[2:], upper) {
			return end + 1
		}
	case '#':
		if (id[1] == 'C' || id[1] == 'G') && word(id[2:], upper) {
			return end + 1
		}
	case '!':
		name, _, _ := bytes.Cut(id[1:], []byte("^"))
		if word(name, func(c byte) bool { return c >= 'a' && c <= 'z' }) {
			return end + 1
		}
	}
	return 0
}

// destination returns a link's destination escaped for Slack, its "|"
// (which would end the URL in <url|label>) percent-encoded.
func destination(url []byte) string {
	return strings.ReplaceAll(escaper.Replace(string(url)), "|", "%7C")
}

// link renders a link or an image, its URL escaped and its text rendered:
// <url|text>, <url> when the text is empty or the URL itself, the text
// alone when there is no URL. Where Slack would not read <…> as a link,
// "text (url)": a URL without a scheme (a relative one, or "#top", which
// Slack would read as a channel), and in a link's label or a table's code
// block.
func (r *mrkdwn) link(url, text string, mode inline) string {
	text = strings.TrimSpace(text)
	switch {
	case url == "":
		return text
	case mode == plain || mode == label || !hasScheme(url):
		if text == "" || text == url {
			return url
		}
		return text + " (" + url + ")"
	case text == "" || text == url:
		return "<" + url + ">"
	}
	return "<" + url + "|" + strings.ReplaceAll(text, "|", "¦") + ">"
}

// autoLink renders an autolink: <url> as written between angle brackets
// (Slack's markup, such as <!subteam^S1|@eng>, as it is), <mailto:a@b|a@b>
// for an e-mail address; a bare URL (GFM's) stays text, which Slack links
// itself.
func (r *mrkdwn) autoLink(n *ast.AutoLink, mode inline) string {
	text := n.Label(r.src)
	pos := n.Pos()
	if pos < 0 || pos >= len(r.src) || r.src[pos] != '<' || mode == plain || mode == label {
		var b strings.Builder
		r.resolve(&b, text)
		return b.String()
	}
	if k := slackMarkup(r.src[pos:]); k > 0 {
		return string(r.src[pos : pos+k])
	}
	url := string(n.URL(r.src))
	if n.AutoLinkType == ast.AutoLinkEmail && !strings.HasPrefix(strings.ToLower(url), "mailto:") {
		return r.link(escaper.Replace("mailto:"+url), escaper.Replace(string(text)), mode)
	}
	return r.link(escaper.Replace(url), "", mode)
}

// hasScheme reports whether url starts with a scheme ("https:",
// "mailto:"): a letter, then letters, digits, "+", "-" or ".", then ":".
func hasScheme(url string) bool {
	for i := 0; i < len(url); i++ {
		c := url[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return true
		default:
			return false
		}
	}
	return false
}

// intraword reports whether emphasis stands inside a word: after a letter
// or digit of what is written before it, or before one of next's text.
func intraword(before string, next ast.Node, src []byte) bool {
	if r, _ := utf8.DecodeLastRuneInString(before); isWord(r) {
		return true
	}
	if t, ok := next.(*ast.Text); ok {
		if r, _ := utf8.DecodeRune(t.Segment.Value(src)); isWord(r) {
			return true
		}
	}
	return false
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// split cuts mrkdwn text into chunks of at most max characters, in order,
// breaking between paragraphs where it can, else between lines, else
// between words, else anywhere (on rune boundaries). A code block that must
// be cut is closed at the end of one chunk and reopened in the next; link
// markup (<url|label>) is never cut unless it alone exceeds max. Surrounding
// white space is dropped.
func split(text string, max int) []string {
	return markdown.Split(strings.TrimSpace(text), markdown.SplitOptions{Max: max, KeepAngles: true})
}
