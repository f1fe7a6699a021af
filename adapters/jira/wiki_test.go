package jira

import (
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
)

// The regular expressions that the line parsers and scanners of wiki.go
// replace: each must give the same answers.
var (
	headingWRe  = regexp.MustCompile(`^\s*h([1-6])\.\s+(.*)$`)
	bqRe        = regexp.MustCompile(`^\s*bq\.\s+(.*)$`)
	listWRe     = regexp.MustCompile(`^\s*([*#]+|-)\s+(.*)$`)
	preRe       = regexp.MustCompile(`\{(code|noformat)(?::([^}\n]*))?\}`)
	panelRe     = regexp.MustCompile(`\{(panel)(?::([^}\n]*))?\}`)
	inlineMacro = regexp.MustCompile(`\{(?:color(?::[^}\n]*)?|anchor:[^}\n]*)\}`)
	monoRe      = regexp.MustCompile(`\{\{(.+?)\}\}`)
	mentionWRe  = regexp.MustCompile(`\[~([^\[\]\n|]+)\]`)
	linkWRe     = regexp.MustCompile(`\[([^\[\]\n]*)\]`)
	imageRe     = regexp.MustCompile(`!([^\s!|][^!|\n]*\.[A-Za-z0-9]{2,5}|https?://[^\s!|]+)(?:\|[^!\n]*)?!`)
	citeRe      = regexp.MustCompile(`\?\?(\S(?:[^?\n]*\S)?)\?\?`)
)

func TestWikiLineParsers(t *testing.T) {
	type want struct {
		heading, quote, list, rule bool
		level                      int
		marks, text                string
	}
	for line, w := range map[string]want{
		"h1. Title":        {heading: true, level: 1, text: "Title"},
		" \th6.\t\tsmall ": {heading: true, level: 6, text: "small "},
		"h7. no":           {},
		"h1.no":            {},
		"h1. ":             {heading: true, level: 1},
		"h1.":              {},
		"\vh1. x":          {}, // \s has no \v
		"h":                {},
		"bq. a quote":      {quote: true, text: "a quote"},
		"bq.":              {},
		"bq.x":             {},
		"  bq.  é":         {quote: true, text: "é"},
		"----":             {rule: true},
		" ------ \t":       {rule: true},
		"---":              {},
		"---- x":           {},
		"* a":              {list: true, marks: "*", text: "a"},
		"#*# a b":          {list: true, marks: "#*#", text: "a b"},
		"- a":              {list: true, marks: "-", text: "a"},
		"-- a":             {},
		"*bold*":           {},
		"*":                {},
		"* ":               {list: true, marks: "*"},
		"\t** \tx":         {list: true, marks: "**", text: "x"},
		"- ----":           {list: true, marks: "-", text: "----"},
		"":                 {},
		" ":                {},
	} {
		var got want
		got.level, got.text, got.heading = wikiHeading(line)
		if text, ok := wikiQuoteLine(line); ok {
			got.quote, got.text = true, text
		}
		if marks, text, ok := wikiListItem(line); ok {
			got.list, got.marks, got.text = true, marks, text
		}
		got.rule = wikiRule(line)
		if got != w {
			t.Errorf("%q: got %+v, want %+v", line, got, w)
		}
		checkLineParsers(t, line)
	}
}

// checkLineParsers checks the line parsers against the regular
// expressions they replace.
func checkLineParsers(t *testing.T, line string) {
	t.Helper()
	m := headingWRe.FindStringSubmatch(line)
	if level, text, ok := wikiHeading(line); ok != (m != nil) || ok && (m[1] != string(rune('0'+level)) || m[2] != text) {
		t.Errorf("wikiHeading(%q) = %d, %q, %v; regexp %q", line, level, text, ok, m)
	}
	m = bqRe.FindStringSubmatch(line)
	if text, ok := wikiQuoteLine(line); ok != (m != nil) || ok && m[1] != text {
		t.Errorf("wikiQuoteLine(%q) = %q, %v; regexp %q", line, text, ok, m)
	}
	m = listWRe.FindStringSubmatch(line)
	if marks, text, ok := wikiListItem(line); ok != (m != nil) || ok && (m[1] != marks || m[2] != text) {
		t.Errorf("wikiListItem(%q) = %q, %q, %v; regexp %q", line, marks, text, ok, m)
	}
	if got, want := wikiRule(line), ruleWRe.MatchString(line); got != want {
		t.Errorf("wikiRule(%q) = %v, regexp %v", line, got, want)
	}
}

// span is a span a scanner found, with the groups the regular expression
// would capture ("-" for a group that takes no part).
type span struct {
	start, end int
	groups     string
}

// scanner makes one kind of scanner for a text.
type scanner struct {
	name string
	re   *regexp.Regexp
	scan func(s string) []span
}

