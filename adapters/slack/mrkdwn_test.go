package slack

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestToMrkdwn(t *testing.T) {
	for _, tc := range []struct{ name, md, want string }{
		{"plain", "all good", "all good"},
		{"bold", "this is **important** and __also__", "this is *important* and *also*"},
		{"italic", "an *aside* and _another_", "an _aside_ and _another_"},
		{"bold and italic", "**bold** then *it*", "*bold* then _it_"},
		{"strike", "~~wrong~~ right", "~wrong~ right"},
		{"stars that are not emphasis", "2 * 3 * 4 and a*b*c", "2 * 3 * 4 and a*b*c"},
		{"link", "see [the PR](https://github.com/a/b/pull/1)", "see <https://github.com/a/b/pull/1|the PR>"},
		{"link with title", `[docs](https://x.io/a?b=1&c=2 "Docs")`, "<https://x.io/a?b=1&amp;c=2|docs>"},
		{"link label is url", "[https://x.io](https://x.io)", "<https://x.io>"},
		{"image", "![diagram](https://x.io/d.png)", "<https://x.io/d.png|diagram>"},
		{"autolink", "<https://x.io/path>", "<https://x.io/path>"},
		{"bare url", "go to https://x.io/a_b_c_d", "go to https://x.io/a_b_c_d"},
		{"escaping", "a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"},
		{"inline code kept", "run `rm -rf *build* && make` now", "run `rm -rf *build* &amp;&amp; make` now"},
		{"double backtick code", "``a ` b``", "`a ` b`"},
		{"heading", "# Summary", "*Summary*"},
		{"heading with bold", "## The **plan** ##", "*The plan*"},
		{"bullets", "- one\n* two\n+ three", "• one\n• two\n• three"},
		{"nested bullets", "- one\n  - two\n    - three", "• one\n  ◦ two\n    • three"},
		{"task list", "- [ ] todo\n- [x] done", "☐ todo\n☑ done"},
		{"ordered", "1. first\n2) second", "1. first\n2. second"},
		{"quote", "> quoted **text**", "> quoted *text*"},
		{"rule", "---", "──────────"},
		{
			"code block",
			"before\n```go\nif a < b && *p {\n\n  x := **y**\n}\n```\nafter *x*",
			"before\n```\nif a &lt; b &amp;&amp; *p {\n\n  x := **y**\n}\n```\nafter _x_",
		},
		{"unclosed code block", "```\ncode", "```\ncode\n```"},
		{"tilde fence", "~~~\n~~not strike~~\n~~~", "```\n~~not strike~~\n```"},
		{"crlf", "**a**\r\n- b", "*a*\n• b"},
		// From goldmark's tree: Slack's own markup is kept, escapes and
		// entities mean what they mean in Markdown.
		{"slack markup", "hi <@U1>, <@W2|ada> <#C3|eng> <!here> <!subteam^S1|@eng>", "hi <@U1>, <@W2|ada> <#C3|eng> <!here> <!subteam^S1|@eng>"},
		{"slack markup at a line's start", "<!here> the build is red", "<!here> the build is red"},
		{"escaped markup", `\<@U1> a \* b`, "&lt;@U1&gt; a * b"},
		{"entities", "AT&amp;T &copy; &#35; &lt;b&gt;", "AT&amp;T © # &lt;b&gt;"},
		{"relative link", "[top](#top) and [doc](docs/a.md)", "top (#top) and doc (docs/a.md)"},
		{"link with a pipe", "[a](https://x.io/?q=a|b)", "<https://x.io/?q=a%7Cb|a>"},
		{"nested link label", "[![logo](https://x.io/l.png)](https://x.io)", "<https://x.io|logo (https://x.io/l.png)>"},
		{"reference link", "see [the docs]\n\n[the docs]: https://x.io", "see <https://x.io|the docs>"},
		{"email autolink", "<ada@example.com>", "<mailto:ada@example.com|ada@example.com>"},
		{"intraword strong", "foo**bar**baz", "foo**bar**baz"},
		{"nested emphasis", "**bold *and italic***", "*bold _and italic_*"},
		{"setext heading", "Title\n=====", "*Title*"},
		{"indented code", "para\n\n    x < y", "para\n\n```\nx &lt; y\n```"},
		{"ordered from its start", "3. c\n3. d", "3. c\n4. d"},
		{"loose list", "- a\n\n- b", "• a\n\n• b"},
		{"quoted list", "> - a\n>\n> b", "> • a\n>\n> b"},
		{"code in a list item", "- x:\n  ```\n  a\n  ```", "• x:\n  ```\n  a\n  ```"},
		{"hard break", "a  \nb\\\nc", "a\nb\nc"},
		{"html block", "<div>\n<b>x</b>\n</div>", "&lt;div&gt;\n&lt;b&gt;x&lt;/b&gt;\n&lt;/div&gt;"},
		{"table", "| a | b |\n|---|--:|\n| `x` | 12 |\n| [l](https://u.io) | 3 |", "```\na                |  b\n-----------------+---\nx                | 12\nl (https://u.io) |  3\n```"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := toMrkdwn(tc.md); got != tc.want {
				t.Errorf("toMrkdwn(%q)\n got %q\nwant %q", tc.md, got, tc.want)
			}
		})
	}
}

