package jira

import (
	"bytes"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/yuin/goldmark/ast"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/util"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// Agents write Markdown; the REST API v2 takes Jira wiki markup. toWiki
// parses the Markdown once (markdown.Parse: CommonMark with the GitHub
// extensions) and writes the tree as wiki markup: headings → h1.–h6.,
// strong → *bold*, emphasis → _italic_, strikethrough → -strike-, code
// spans → {{code}}, code blocks → {code:lang} (or {noformat} without a
// language Jira knows), links → [label|url], images → links, bullet and
// ordered lists (nested and mixed) → * and #, task items → ☐/☑, block
// quotes → {quote}, tables → ||header|| and |cell|, rules → ----. Raw HTML
// is text. Text is escaped where Jira would read it as markup ({, [,
// emphasis characters at word edges, !image!, ??citation??, emoticons like
// (x), list marks and "|" at the start of a line), so that an agent's
// literal text shows literally.

// mdCleaner drops the bytes that are never text (NUL and the sentinels
// wiki.go uses) and turns CRLF into LF.
var mdCleaner = strings.NewReplacer("\r\n", "\n", "\x00", "", "\x01", "", "\x02", "", "\x03", "")

// codeLanguages are the languages of {code:…} that Jira Cloud and Data
// Center both highlight; other fenced blocks become {noformat}.
var codeLanguages = map[string]string{
	"actionscript": "actionscript", "ada": "ada", "applescript": "applescript", "bash": "bash",
	"sh": "bash", "shell": "bash", "zsh": "bash", "console": "bash", "c": "c", "c#": "c#", "csharp": "c#",
	"cs": "c#", "c++": "cpp", "cpp": "cpp", "css": "css", "erlang": "erlang", "go": "go", "golang": "go",
	"groovy": "groovy", "haskell": "haskell", "html": "html", "java": "java", "javascript": "javascript",
	"js": "javascript", "json": "json", "lua": "lua", "objc": "objc", "perl": "perl", "php": "php",
	"python": "python", "py": "python", "r": "r", "ruby": "ruby", "rb": "ruby", "scala": "scala",
	"sql": "sql", "swift": "swift", "vb": "visualbasic", "xml": "xml", "yaml": "yaml", "yml": "yaml",
}

const (
	// maxListDepth bounds the list marks of an item (*** …): deeper lists
	// are written at this depth, so that the marks of deeply nested lists do
	// not make the markup quadratic in the Markdown.
	maxListDepth = 16
	// maxEmphasisDepth bounds the nesting of emphasis written as markup;
	// deeper emphasis is its text. Emphasis open across a line break is
	// closed before it and opened again after, once per level.
	maxEmphasisDepth = 4
)

// toWiki converts Markdown to Jira wiki markup. It renders the Markdown
// in guarded parts of bounded size (markdown.Render), so that it runs in
// time linear in the Markdown; parts are separated as blocks are.
func toWiki(md string) string {
	return strings.Trim(markdown.Render(mdCleaner.Replace(md), 0, func(doc ast.Node, src []byte, b *strings.Builder) {
		w := &wikiWriter{src: src, b: b, inl: inlineWriter{src: src}}
		if b.Len() > 0 {
			w.newline()
			b.WriteByte('\n')
		}
		w.blocks(doc)
	}), "\n")
}

// wikiWriter writes a Markdown tree as wiki markup, block by block.
type wikiWriter struct {
	src   []byte
	b     *strings.Builder
	marks []byte // the marks of the open lists ('*' or '#'), outermost first
	quote bool   // inside {quote}, which does not nest
	inl   inlineWriter
}

// newline ends the current line, if one is open.
func (w *wikiWriter) newline() {
	if n := w.b.Len(); n > 0 && w.b.String()[n-1] != '\n' {
		w.b.WriteByte('\n')
	}
}

// blocks writes the blocks of n, each on lines of its own. A blank line
// parts two blocks where the Markdown has one, except inside a list, which
// a blank line would end in Jira.
func (w *wikiWriter) blocks(n ast.Node) {
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		w.newline()
		if c != n.FirstChild() && c.HasBlankPreviousLines() && len(w.marks) == 0 && w.b.Len() > 0 {
			w.b.WriteByte('\n')
		}
		w.block(c)
	}
}