var scanners = []scanner{
	{"tags", preRe, func(s string) []span {
		sc := newTagScanner(s, "", "code", "noformat")
		return scanSpans(&sc, func() string { return tagGroups(&sc) })
	}},
	{"panels", panelRe, func(s string) []span {
		sc := newTagScanner(s, "", "panel")
		return scanSpans(&sc, func() string { return tagGroups(&sc) })
	}},
	{"macros", inlineMacro, func(s string) []span {
		sc := newTagScanner(s, "anchor", "color", "anchor")
		return scanSpans(&sc, func() string { return "" })
	}},
	{"mono", monoRe, func(s string) []span {
		sc := newMonoScanner(s)
		return scanSpans(&sc, func() string { return "" })
	}},
	{"mentions", mentionWRe, func(s string) []span {
		sc := newMentionScanner(s)
		return scanSpans(&sc, func() string { return "" })
	}},
	{"links", linkWRe, func(s string) []span {
		sc := newLinkScanner(s)
		return scanSpans(&sc, func() string { return "" })
	}},
	{"images", imageRe, func(s string) []span {
		sc := newImageScanner(s)
		return scanSpans(&sc, func() string { return sc.name })
	}},
	{"cites", citeRe, func(s string) []span {
		sc := newCiteScanner(s)
		return scanSpans(&sc, func() string { return "" })
	}},
}

// scanSpans returns every span sc finds, as regexp's FindAll does, each
// with groups() after it was found.
func scanSpans(sc spanScanner, groups func() string) []span {
	var out []span
	for from := 0; ; {
		start, end := sc.next(from)
		if start < 0 {
			return out
		}
		out = append(out, span{start, end, groups()})
		from = end
	}
}

// tagGroups returns the name and parameters of the last tag sc found.
func tagGroups(sc *tagScanner) string { return sc.name + "/" + sc.params }

// reSpans returns the spans re finds in s, in the form of scanner's.
func reSpans(sc scanner, s string) []span {
	var out []span
	for _, m := range sc.re.FindAllStringSubmatchIndex(s, -1) {
		groups := ""
		switch sc.name {
		case "tags", "panels":
			params := ""
			if m[4] >= 0 {
				params = s[m[4]:m[5]]
			}
			groups = s[m[2]:m[3]] + "/" + params
		case "images":
			groups = s[m[2]:m[3]]
		}
		out = append(out, span{m[0], m[1], groups})
	}
	return out
}

func checkScanners(t *testing.T, s string) {
	t.Helper()
	for _, sc := range scanners {
		if got, want := sc.scan(s), reSpans(sc, s); !reflect.DeepEqual(got, want) {
			t.Errorf("%s in %q: %v, regexp %v", sc.name, s, got, want)
		}
	}
}

func TestWikiScanners(t *testing.T) {
	for _, tc := range []struct {
		scanner, in string
		want        []span
	}{
		{"tags", "{code}", []span{{0, 6, "code/"}}},
		{"tags", "a {code:java} b", []span{{2, 13, "code/java"}}},
		{"tags", "{code:}{noformat}", []span{{0, 7, "code/"}, {7, 17, "noformat/"}}},
		{"tags", "{code:a\nb}", nil},
		{"tags", "{code:{code}", []span{{0, 12, "code/{code"}}},
		{"tags", "{codex} {code", nil},
		{"tags", "{{code}}", []span{{1, 7, "code/"}}},
		{"tags", "{code:é|x=1}", []span{{0, 13, "code/é|x=1"}}},
		{"panels", "{panel:title=T|a=b}x{panel}", []span{{0, 19, "panel/title=T|a=b"}, {20, 27, "panel/"}}},
		{"macros", "{color:red}a{color} {anchor:x}", []span{{0, 11, ""}, {12, 19, ""}, {20, 30, ""}}},
		{"macros", "{anchor} {colour} {color:\n}", nil},
		{"mono", "{{a}}", []span{{0, 5, ""}}},
		{"mono", "{{}}", nil},
		{"mono", "{{}}}", []span{{0, 5, ""}}},
		{"mono", "{{{a}}}", []span{{0, 6, ""}}},
		{"mono", "{{a {{b}}", []span{{0, 9, ""}}},
		{"mono", "{{a\nb}} {{c}}", []span{{8, 13, ""}}},
		{"mono", "{{é}}{{b}}", []span{{0, 6, ""}, {6, 11, ""}}},
		{"mono", "{{a {{b", nil},
		{"mentions", "[~a] [~]", []span{{0, 4, ""}}},
		{"mentions", "[~a|b] [~a\nb] [~a", nil},
		{"mentions", "[~[~a] [[~é]]", []span{{2, 6, ""}, {8, 13, ""}}},
		{"links", "[a] [] [a|b]", []span{{0, 3, ""}, {4, 6, ""}, {7, 12, ""}}},
		{"links", "[[a]] [é]", []span{{1, 4, ""}, {6, 10, ""}}},
		{"links", "[a\nb] ]a[ [a", nil},
		{"images", "!a.png! !a.png|thumb!", []span{{0, 7, "a.png"}, {8, 21, "a.png"}}},
		{"images", "!a.b.gif! !é.jpeg!", []span{{0, 9, "a.b.gif"}, {10, 19, "é.jpeg"}}},
		{"images", "!.png! !a.p! !a.pngxyz! ! a.png! !a.png", nil},
		{"images", "!a.png|x\n! wow! nice! !!", nil},
		{"images", "!!a.png!", []span{{1, 8, "a.png"}}},
		{"images", "!https://x/y! !http://x|a!", []span{{0, 13, "https://x/y"}, {14, 26, "http://x"}}},
		{"images", "!http://x y!", nil},
		{"cites", "??a?? ??a b??", []span{{0, 5, ""}, {6, 13, ""}}},
		{"cites", "?? a?? ??a ?? ???? ??a\nb?? ??a", nil},
		{"cites", "??a???", []span{{0, 6, ""}}},
		{"cites", "???a??", []span{{0, 6, ""}}},
		{"cites", "??é??", []span{{0, 6, ""}}},
	} {
		i := 0
		for scanners[i].name != tc.scanner {
			i++
		}
		if got := scanners[i].scan(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s in %q: %v, want %v", tc.scanner, tc.in, got, tc.want)
		}
		checkScanners(t, tc.in)
	}
}

