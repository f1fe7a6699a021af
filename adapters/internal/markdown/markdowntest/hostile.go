// Package markdowntest holds the hostile inputs the text converters of the
// channel adapters are benchmarked and tested with: texts built to make a
// converter that rescans its input, or that restores placeholders one by
// one, take time quadratic in the input's length.
package markdowntest

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// Input is one hostile text.
type Input struct {
	Name string
	Text string
	// Unit is the piece Text repeats; Unit's letters 'a' are the plain text
	// a conversion must keep (see CountA).
	Unit string
}

// Units are the repeated pieces of the hostile inputs: emphasis that opens
// and never closes ("*a "), unclosed code spans, runs of backticks of
// growing length, backslashes, link and macro openers, nested quotes and
// lists, and markup of each converter's source language.
var Units = []struct{ Name, Unit string }{
	{"star", "*a "},
	{"code-span", "`a "},
	{"backslash", `\`},
	{"backslash-a", `\\a `},
	{"escaped-star", `\*a `},
	{"underscore", "_a "},
	{"dash", "-a "},
	{"plus", "+a "},
	{"caret", "^a "},
	{"tilde", "~a "},
	{"strike", "~~a "},
	{"bold", "**a "},
	{"cite", "??a "},
	{"monospace", "{{a "},
	{"bracket", "[a "},
	{"mention", "[~a "},
	{"link", "[a]("},
	{"image", "!a.png|"},
	{"bang", "!a "},
	{"brace", "{a "},
	{"paren", "(a "},
	{"emoticon", "(x)a "},
	{"autolink", "<http://a "},
	{"url", "http://a "},
	{"angle", "<a "},
	{"amp", "&a "},
	{"quote", ">"},
	{"quote-lines", "> a\n"},
	{"list-marks", "*"},
	{"list-lines", "* a\n"},
	{"hash", "#"},
	{"pipe", "|a"},
	{"fence", "```a\n"},
	{"wiki-quote", "{quote}a "},
	{"wiki-code", "{code}a "},
	{"html-comment", "<!--<a>"},
	{"html-tag", "<a href='a' "},
	{"newlines", "a\n"},
	{"long-word", "a"},
}

// Inputs returns each hostile text, about size bytes long.
func Inputs(size int) []Input {
	out := make([]Input, 0, len(Units)+1)
	for _, u := range Units {
		out = append(out, Input{Name: u.Name, Text: strings.Repeat(u.Unit, max(size/len(u.Unit), 1)), Unit: u.Unit})
	}
	out = append(out, Input{Name: "backtick-runs", Text: BacktickRuns(size), Unit: ""})
	return out
}

// BacktickRuns returns about size bytes of backtick runs of growing
// lengths (1, 2, 3, …) separated by "a", none of which closes another.
func BacktickRuns(size int) string {
	var b strings.Builder
	for n := 1; b.Len() < size; n++ {
		b.WriteString(strings.Repeat("`", n))
		b.WriteString("a")
	}
	return b.String()
}

// CountA counts the letters 'a' of s: the plain text of a hostile input,
// which a conversion must not lose.
func CountA(s string) int { return strings.Count(s, "a") }

// Bench runs convert on each hostile input of 1 MiB, as a sub-benchmark
// named after the input; ns/op is the time one conversion of 1 MiB takes,
// which stays well under 100 ms for a linear scanner, and under a second
// for a renderer of goldmark's tree (markdown.Render), linear but slower.
func Bench(b *testing.B, convert func(string) string) {
	for _, in := range Inputs(1 << 20) {
		b.Run(in.Name, func(b *testing.B) {
			b.SetBytes(int64(len(in.Text)))
			for b.Loop() {
				convert(in.Text)
			}
		})
	}
}

// KeepsText converts each hostile input of size bytes and fails t when the
// result holds fewer letters 'a' than the input: a conversion may add text
// but must not lose any. lossy names the inputs whose 'a's convert may drop
// on purpose (markup it removes), with why.
func KeepsText(t *testing.T, size int, convert func(string) string, lossy map[string]string) {
	t.Helper()
	for _, in := range Inputs(size) {
		if _, ok := lossy[in.Name]; ok {
			continue
		}
		if got, want := CountA(convert(in.Text)), CountA(in.Text); got < want {
			t.Errorf("%s: the conversion of %d bytes of %q keeps %d of its %d letters a", in.Name, len(in.Text), in.Unit, got, want)
		}
	}
}

// Texts returns n texts of up to max pieces each, drawn at random from
// pieces, the same on every run: inputs to check a hand-written scanner
// against the regular expression it stands for. With testing.Short, n is
// cut to a tenth.
func Texts(n, max int, pieces []string) []string {
	if testing.Short() {
		n /= 10
	}
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for range rng.IntN(max + 1) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		out[i] = b.String()
	}
	return out
}