func (w *wikiWriter) block(n ast.Node) {
	switch n := n.(type) {
	case *ast.Paragraph, *ast.TextBlock:
		w.inline(n, paraBreaks)
	case *ast.Heading:
		w.b.WriteString("h" + strconv.Itoa(n.Level) + ". ")
		w.inline(n, lineBreaks)
	case *ast.ThematicBreak:
		w.b.WriteString("----")
	case *ast.FencedCodeBlock:
		lang := ""
		if n.Info != nil {
			lang = strings.ToLower(string(n.Language(w.src)))
		}
		w.b.WriteString(codeBlock(lang, w.lines(n, nil)))
	case *ast.CodeBlock:
		w.b.WriteString(codeBlock("", w.lines(n, nil)))
	case *ast.HTMLBlock:
		var closure []byte
		if n.HasClosure() {
			closure = n.ClosureLine.Value(w.src)
		}
		w.inl.reset(paraBreaks)
		w.inl.text(w.lines(n, closure))
		w.inl.finish(w.b, false)
	case *ast.Blockquote:
		w.blockquote(n)
	case *ast.List:
		w.list(n)
	case *east.Table:
		w.table(n)
	default:
		if n.Type() == ast.TypeBlock && n.FirstChild() != nil && n.FirstChild().Type() == ast.TypeBlock {
			w.blocks(n)
		} else {
			w.inline(n, paraBreaks)
		}
	}
}

// lines returns the text of a block's lines and then extra, with no final
// line end.
func (w *wikiWriter) lines(n ast.Node, extra []byte) string {
	var b strings.Builder
	lines := n.Lines()
	for i := 0; i < lines.Len(); i++ {
		seg := lines.At(i)
		b.Write(seg.Value(w.src))
	}
	b.Write(extra)
	return strings.TrimSuffix(b.String(), "\n")
}

// blockquote writes a quote as {quote} … {quote}. A quote inside a quote
// is written as the outer quote's text: Jira's {quote} does not nest. The
// lists of a quote start at the first level.
func (w *wikiWriter) blockquote(n *ast.Blockquote) {
	if w.quote {
		w.blocks(n)
		return
	}
	marks := w.marks
	w.quote, w.marks = true, nil
	w.b.WriteString("{quote}\n")
	w.blocks(n)
	w.newline()
	w.b.WriteString("{quote}")
	w.quote, w.marks = false, marks
}

// list writes a list, an item a line: its marks (one per level: ** for
// the second level of bullets, #* for bullets in a numbered list) and its
// text. A second paragraph of an item joins the first after a line break
// (\\); other blocks of an item are written on lines of their own, which
// Jira's one-line items cannot hold.
func (w *wikiWriter) list(l *ast.List) {
	if len(w.marks) < maxListDepth {
		mark := byte('*')
		if l.IsOrdered() {
			mark = '#'
		}
		w.marks = append(w.marks, mark)
		defer func() { w.marks = w.marks[:len(w.marks)-1] }()
	}
	for item := l.FirstChild(); item != nil; item = item.NextSibling() {
		w.newline()
		w.b.Write(w.marks)
		w.b.WriteByte(' ')
		onLine := true // the item's text is on the current line
		for c := item.FirstChild(); c != nil; c = c.NextSibling() {
			switch c.(type) {
			case *ast.Paragraph, *ast.TextBlock:
				if c != item.FirstChild() {
					if onLine {
						w.b.WriteString(` \\ `)
					} else {
						w.newline()
					}
				}
				w.inline(c, itemBreaks)
				onLine = true
			default:
				w.newline()
				w.block(c)
				onLine = false
			}
		}
	}
}

// table writes a table: its header row ||a||b|| and its rows |c|d|. Jira
// takes rows of any length: the empty cells that the parser adds to a row
// shorter than the header are left out (a table of a long header and many
// short rows would be quadratic in the Markdown), and the cells it drops
// from a row longer than the header are written, as text.
func (w *wikiWriter) table(t *east.Table) {
	for row := t.FirstChild(); row != nil; row = row.NextSibling() {
		w.newline()
		sep := "|"
		if _, ok := row.(*east.TableHeader); ok {
			sep = "||"
		}
		for c := row.FirstChild(); c != nil; c = c.NextSibling() {
			if c.Pos() < 0 && c.FirstChild() == nil && c != row.FirstChild() {
				continue
			}
			w.b.WriteString(sep)
			w.inl.reset(lineBreaks)
			w.inl.walk(c)
			w.cell()
		}
		if _, ok := row.(*east.TableRow); ok {
			for _, extra := range extraCells(w.src, row) {
				w.b.WriteString(sep)
				w.inl.reset(lineBreaks)
				w.inl.text(mdText([]byte(extra)))
				w.cell()
			}
		}
		w.b.WriteString(sep)
	}
}

