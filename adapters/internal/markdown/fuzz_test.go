package markdown

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters/internal/fuzzkit"
)

// FuzzSplit cuts arbitrary text, seeded with the channel fixtures under
// testdata/ (payloads and mail, whose text is what agents quote back), at
// arbitrary limits: it never panics; every chunk fits (a single rune may
// exceed a limit smaller than itself), is not blank and is valid UTF-8
// where the text was; the chunks are not much larger than the text; and a
// chunk split again is itself.
func FuzzSplit(f *testing.F) {
	for _, b := range fuzzkit.Fixtures(f, "../../../testdata/*/*") {
		f.Add(string(b), uint16(200), uint8(Runes), true)
	}
	for _, s := range []string{
		"",
		"\n\n   \n",
		"```go\ncode\n\n\nmore code\n",
		"~~~~\n```\n~~~\n~~~~~\nafter",
		strings.Repeat("word ", 100),
		"<https://example.com/" + strings.Repeat("x", 80) + "|a label with spaces> tail",
		"   leading spaces then a very long line " + strings.Repeat("ab ", 40),
		strings.Repeat("日本語🎉", 30),
		"\r\n\r\ntext\r\n\r\n",
		"\xff\xfe invalid \xc3",
		"```" + strings.Repeat("i", 60) + "\n" + strings.Repeat("x\n", 50),
	} {
		f.Add(s, uint16(40), uint8(Runes), false)
		f.Add(s, uint16(7), uint8(UTF16), true)
		f.Add(s, uint16(3), uint8(Bytes), false)
	}
	f.Fuzz(func(t *testing.T, text string, max uint16, unit uint8, angles bool) {
		if len(text) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		o := SplitOptions{Max: 1 + int(max)%5000, Unit: Unit(unit % 3), KeepAngles: angles}
		chunks := Split(text, o)
		total := 0
		for i, c := range chunks {
			total += len(c)
			if n := o.Unit.Len(c); n > o.Max && utf8.RuneCountInString(c) > 1 {
				t.Fatalf("chunk %d is %d units long, over the limit %d: %q", i, n, o.Max, c)
			}
			if strings.TrimSpace(c) == "" {
				t.Fatalf("chunk %d is blank: %q (all %q)", i, c, chunks)
			}
			if utf8.ValidString(text) && !utf8.ValidString(c) {
				t.Fatalf("chunk %d is not valid UTF-8: %q", i, c)
			}
			if again := Split(c, o); len(again) != 1 || again[0] != c {
				t.Fatalf("chunk %d split again gives %q, want itself %q", i, again, c)
			}
		}
		if bound := 8*len(text) + 1024; total > bound {
			t.Fatalf("%d bytes of chunks from %d bytes of text (max %d)", total, len(text), o.Max)
		}
	})
}

// FuzzGuard guards arbitrary text, seeded with texts past each bound: it
// never panics, only adds backslashes, and at most one a byte.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{"", "[a](" + strings.Repeat("[a](", 2000), strings.Repeat(">", 40) + "a", strings.Repeat("1. ", 20),
		strings.Repeat("|a", 40) + "\n" + strings.Repeat("|-", 40) + "\n" + strings.Repeat("x\n", 200), "```\n" + strings.Repeat("> ", 30) + "\n```"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		g := Guard(text)
		if strings.ReplaceAll(g, `\`, "") != strings.ReplaceAll(text, `\`, "") {
			t.Fatalf("Guard(%q) = %q changed more than backslashes", text, g)
		}
		if len(g) > 2*len(text)+1 {
			t.Fatalf("Guard added %d bytes to %d", len(g)-len(text), len(text))
		}
	})
}