func TestSplitShortTextIsOneMessage(t *testing.T) {
	if got := split("  hello\n\nworld  ", 100); len(got) != 1 || got[0] != "hello\n\nworld" {
		t.Fatalf("split = %q", got)
	}
	if got := split("   ", 100); len(got) != 0 {
		t.Fatalf("split of blank text = %q", got)
	}
}

func TestSplitOnParagraphs(t *testing.T) {
	p := func(c string) string { return strings.Repeat(c, 40) }
	text := p("a") + "\n\n" + p("b") + "\n\n" + p("c") + "\n\n" + p("d")
	got := split(text, 90)
	want := []string{p("a") + "\n\n" + p("b"), p("c") + "\n\n" + p("d")}
	if len(got) != len(want) {
		t.Fatalf("split = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("chunk %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestSplitLongParagraphAtWordsAndLinks(t *testing.T) {
	link := "<https://example.com/a/long/path|a link label with spaces>"
	text := strings.Repeat("word ", 30) + link + " " + strings.Repeat("tail ", 30)
	got := split(text, 100)
	checkChunks(t, got, 100)
	joined := strings.Join(got, " ")
	if strings.Join(strings.Fields(joined), " ") != strings.Join(strings.Fields(text), " ") {
		t.Errorf("words lost or reordered:\n%q", got)
	}
	found := false
	for _, c := range got {
		found = found || strings.Contains(c, link)
	}
	if !found {
		t.Errorf("the link was cut: %q", got)
	}
}

func TestSplitCodeBlockIsReopened(t *testing.T) {
	var lines []string
	for i := range 30 {
		lines = append(lines, "line "+strings.Repeat("x", i%7)+" of code")
	}
	text := "intro\n\n```\n" + strings.Join(lines, "\n") + "\n```\n\noutro"
	got := split(text, 120)
	checkChunks(t, got, 120)
	var body []string
	for _, c := range got {
		if c == "intro" || c == "outro" {
			continue
		}
		if !strings.HasPrefix(c, "```\n") || !strings.HasSuffix(c, "\n```") {
			t.Fatalf("code chunk not fenced: %q", c)
		}
		body = append(body, strings.Split(strings.TrimSuffix(strings.TrimPrefix(c, "```\n"), "\n```"), "\n")...)
	}
	if strings.Join(body, "\n") != strings.Join(lines, "\n") {
		t.Errorf("code changed across chunks:\n%q", got)
	}
	if got[0] != "intro" || got[len(got)-1] != "outro" {
		t.Errorf("order: first %q last %q", got[0], got[len(got)-1])
	}
}

func TestSplitHardCutsRunes(t *testing.T) {
	text := strings.Repeat("日本語", 50) // 150 runes, no spaces
	got := split(text, 40)
	checkChunks(t, got, 40)
	if strings.Join(got, "") != text {
		t.Errorf("text changed: %q", got)
	}
}

func checkChunks(t *testing.T, chunks []string, max int) {
	t.Helper()
	if len(chunks) < 2 {
		t.Fatalf("want several chunks, got %q", chunks)
	}
	for i, c := range chunks {
		if n := utf8.RuneCountInString(c); n > max || n == 0 {
			t.Errorf("chunk %d has %d characters (max %d): %q", i, n, max, c)
		}
		if !utf8.ValidString(c) {
			t.Errorf("chunk %d is not valid UTF-8", i)
		}
	}
}

// TestToMrkdwnWideTable checks that a table whose rows hold fewer cells
// than its header does not grow much larger than its text: goldmark pads
// each row to the header's cells.
func TestToMrkdwnWideTable(t *testing.T) {
	for _, rows := range []int{10, 30, 100, 500, 3000} {
		md := strings.Repeat("|h", 60) + "\n" + strings.Repeat("|-", 60) + "\n" + strings.Repeat("x\n", rows)
		out := toMrkdwn(md)
		if len(out) > 4*len(md)+1024 {
			t.Errorf("%d rows: %d bytes of mrkdwn from %d of Markdown", rows, len(out), len(md))
		}
		if got := strings.Count(out, "x"); got != rows {
			t.Errorf("%d rows: %d x in the mrkdwn", rows, got)
		}
	}
}