// cell writes the inline tokens of a table cell, " " if there are none.
func (w *wikiWriter) cell() {
	at := w.b.Len()
	w.inl.finish(w.b, true)
	if w.b.Len() == at {
		w.b.WriteByte(' ')
	}
}

// extraCells returns the cells of a table row past the header's count,
// which the parser drops as GFM has it, as their Markdown text: the rest
// of the row's line after its last cell, split at unescaped pipes.
func extraCells(src []byte, row ast.Node) []string {
	last := row.LastChild()
	if last == nil || last.Lines().Len() == 0 {
		return nil
	}
	from := last.Lines().At(0).Stop
	line := src[from:]
	if end := bytes.IndexByte(line, '\n'); end >= 0 {
		line = line[:end]
	}
	rest := strings.TrimPrefix(strings.TrimSpace(string(line)), "|") // the pipe after the last cell
	if strings.HasSuffix(rest, "|") && !strings.HasSuffix(rest, `\|`) {
		rest = rest[:len(rest)-1]
	}
	if strings.TrimSpace(rest) == "" {
		return nil
	}
	var cells []string
	start := 0
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '\\':
			i++
		case '|':
			cells = append(cells, strings.TrimSpace(rest[start:i]))
			start = i + 1
		}
	}
	return append(cells, strings.TrimSpace(rest[start:]))
}

// inline writes the inline content of n.
func (w *wikiWriter) inline(n ast.Node, br breaks) {
	w.inl.reset(br)
	w.inl.walk(n)
	w.inl.finish(w.b, false)
}

// codeBlock writes a code block: {code:lang} for a language Jira
// highlights, else {noformat}; whichever tag the body does not contain.
func codeBlock(lang, body string) string {
	tag, open := "noformat", "{noformat}"
	if l, ok := codeLanguages[lang]; ok {
		tag, open = "code", "{code:"+l+"}"
	}
	if strings.Contains(body, "{"+tag+"}") {
		if tag == "code" {
			tag, open = "noformat", "{noformat}"
		} else {
			tag, open = "code", "{code}"
		}
		if strings.Contains(body, "{"+tag+"}") {
			body = strings.ReplaceAll(body, "{"+tag+"}", "{ "+tag+"}")
		}
	}
	return open + "\n" + body + "\n{" + tag + "}"
}

// breaks are what line breaks become in a block: "\n" (a new line), or
// markup on the line.
type breaks struct{ soft, hard string }

var (
	paraBreaks = breaks{soft: "\n", hard: "\n"}  // paragraphs keep their lines
	itemBreaks = breaks{soft: " ", hard: ` \\ `} // a list item is one line
	lineBreaks = breaks{soft: " ", hard: " "}    // headings and table cells
)

// tokKind is the kind of an inline token.
type tokKind uint8

const (
	tokText   tokKind = iota // literal text, escaped when written
	tokMarkup                // wiki markup, written as it is
	tokBreak                 // a line end
	tokOpen                  // a delimiter opening emphasis
	tokClose                 // a delimiter closing emphasis
)

// token is a piece of a block's inline content. Emphasis is known to
// be writable only once its neighbours are known: Jira reads *, _ and -
// as emphasis at word edges only.
type token struct {
	kind tokKind
	s    string // the text, the markup, or the wiki delimiter
	lit  string // of a delimiter: the Markdown delimiter, text when Jira cannot read the emphasis
	pair int    // of a delimiter: the index of the other
}

// inlineWriter turns the inline content of a block into tokens, then
// writes them.
type inlineWriter struct {
	src  []byte
	br   breaks
	toks []token
	open []int // the open emphasis delimiters, innermost last
}

func (r *inlineWriter) reset(br breaks) {
	r.br, r.toks, r.open = br, r.toks[:0], r.open[:0]
}

func (r *inlineWriter) add(t token) {
	if t.s != "" || t.kind == tokBreak {
		r.toks = append(r.toks, t)
	}
}

// text adds literal text; its line ends are soft breaks.
func (r *inlineWriter) text(s string) {
	for {
		line, rest, more := strings.Cut(s, "\n")
		r.add(token{kind: tokText, s: line})
		if !more {
			return
		}
		r.lineBreak(r.br.soft)
		s = rest
	}
}