// wikiPieces are the pieces of the texts TestWikiScannersMatchRegexps
// makes up.
var wikiPieces = []string{
	"{", "}", "{{", "}}", "[", "]", "[~", "~", "|", "!", "?", "??", ".", ":", "\n", "\t", " ", "\v", "\f", "a", "b", "é", "\xff", "\xe2\x82",
	"code", "noformat", "panel", "color", "anchor", "png", "gif", "abcdef", "http://", "https://", "h1.", "bq.", "*", "#", "-", "----",
}

// TestWikiScannersMatchRegexps checks the scanners and line parsers
// against the regular expressions they replace on made-up texts.
func TestWikiScannersMatchRegexps(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for range 20000 {
		var b strings.Builder
		for range 1 + rng.IntN(16) {
			b.WriteString(wikiPieces[rng.IntN(len(wikiPieces))])
		}
		s := b.String()
		checkScanners(t, s)
		for line := range strings.SplitSeq(s, "\n") {
			checkLineParsers(t, line)
		}
		if t.Failed() {
			return
		}
	}
}

// FuzzWikiScanners checks the scanners and line parsers against the
// regular expressions they replace.
func FuzzWikiScanners(f *testing.F) {
	for _, s := range append(wikiPieces, fuzzMarkup...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4<<10 {
			t.Skip("input over 4 KiB")
		}
		checkScanners(t, s)
		for line := range strings.SplitSeq(s, "\n") {
			checkLineParsers(t, line)
		}
	})
}

func TestFindPre(t *testing.T) {
	for in, want := range map[string][2]int{
		"{code}":                    {0, 6},
		`\{code} {{code}} {code:x}`: {17, 25},
		"{{noformat}}":              {-1, -1},
		"{code{code}":               {5, 11},
	} {
		pre := newTagScanner(in, "", "code", "noformat")
		if start, end := findPre(&pre, 0); start != want[0] || end != want[1] {
			t.Errorf("findPre(%q) = %d, %d; want %d, %d", in, start, end, want[0], want[1])
		}
	}
}

// TestEscapesKeepRuns checks that a run of escapes is set aside as one
// placeholder, not one each.
func TestEscapesKeepRuns(t *testing.T) {
	var kept markdown.Placeholders
	got := kept.Restore(escapes(`a\*\_\\b\[ \\`, kept.Keep))
	if want := "a*_\nb[ \n"; got != want {
		t.Errorf("escapes restored: %q, want %q", got, want)
	}
	if kept.Len() != 3 {
		t.Errorf("%d placeholders, want 3", kept.Len())
	}
}

func TestEachCell(t *testing.T) {
	for in, want := range map[string][]string{
		"|a|b|":                {"a", "b"},
		"||h1||h2||":           {"h1", "h2"},
		"|[x|y]|{{a|b}}|c\\|d": {"[x|y]", "{{a|b}}", "c\\|d"},
		"| |a| ":               {" ", "a"},
		"|":                    nil,
		"|é|}}|":               {"é", "}}"},
		"a|b":                  {"a", "b"},
	} {
		var got []string
		eachCell(in, func(cell string) { got = append(got, cell) })
		if !reflect.DeepEqual(got, want) {
			t.Errorf("eachCell(%q): %q, want %q", in, got, want)
		}
	}
}

// BenchmarkWikiToMarkdown measures converting a long wiki markup comment
// of the usual constructs to Markdown.
func BenchmarkWikiToMarkdown(b *testing.B) {
	para := "h2. Findings\nThe *build* fails on _main_ since [~accountid:" + graceID + "], see [the log|https://ci.example.com/run/42?x=1] and {{make test}}.\n" +
		"* first item with -strike- and ??a cite??\n** nested [PROJ-12] item\n# numbered !shot.png|thumbnail!\n\n" +
		"||name||value||\n|a|{{b|c}}|\n{quote}\nquoted line\n{quote}\n{code:go}\nfunc main() {}\n{code}\nplain text line with no markup at all\n\n"
	wiki := strings.Repeat(para, 40)
	b.SetBytes(int64(len(wiki)))
	for b.Loop() {
		wikiToMarkdown(wiki, testMention)
	}
}
