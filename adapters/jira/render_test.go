package jira

import (
	"encoding/json"
	"strings"
	"testing"
)

// testMention renders mentions for the rendering tests: the bot as botMark,
// known users by name, others as @<ref>.
func testMention(ref, hint string) string {
	switch ref {
	case accountPrefix + botAccountID, "switchboard":
		return botMark
	case accountPrefix + graceID:
		return "@Grace Hopper"
	}
	if hint != "" {
		return hint
	}
	return "@<" + ref + ">"
}

func TestWikiToMarkdown(t *testing.T) {
	for _, tc := range []struct {
		name, wiki, want string
	}{
		{"headings", "h1. Title\nh6. Small", "# Title\n###### Small"},
		{"emphasis", "*bold* _it_ -strike- +under+ ^sup^ ~sub~ ??cite??", "**bold** *it* ~~strike~~ under sup sub *cite*"},
		{"not emphasis", "snake_case_name, well-known, 2024-01-02, a - b, 3*4*5, -1 to -2, C++", "snake_case_name, well-known, 2024-01-02, a - b, 3*4*5, -1 to -2, C++"},
		{"monospace", "run {{make *test*}} or {{a\\{b}}", "run `make *test*` or `a{b`"},
		{"monospace with a backtick", "{{a`b}}", "``a`b``"},
		{"monospace holding a tag name", "the {{code}} and {{noformat}} macros, \\{code} escaped", "the `code` and `noformat` macros, {code} escaped"},
		{"links", "[label|https://x.io/a?b=1] [https://y.io] [Log|^log.txt] [^core.dump] [Mail|mailto:a@b.c] [mailto:a@b.c] [#anchor] [PROJ-1]",
			"[label](https://x.io/a?b=1) https://y.io Log (attachment log.txt) [attachment: core.dump] [Mail](mailto:a@b.c) a@b.c anchor PROJ-1"},
		{"link with tooltip", "[docs|https://x.io|the docs]", "[docs](https://x.io)"},
		{"mentions", "[~accountid:" + graceID + "] and [~accountId:ABC] and [~jdoe]", "@Grace Hopper and @<accountid:ABC> and @<jdoe>"},
		{"images", "!shot.png! !shot.png|thumbnail! !https://x.io/a.gif!", "[image: shot.png] [image: shot.png] [image: https://x.io/a.gif]"},
		{"exclamations are not images", "wow! nice! and !!", "wow! nice! and !!"},
		{"line break", "one\\\\two", "one\ntwo"},
		{"escapes", "\\*not bold\\* \\[not a link\\] \\{not a macro\\}", "*not bold* [not a link] {not a macro}"},
		{"code", "{code}\nplain\n{code}", "```\nplain\n```"},
		{"code language", "{code:java}\nclass A {}\n{code}", "```java\nclass A {}\n```"},
		{"code parameters", "{code:title=Foo.java|borderStyle=solid}\nclass Foo {}\n{code}", "```\nclass Foo {}\n```"},
		{"code language parameter", "{code:language=python|title=x}\nprint(1)\n{code}", "```python\nprint(1)\n```"},
		{"code keeps markup", "{code}\n*x* [y] {{z}}\n{code}", "```\n*x* [y] {{z}}\n```"},
		{"code inline", "see {code}x = 1{code} here", "see\n\n```\nx = 1\n```\n\nhere"},
		{"code with fences", "{code}a ``` b{code}", "````\na ``` b\n````"},
		{"unclosed code", "text {code}\nfoo", "text\n\n```\nfoo\n```"},
		{"noformat", "{noformat}\n*raw* [x]\n{noformat}", "```\n*raw* [x]\n```"},
		{"quote", "{quote}\nquoted *text*\nsecond\n{quote}\nafter", "> quoted **text**\n> second\n\nafter"},
		{"quote inline", "before\n{quote}q{quote}", "before\n\n> q"},
		{"code in quote", "{quote}{code}x{code}{quote}", "> ```\n> x\n> ```"},
		{"bq", "bq. a quote", "> a quote"},
		{"rule", "above\n----\nbelow", "above\n---\nbelow"},
		{"bullets", "* a\n** b\n*** c\n* d", "- a\n  - b\n    - c\n- d"},
		{"numbers", "# one\n# two\n## two.one\n#* bullet\n# three", "1. one\n2. two\n   1. two.one\n   - bullet\n3. three"},
		{"dash list", "- dash\n- another", "- dash\n- another"},
		{"bold is not a list", "*bold* start", "**bold** start"},
		{"table", "||h1||h2||\n|a|[x|https://x.io]|\n|{{a|b}}|c|", "| h1 | h2 |\n| --- | --- |\n| a | [x](https://x.io) |\n| `a\\|b` | c |"},
		{"table without header", "|a|b|\n|c|d|", "| a | b |\n| --- | --- |\n| c | d |"},
		{"color and anchor", "{color:red}red{color} text{anchor:top}", "red text"},
		{"panel", "{panel:title=Note|borderStyle=dashed}\ninside\n{panel}", "**Note**\n\ninside"},
		{"blank lines", "a\n\n\n\nb\r\nc", "a\n\nb\nc"},
		{"controls", "a\x00b\x01c", "abc"},
		{"emoticons stay", ":) (y) (x)", ":) (y) (x)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := wikiToMarkdown(tc.wiki, testMention); got != tc.want {
				t.Errorf("wikiToMarkdown(%q)\n got %q\nwant %q", tc.wiki, got, tc.want)
			}
		})
	}
}