// lineBreak adds a break: a line end, with the open emphasis closed before
// it and opened again after it (Jira's emphasis is on one line), or text.
func (r *inlineWriter) lineBreak(s string) {
	if s != "\n" {
		r.add(token{kind: tokMarkup, s: s})
		return
	}
	if len(r.open) == 0 {
		r.add(token{kind: tokBreak})
		return
	}
	reopen := make([]token, len(r.open))
	for i, at := range r.open {
		reopen[i] = r.toks[at]
	}
	for range reopen {
		r.closeEm()
	}
	r.add(token{kind: tokBreak})
	for _, t := range reopen {
		r.openEm(t.s, t.lit)
	}
}

func (r *inlineWriter) openEm(delim, lit string) {
	r.open = append(r.open, len(r.toks))
	r.toks = append(r.toks, token{kind: tokOpen, s: delim, lit: lit})
}

// closeEm closes the innermost open emphasis; emphasis left empty is
// dropped.
func (r *inlineWriter) closeEm() {
	at := r.open[len(r.open)-1]
	r.open = r.open[:len(r.open)-1]
	if at == len(r.toks)-1 {
		r.toks = r.toks[:at]
		return
	}
	r.toks[at].pair = len(r.toks)
	r.toks = append(r.toks, token{kind: tokClose, s: r.toks[at].s, lit: r.toks[at].lit, pair: at})
}

func (r *inlineWriter) walk(n ast.Node) {
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		r.node(c)
	}
}

func (r *inlineWriter) node(n ast.Node) {
	switch n := n.(type) {
	case *ast.Text:
		r.text(mdText(n.Segment.Value(r.src)))
		switch {
		case n.HardLineBreak():
			r.lineBreak(r.br.hard)
		case n.SoftLineBreak():
			r.lineBreak(r.br.soft)
		}
	case *ast.String:
		r.text(string(n.Value))
	case *ast.CodeSpan:
		code := r.codeText(n)
		if strings.TrimSpace(code) == "" {
			r.add(token{kind: tokText, s: code})
			return
		}
		r.add(token{kind: tokMarkup, s: "{{" + escapeAll(code) + "}}"})
	case *ast.Emphasis:
		delim, lit := "_", "*"
		if n.Level == 2 {
			delim = "*"
		}
		if p := n.Pos(); p >= 0 && p < len(r.src) && r.src[p] == '_' {
			lit = "_"
		}
		r.emphasis(n, delim, strings.Repeat(lit, n.Level))
	case *east.Strikethrough:
		r.emphasis(n, "-", "~~")
	case *ast.Link:
		r.link(n, n.Destination)
	case *ast.Image:
		r.link(n, n.Destination)
	case *ast.AutoLink:
		label := string(n.Label(r.src))
		angle := n.Pos() >= 0 && n.Pos() < len(r.src) && r.src[n.Pos()] == '<'
		switch {
		case angle:
			url := string(n.URL(r.src))
			if n.AutoLinkType == ast.AutoLinkEmail && !strings.HasPrefix(strings.ToLower(url), "mailto:") {
				url = "mailto:" + url
			}
			r.add(token{kind: tokMarkup, s: "[" + linkTarget(url) + "]"})
		case n.AutoLinkType == ast.AutoLinkEmail:
			r.add(token{kind: tokText, s: label})
		default:
			// Jira links a bare URL itself, and reads no markup in it.
			r.add(token{kind: tokMarkup, s: label})
		}
	case *ast.RawHTML:
		for i := 0; i < n.Segments.Len(); i++ {
			seg := n.Segments.At(i)
			r.text(string(seg.Value(r.src)))
		}
	case *east.TaskCheckBox:
		box := "☐ "
		if n.IsChecked {
			box = "☑ "
		}
		r.add(token{kind: tokMarkup, s: box})
	default:
		r.walk(n)
	}
}

// emphasis adds emphasis written with delim, or lit if Jira cannot read
// it. Inside emphasis of the same delimiter (which Jira would read as its
// end), or nested deeper than maxEmphasisDepth, only its text is written.
func (r *inlineWriter) emphasis(n ast.Node, delim, lit string) {
	nested := len(r.open) >= maxEmphasisDepth
	for _, at := range r.open {
		nested = nested || r.toks[at].s == delim
	}
	if nested {
		r.walk(n)
		return
	}
	r.openEm(delim, lit)
	r.walk(n)
	r.closeEm()
}

