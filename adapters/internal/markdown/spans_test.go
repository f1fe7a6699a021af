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