func TestWikiMentions(t *testing.T) {
	got := wikiMentions("[~accountid:A1] [~AccountId:A1] [~jdoe] [not|a mention] [~accountid:B2]")
	want := []string{"accountid:A1", "jdoe", "accountid:B2"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("wikiMentions = %v, want %v", got, want)
	}
}

func TestADFToMarkdown(t *testing.T) {
	p := func(inline ...string) string {
		return `{"type":"paragraph","content":[` + strings.Join(inline, ",") + `]}`
	}
	txt := func(s string, marks ...string) string {
		b, _ := json.Marshal(s)
		if len(marks) == 0 {
			return `{"type":"text","text":` + string(b) + `}`
		}
		return `{"type":"text","text":` + string(b) + `,"marks":[` + strings.Join(marks, ",") + `]}`
	}
	mark := func(t string) string { return `{"type":"` + t + `"}` }
	link := func(href string) string { return `{"type":"link","attrs":{"href":"` + href + `"}}` }
	li := func(blocks ...string) string {
		return `{"type":"listItem","content":[` + strings.Join(blocks, ",") + `]}`
	}
	cell := func(typ, s string) string { return `{"type":"` + typ + `","content":[` + p(txt(s)) + `]}` }
	for _, tc := range []struct {
		name   string
		blocks []string
		want   string
	}{
		{"paragraphs", []string{p(txt("one")), p(txt("two"))}, "one\n\ntwo"},
		{"marks", []string{p(txt("b", mark("strong")), txt(" "), txt("i", mark("em")), txt(" "), txt("s", mark("strike")), txt(" "), txt("c", mark("code")), txt(" "), txt("u", mark("underline")))},
			"**b** *i* ~~s~~ `c` u"},
		{"nested marks", []string{p(txt("both", mark("strong"), mark("em")))}, "***both***"},
		{"spaces stay outside markers", []string{p(txt("a"), txt(" bold ", mark("strong")), txt("b"))}, "a **bold** b"},
		{"merged text nodes", []string{p(txt("ab", mark("strong")), txt("cd", mark("strong")))}, "**abcd**"},
		{"link", []string{p(txt("docs", link("https://x.io")), txt(" "), txt("https://y.io", link("https://y.io")))}, "[docs](https://x.io) https://y.io"},
		{"bold link", []string{p(txt("PR", mark("strong"), link("https://github.com/a/b/pull/1")))}, "[**PR**](https://github.com/a/b/pull/1)"},
		{"code with backtick", []string{p(txt("a`b", mark("code")))}, "``a`b``"},
		{"mentions", []string{p(`{"type":"mention","attrs":{"id":"`+botAccountID+`","text":"@Switchboard"}}`, txt(" ask "),
			`{"type":"mention","attrs":{"id":"`+graceID+`"}}`, txt(" and "), `{"type":"mention","attrs":{"id":"X9","text":"@Xavier"}}`)},
			botMark + " ask @Grace Hopper and @Xavier"},
		{"inline nodes", []string{p(txt("a"), `{"type":"hardBreak"}`, txt("b "), `{"type":"emoji","attrs":{"shortName":":smile:","text":"😄"}}`, txt(" "),
			`{"type":"emoji","attrs":{"shortName":":custom:"}}`, txt(" "), `{"type":"inlineCard","attrs":{"url":"https://x.io/c"}}`, txt(" "),
			`{"type":"date","attrs":{"timestamp":"1781740800000"}}`, txt(" "), `{"type":"status","attrs":{"text":"DONE"}}`)},
			"a\nb 😄 :custom: https://x.io/c 2026-06-18 [DONE]"},
		{"heading", []string{`{"type":"heading","attrs":{"level":3},"content":[` + txt("Plan") + `]}`}, "### Plan"},
		{"code block", []string{`{"type":"codeBlock","attrs":{"language":"go"},"content":[` + txt("x := 1\n") + `]}`}, "```go\nx := 1\n```"},
		{"code block without language", []string{`{"type":"codeBlock","content":[` + txt("a ``` b") + `]}`}, "````\na ``` b\n````"},
		{"bullet list", []string{`{"type":"bulletList","content":[` + li(p(txt("a"))) + `,` + li(p(txt("b")), `{"type":"bulletList","content":[`+li(p(txt("c")))+`]}`) + `]}`},
			"- a\n- b\n  - c"},
		{"ordered list", []string{`{"type":"orderedList","attrs":{"order":3},"content":[` + li(p(txt("three"))) + `,` + li(p(txt("four"))) + `]}`}, "3. three\n4. four"},
		{"task list", []string{`{"type":"taskList","content":[{"type":"taskItem","attrs":{"state":"DONE"},"content":[` + txt("done") + `]},{"type":"taskItem","attrs":{"state":"TODO"},"content":[` + txt("todo") + `]}]}`},
			"- [x] done\n- [ ] todo"},
		{"blockquote", []string{`{"type":"blockquote","content":[` + p(txt("q1")) + `,` + p(txt("q2")) + `]}`}, "> q1\n>\n> q2"},
		{"rule and panel", []string{`{"type":"rule"}`, `{"type":"panel","attrs":{"panelType":"info"},"content":[` + p(txt("note")) + `]}`}, "---\n\nnote"},
		{"table", []string{`{"type":"table","content":[{"type":"tableRow","content":[` + cell("tableHeader", "h|1") + `,` + cell("tableHeader", "h2") +
			`]},{"type":"tableRow","content":[` + cell("tableCell", "a") + `,` + cell("tableCell", "b") + `]}]}`},
			"| h\\|1 | h2 |\n| --- | --- |\n| a | b |"},
		{"media", []string{`{"type":"mediaSingle","content":[{"type":"media","attrs":{"type":"file","id":"1","alt":"shot.png"}}]}`, `{"type":"mediaGroup","content":[{"type":"media","attrs":{"id":"2"}}]}`},
			"[attachment: shot.png]\n\n[attachment]"},
		{"expand", []string{`{"type":"expand","attrs":{"title":"Details"},"content":[` + p(txt("hidden")) + `]}`}, "**Details**\n\nhidden"},
		{"unknown nodes keep their text", []string{`{"type":"layoutSection","content":[{"type":"layoutColumn","content":[` + p(txt("kept")) + `]}]}`, `{"type":"extension","attrs":{}}`}, "kept"},
		{"private use characters are dropped", []string{p(txt("a" + botMark + "b"))}, "ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := `{"version":1,"type":"doc","content":[` + strings.Join(tc.blocks, ",") + `]}`
			var doc adfNode
			if err := json.Unmarshal([]byte(raw), &doc); err != nil {
				t.Fatalf("bad test document: %v\n%s", err, raw)
			}
			if got := adfToMarkdown(&doc, testMention); got != tc.want {
				t.Errorf("adfToMarkdown\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestADFMentionsNeedingLookup(t *testing.T) {
	var doc adfNode
	raw := `{"type":"doc","content":[{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"A","text":"@Ann"}},{"type":"mention","attrs":{"id":"B"}},{"type":"mention","attrs":{"id":"B","text":""}},{"type":"mention","attrs":{"id":"C","text":"@"}}]}]}`
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(adfMentions(&doc), ","); got != "accountid:B,accountid:C" {
		t.Fatalf("adfMentions = %s", got)
	}
}

func TestToWiki(t *testing.T) {
	for _, tc := range []struct {
		name, md, want string
	}{
		{"headings", "# Title\n### Sub ###", "h1. Title\nh3. Sub"},
		{"emphasis", "**bold** __bold__ *it* _it_ ***both*** ~~gone~~", "*bold* *bold* _it_ _it_ _*both*_ -gone-"},
		{"plain punctuation", "snake_case, 2 * 3, a*b*c, well-known, x^2", "snake_case, 2 * 3, a*b*c, well-known, x^2"},
		{"escaped edges", "-flag, x-, ~/home, +1, a -- b", "\\-flag, x\\-, \\~/home, \\+1, a \\-\\- b"},
		{"inline code", "use `a*b` and `{x}` and ``tick ` in``", "use {{a\\*b}} and {{\\{x\\}}} and {{tick ` in}}"},
		{"links", "[the docs](https://x.io/a_b?c=1|2) ![logo](https://x.io/l.png) <https://auto.io> https://bare.io/x_y_z.",
			"[the docs|https://x.io/a_b?c=1%7C2] [logo|https://x.io/l.png] [https://auto.io] https://bare.io/x_y_z."},
		{"link label markup", "[**bold** docs](https://x.io)", "[bold docs|https://x.io]"},
		{"nested brackets in a label", "[a [b]](https://x.io)", "[a \\[b\\]|https://x.io]"},
		{"link label escaped", "[a-b|c](https://x.io)", "[a\\-b\\|c|https://x.io]"},
		{"lists", "- a\n  - b\n    - c\n- d\n\n1. one\n2. two\n   - sub\n3. three", "* a\n** b\n*** c\n* d\n\n# one\n# two\n#* sub\n# three"},
		{"other bullets", "* star\n+ plus", "* star\n* plus"},
		{"tasks", "- [ ] todo\n- [x] done", "* ☐ todo\n* ☑ done"},
		{"quote", "> quoted **x**\n> - item\n\nafter", "{quote}\nquoted *x*\n* item\n{quote}\n\nafter"},
		{"rules", "---\n***\n___", "----\n----\n----"},
		{"table", "| a | b |\n|---|:--:|\n| `x\\|y` | [l](https://u) |\n| | a \\| b |", "||a||b||\n|{{x\\|y}}|[l|https://u]|\n| |a \\| b|"},
		{"table without outer pipes", "a | b\n--|--\n1 | 2", "||a||b||\n|1|2|"},
		{"code", "```go\nfunc main() {}\n```", "{code:go}\nfunc main() {}\n{code}"},
		{"code alias", "~~~sh\nls -la *.go\n~~~", "{code:bash}\nls -la *.go\n{code}"},
		{"code unknown language", "```rust\nfn main() {}\n```", "{noformat}\nfn main() {}\n{noformat}"},
		{"code without language", "```\n*raw* [x] {y}\n```", "{noformat}\n*raw* [x] {y}\n{noformat}"},
		{"code holding its closing tag", "```go\nx := \"{code}\"\n```", "{noformat}\nx := \"{code}\"\n{noformat}"},
		{"code holding both tags", "```\n{noformat} {code}\n```", "{code}\n{noformat} { code}\n{code}"},
		{"unterminated fence", "```go\ncode", "{code:go}\ncode\n{code}"},
		{"macros and links in text", "text with {braces} and [brackets] and a | pipe", "text with \\{braces} and \\[brackets] and a | pipe"},
		{"pipe at line start", "| not a table", "\\| not a table"},
		{"images and emoticons", "call f(x) and (i) and (on) and :) and wow! and !important", "call f\\(x) and \\(i) and \\(on) and :) and wow! and \\!important"},
		{"markdown escapes", "\\*literal\\* and \\_x\\_ and 100\\%", "\\*literal\\* and \\_x\\_ and 100%"},
		{"backslashes", "C:\\Users\\x", "C:\\Users\\x"},
		{"crlf and controls", "a\r\nb\x00\x01", "a\nb"},
		{"intraword emphasis stays text", "a**b**c and x*y*z", "a\\*\\*b\\*\\*c and x*y*z"},
		{"emphasis across lines", "**one\ntwo** and _three\nfour_", "*one*\n*two* and _three_\n_four_"},
		{"same emphasis nested", "*a *b* c*", "_a b c_"},
		{"line breaks", "one  \ntwo\\\nthree", "one\ntwo\nthree"},
		{"item paragraphs", "1. first\n\n   second\n2. next\n   line", "# first \\\\ second\n# next line"},
		{"loose list", "- a\n\n- b", "* a\n* b"},
		{"nested quotes", "> a\n> > b\n> c", "{quote}\na\nb\nc\n{quote}"},
		{"code in an item", "- a\n\n  ```go\n  x\n  ```\n- b", "* a\n{code:go}\nx\n{code}\n* b"},
		{"indented code", "text\n\n    code *x*", "text\n\n{noformat}\ncode *x*\n{noformat}"},
		{"short table rows", "| a | b | c |\n|---|---|---|\n| x |", "||a||b||c||\n|x|"},
		{"long table rows", "| a |\n|---|\n| b | c \\| d | *e* |\n> | f |\n> |---|\n> | g | h", "||a||\n|b|c \\| d|\\*e\\*|\n{quote}\n||f||\n|g|h|\n{quote}"},
		{"citations and line starts", "??cite?? and what?? and\n\\# one and\n\\- two", "\\??cite?? and what?? and\n\\# one and\n\\- two"},
		{"references", "AT&amp;T &copy; &#35;1 a&b", "AT&T © #1 a&b"},
		{"reference link", "[docs][1]\n\n[1]: https://x.io", "[docs|https://x.io]"},
		{"raw html is text", "a <b>bold</b> {x}", "a <b>bold</b> \\{x}"},
		{"mail autolink", "<a@b.co> and c@d.co", "[mailto:a@b.co] and c@d.co"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := toWiki(tc.md); got != tc.want {
				t.Errorf("toWiki(%q)\n got %q\nwant %q", tc.md, got, tc.want)
			}
		})
	}
}

// TestRoundTrip checks that Markdown an agent writes comes back the same
// when Jira sends the posted comment back: toWiki then wikiToMarkdown.
func TestRoundTrip(t *testing.T) {
	for _, md := range []string{
		"Plain text, with punctuation: a - b; snake_case; 2 * 3.",
		"# Title\n\nSome **bold**, *italic* and ~~struck~~ text with `code`.",
		"See [the PR](https://github.com/acme/api/pull/42) and https://example.com/a_b.",
		"- one\n- two\n  - two.one\n\n1. first\n2. second",
		"```go\nfunc main() {\n\tfmt.Println(\"*\")\n}\n```",
		"> quoted\n\nafter",
		"| a | b |\n| --- | --- |\n| 1 | 2 |",
		"Escapes: {braces}, [brackets], -flag, f(x), !bang, C++.",
	} {
		if got := wikiToMarkdown(toWiki(md), testMention); got != md {
			t.Errorf("round trip of %q\n got %q\nwant %q\n(wiki %q)", md, got, md, toWiki(md))
		}
	}
}

func TestMarker(t *testing.T) {
	m1, m2 := marker("d1", 1), marker("d1", 2)
	if m1 == m2 || m1 == marker("d2", 1) {
		t.Fatal("markers of different parts or deliveries are equal")
	}
	if !hasMarker("reply"+m1) || hasMarker("reply") || hasMarker(zwFrame+zwOne+zwZero) {
		t.Fatal("hasMarker is wrong")
	}
	if markerChars != 40 {
		t.Errorf("marker is %d characters", markerChars)
	}
	for _, r := range m1 {
		if r != '\u2060' && r != '\u200c' && r != '\u200d' {
			t.Fatalf("marker holds a visible character %U", r)
		}
	}
	for _, tc := range []struct{ wiki, want string }{
		{"text", "text" + m1},
		{"* item", "* item" + m1},
		{"{code}\nx\n{code}", "{code}\nx\n{code}" + m1},
		{"||a||\n|b|", "||a||\n|b|\n" + m1},
		{"above\n----", "above\n----\n" + m1},
	} {
		if got := appendMarker(tc.wiki, m1); got != tc.want {
			t.Errorf("appendMarker(%q) = %q", tc.wiki, got)
		}
	}
	// Rendering a marked comment keeps the marker detectable.
	if !hasMarker(wikiToMarkdown(appendMarker(toWiki("**done**"), m1), testMention)) {
		t.Error("the marker does not survive rendering")
	}
}

func TestRenderComments(t *testing.T) {
	if got := renderComments(" \n\n ", 1000); len(got) != 0 {
		t.Fatalf("empty text gave %q", got)
	}
	if got := renderComments("short", 1000); len(got) != 1 || got[0] != "short" {
		t.Fatalf("got %q", got)
	}
	// Text that grows in conversion (escapes) still fits.
	md := strings.Repeat("-x {y} [z] ", 300)
	parts := renderComments(md, 1000)
	if len(parts) < 4 {
		t.Fatalf("%d parts", len(parts))
	}
	for i, p := range parts {
		if n := chars(p) + markerChars + 1; n > 1000 {
			t.Errorf("part %d is %d characters with its marker", i, n)
		}
	}
	// A word longer than a comment is cut.
	if parts := renderComments(strings.Repeat("a", 2500), 1000); len(parts) != 3 {
		t.Errorf("long word: %d parts", len(parts))
	}
}