// link adds a link or an image as [label|url], or [url] when the label is
// empty or the URL; without a URL, its label is text.
func (r *inlineWriter) link(n ast.Node, dest []byte) {
	url := linkTarget(string(util.ResolveEntityNames(util.ResolveNumericReferences(util.UnescapePunctuations(dest)))))
	if url == "" {
		r.walk(n)
		return
	}
	var b strings.Builder
	r.plain(n, &b)
	label := strings.TrimSpace(b.String())
	if label == "" || label == url {
		r.add(token{kind: tokMarkup, s: "[" + url + "]"})
		return
	}
	r.add(token{kind: tokMarkup, s: "[" + escapeAll(label) + "|" + url + "]"})
}

// plain writes the text of n's inline content, without markup, on one
// line.
func (r *inlineWriter) plain(n ast.Node, b *strings.Builder) {
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			b.WriteString(strings.ReplaceAll(mdText(c.Segment.Value(r.src)), "\n", " "))
			if c.SoftLineBreak() || c.HardLineBreak() {
				b.WriteByte(' ')
			}
		case *ast.String:
			b.Write(c.Value)
		case *ast.CodeSpan:
			b.WriteString(r.codeText(c))
		case *ast.AutoLink:
			b.Write(c.Label(r.src))
		case *ast.RawHTML:
			for i := 0; i < c.Segments.Len(); i++ {
				seg := c.Segments.At(i)
				b.WriteString(strings.ReplaceAll(string(seg.Value(r.src)), "\n", " "))
			}
		default:
			r.plain(c, b)
		}
	}
}

// codeText returns the text of a code span, its line ends as spaces.
func (r *inlineWriter) codeText(n *ast.CodeSpan) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			b.Write(c.Segment.Value(r.src))
		case *ast.String:
			b.Write(c.Value)
		}
	}
	return strings.ReplaceAll(b.String(), "\n", " ")
}

