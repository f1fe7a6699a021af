package markdown

import "testing"

func TestCodeSpans(t *testing.T) {
	mark := func(code string) string { return "<" + code + ">" }
	for in, want := range map[string]string{
		"no code":                  "no code",
		"run `go test` now":        "run <go test> now",
		"a ``b ` c`` d":            "a <b ` c> d",
		"`` `x` ``":                "<`x`>",
		"unclosed `tick":           "unclosed `tick",
		"mismatched ``a` then `b`": "mismatched ``a<then>b`",
		"`one` and `two`":          "<one> and <two>",
		"``":                       "``",
	} {
		if got := CodeSpans(in, mark); got != want {
			t.Errorf("CodeSpans(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCodeSpansRuns(t *testing.T) {
	mark := func(code string) string { return "<" + code + ">" }
	for in, want := range map[string]string{
		"`a``b```c``d`e":   "<a``b```c``d>e",
		"``a`b``c`":        "<a`b>c`",
		"`a ``b ```c ````": "`a ``b ```c ````",
		"```a` `b```":      "<a` `b>",
	} {
		if got := CodeSpans(in, mark); got != want {
			t.Errorf("CodeSpans(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLongestRun(t *testing.T) {
	for in, want := range map[string]int{"": 0, "abc": 0, "a`b": 1, "``a```b`": 3, "````": 4} {
		if got := LongestRun(in, '`'); got != want {
			t.Errorf("LongestRun(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestPlaceholders(t *testing.T) {
	var p Placeholders
	code := p.Keep("`x`")
	link := p.Keep("[" + code + " docs](u)") // holds the code span's token
	unused := p.Keep("never")
	_ = unused
	s := "see " + link + " and " + code + " \x00not\x00 a token \x009\x00"
	got := p.Restore(s)
	// The code span's token appears twice; only its first use, inside the
	// link, is restored, as each token stands for one span.
	want := "see [`x` docs](u) and \x000\x00 \x00not\x00 a token \x009\x00"
	if got != want {
		t.Errorf("Restore = %q, want %q", got, want)
	}
	if p.Len() != 3 {
		t.Errorf("Len = %d, want 3", p.Len())
	}
	var empty Placeholders
	if got := empty.Restore("a\x000\x00"); got != "a\x000\x00" {
		t.Errorf("Restore without spans = %q", got)
	}
}