// mdText returns the text of a Markdown text segment: backslash escapes
// and entity and numeric character references resolved.
func mdText(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 && bytes.IndexByte(b, '&') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\\' && i+1 < len(b) && util.IsPunct(b[i+1]):
			out = append(out, b[i+1])
			i++
		case c == '&':
			ref, n := charRef(b[i:])
			if n == 0 {
				out = append(out, c)
				continue
			}
			out = append(out, ref...)
			i += n - 1
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// charRef reads an entity or numeric character reference (&amp; &#35;
// &#x23;) at the start of b: its characters and its length, or 0.
func charRef(b []byte) ([]byte, int) {
	const longest = 33 // &CounterClockwiseContourIntegral;
	end := bytes.IndexByte(b[:min(len(b), longest)], ';')
	if end < 2 {
		return nil, 0
	}
	ref := b[:end+1]
	for _, c := range ref[1:end] {
		if !util.IsAlphaNumeric(c) && c != '#' {
			return nil, 0
		}
	}
	if out := util.ResolveEntityNames(ref); !bytes.Equal(out, ref) {
		return out, len(ref)
	}
	if out := util.ResolveNumericReferences(ref); !bytes.Equal(out, ref) {
		return out, len(ref)
	}
	return nil, 0
}

// finish writes the tokens to b: emphasis that Jira can read as markup,
// other emphasis as its Markdown delimiters, text escaped (in a table cell,
// every "|").
func (r *inlineWriter) finish(b *strings.Builder, cell bool) {
	toks := r.toks
	for i := range toks {
		if toks[i].kind != tokOpen {
			continue
		}
		j := toks[i].pair
		if !r.opens(i) || !r.closes(j) {
			toks[i] = token{kind: tokText, s: toks[i].lit}
			toks[j] = token{kind: tokText, s: toks[j].lit}
		}
	}
	lineStart := true // only blanks written on the line yet
	for i, t := range toks {
		switch t.kind {
		case tokText:
			escapeText(b, t.s, r.before(i), r.after(i), &lineStart, cell)
		case tokBreak:
			b.WriteByte('\n')
			lineStart = true
		default:
			b.WriteString(t.s)
			lineStart = false
		}
	}
}

// opens reports whether Jira reads the delimiter token i as opening
// emphasis, as wikiToMarkdown does (see opens in wiki.go).
func (r *inlineWriter) opens(i int) bool {
	d, _ := utf8.DecodeRuneInString(r.toks[i].s)
	prev, next := r.before(i), r.after(i)
	return !isWord(prev) && prev != d && next != 0 && !unicode.IsSpace(next) && next != d
}

// closes reports whether Jira reads the delimiter token j as closing
// emphasis (see closes in wiki.go).
func (r *inlineWriter) closes(j int) bool {
	d, _ := utf8.DecodeRuneInString(r.toks[j].s)
	prev, next := r.before(j), r.after(j)
	return prev != 0 && !unicode.IsSpace(prev) && !isWord(next) && next != d
}

// before returns the last character written before token i, 0 at the
// start; a line end is '\n'.
func (r *inlineWriter) before(i int) rune {
	if i == 0 {
		return 0
	}
	t := r.toks[i-1]
	if t.kind == tokBreak {
		return '\n'
	}
	c, _ := utf8.DecodeLastRuneInString(t.s)
	return c
}

// after returns the first character written after token i, 0 at the end.
func (r *inlineWriter) after(i int) rune {
	if i+1 >= len(r.toks) {
		return 0
	}
	t := r.toks[i+1]
	if t.kind == tokBreak {
		return '\n'
	}
	c, _ := utf8.DecodeRuneInString(t.s)
	return c
}

// linkTarget makes a URL safe inside [label|url]: "|", "[", "]", "\\"
// (which would escape the "]") and spaces are percent-encoded.
func linkTarget(u string) string { return urlEscaper.Replace(u) }

var urlEscaper = strings.NewReplacer("|", "%7C", "]", "%5D", "[", "%5B", "\\", "%5C", " ", "%20")

// escapeText writes text s escaped where Jira would read it as markup:
// "{" (macros), "[" (links), "!" before a non-space (images), emphasis
// characters where they could open or close emphasis, "??" before a
// non-space (a citation), emoticons like (x) and (i), and at the start of
// a line, "*", "-" and "#" (lists) and "|" (a table row; in a table cell
// (cell), every "|"). before and after are the characters written around
// s; lineStart says whether only blanks are on s's line before it, and is
// updated.
func escapeText(b *strings.Builder, s string, before, after rune, lineStart *bool, cell bool) {
	b.Grow(len(s) + 8)
	at := func(i int) rune { // the character at s[i:], after s at the end
		if i >= len(s) {
			return after
		}
		c, _ := utf8.DecodeRuneInString(s[i:])
		return c
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		start := *lineStart
		switch c {
		case '{', '[':
			b.WriteByte('\\')
		case '!':
			if next := at(i + 1); next != 0 && !unicode.IsSpace(next) {
				b.WriteByte('\\')
			}
		case '*', '_', '-', '+', '^', '~':
			prev, next := before, at(i+1)
			if i > 0 {
				prev, _ = utf8.DecodeLastRuneInString(s[:i])
			}
			canOpen := !isWord(prev) && next != 0 && !unicode.IsSpace(next)
			canClose := prev != 0 && !unicode.IsSpace(prev) && !isWord(next)
			if canOpen || canClose || start && (c == '*' || c == '-') {
				b.WriteByte('\\')
			}
		case '#':
			if start {
				b.WriteByte('\\')
			}
		case '?':
			if at(i+1) == '?' {
				if next := at(i + 2); next != 0 && !unicode.IsSpace(next) {
					b.WriteByte('\\')
				}
			}
		case '(':
			if emoticonAt(s[i:]) {
				b.WriteByte('\\')
			}
		case '|':
			if cell || start {
				b.WriteByte('\\')
			}
		}
		b.WriteByte(c)
		if c != ' ' && c != '\t' {
			*lineStart = false
		}
	}
}

// escapeAll escapes every character that wiki markup may read as markup,
// for text inside {{monospace}} and link labels.
func escapeAll(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '{', '}', '[', ']', '|', '!', '*', '_', '-', '+', '^', '~':
			b.WriteByte('\\')
		case '(':
			if emoticonAt(s[i:]) {
				b.WriteByte('\\')
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// emoticonAt reports whether s starts with an emoticon Jira renders as an
// icon: (y), (n), (i), (/), (x), (!), (?), (+), (-), (*), (on), (off), (*r),
// (*g), (*b), (*y), (flag), (flagoff). It looks at no more than the
// emoticon's length.
func emoticonAt(s string) bool {
	end := strings.IndexByte(s[:min(len(s), len("(flagoff)"))], ')')
	if end < 0 || s[0] != '(' {
		return false
	}
	switch s[1:end] {
	case "y", "n", "i", "/", "x", "!", "?", "+", "-", "*", "on", "off", "*r", "*g", "*b", "*y", "flag", "flagoff":
		return true
	}
	return false
}
