package markdown

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplit(t *testing.T) {
	p := func(c string, n int) string { return strings.Repeat(c, n) }
	for _, tc := range []struct {
		name string
		text string
		o    SplitOptions
		want []string
	}{
		{"blank", " \r\n\n \t", SplitOptions{Max: 10}, nil},
		{"fits, normalised", "\n  \n  indented\r\nnext  \n\n", SplitOptions{Max: 100}, []string{"  indented\nnext"}},
		{"paragraphs packed", p("a", 4) + "\n\n" + p("b", 4) + "\n\n\n" + p("c", 4), SplitOptions{Max: 10},
			[]string{"aaaa\n\nbbbb", "cccc"}},
		{"fence is its own block", "intro\n```\nx\n```\nafter", SplitOptions{Max: 12},
			[]string{"intro", "```\nx\n```", "after"}},
		{"lines, then words", "one two three\nfour", SplitOptions{Max: 9},
			[]string{"one two", "three", "four"}},
		{"hard cut on runes", p("é", 7), SplitOptions{Max: 3}, []string{"ééé", "ééé", "é"}},
		{"hard cut on bytes", p("é", 4), SplitOptions{Max: 5, Unit: Bytes}, []string{"éé", "éé"}},
		{"hard cut on utf16", p("😀", 3), SplitOptions{Max: 4, Unit: UTF16}, []string{"😀😀", "😀"}},
		{"angles kept", "aa <u|b c> dd", SplitOptions{Max: 9, KeepAngles: true}, []string{"aa", "<u|b c>", "dd"}},
		{"angles not kept", "aa <u|b c> dd", SplitOptions{Max: 9}, []string{"aa <u|b", "c> dd"}},
		{"code reopened with info", "```go\na\n\nb\nc\n```", SplitOptions{Max: 14},
			[]string{"```go\na\n\nb\n```", "```go\nc\n```"}},
		{"unclosed code closed", "~~~\naa\nbb\ncc", SplitOptions{Max: 10},
			[]string{"~~~\naa\n~~~", "~~~\nbb\n~~~", "~~~\ncc\n~~~"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Split(tc.text, tc.o); !slices.Equal(got, tc.want) {
				t.Errorf("Split(%q, %+v)\n got %q\nwant %q", tc.text, tc.o, got, tc.want)
			}
		})
	}
}

func TestSplitFenceAfterProseStaysBalanced(t *testing.T) {
	// A code block right after a line of prose (no blank line) is still a
	// block of its own: cut on its own and reopened, never split unfenced.
	code := strings.Repeat("line of code\n", 10)
	text := "Look:\n```sh\n" + code + "```\nDone."
	got := Split(text, SplitOptions{Max: 60})
	if len(got) < 3 {
		t.Fatalf("chunks = %q", got)
	}
	var body []string
	for i, c := range got {
		if n := utf8.RuneCountInString(c); n > 60 {
			t.Errorf("chunk %d has %d runes", i, n)
		}
		if strings.Count(c, "```")%2 != 0 {
			t.Errorf("chunk %d is unbalanced: %q", i, c)
		}
		for _, l := range strings.Split(c, "\n") {
			if l == "line of code" {
				body = append(body, l)
			}
		}
	}
	if len(body) != 10 {
		t.Errorf("%d code lines kept, want 10: %q", len(body), got)
	}
	if !strings.HasPrefix(got[0], "Look:") || !strings.HasSuffix(got[len(got)-1], "Done.") {
		t.Errorf("order lost: %q", got)
	}
}

func TestSplitRejoins(t *testing.T) {
	// Cut only between blocks, the chunks joined by their separators give
	// the text back.
	var paras []string
	for i := range 20 {
		paras = append(paras, strings.Repeat(string(rune('a'+i)), 10+i))
	}
	text := strings.Join(paras, "\n\n")
	got := Split(text, SplitOptions{Max: 70})
	if len(got) < 3 {
		t.Fatalf("chunks = %q", got)
	}
	if strings.Join(got, "\n\n") != text {
		t.Errorf("chunks do not rebuild the text: %q", got)
	}
}

func TestSplitTinyMaxProgresses(t *testing.T) {
	// A limit smaller than one rune still cuts one rune at a time.
	got := Split("日本", SplitOptions{Max: 1, Unit: Bytes})
	if !slices.Equal(got, []string{"日", "本"}) {
		t.Errorf("got %q", got)
	}
}

func TestUnitLen(t *testing.T) {
	s := "aé😀"
	for u, want := range map[Unit]int{Runes: 3, Bytes: 7, UTF16: 4} {
		if got := u.Len(s); got != want {
			t.Errorf("Unit(%d).Len(%q) = %d, want %d", u, s, got, want)
		}
	}
}

func TestFence(t *testing.T) {
	for _, tc := range []struct {
		line, fence, info string
		ok                bool
	}{
		{"```", "```", "", true},
		{"   ````go run", "````", "go run", true},
		{"~~~ py ", "~~~", "py", true},
		{"    ```", "", "", false},
		{"``", "", "", false},
		{"```a`b", "", "", false},
		{"~~~a`b", "~~~", "a`b", true},
	} {
		f, info, ok := Fence(tc.line)
		if f != tc.fence || info != tc.info || ok != tc.ok {
			t.Errorf("Fence(%q) = %q, %q, %v; want %q, %q, %v", tc.line, f, info, ok, tc.fence, tc.info, tc.ok)
		}
	}
	for _, tc := range []struct {
		line, fence string
		want        bool
	}{
		{"```", "```", true},
		{"````  ", "```", true},
		{"``", "```", false},
		{"```", "````", false},
		{"~~~", "```", false},
		{"```go", "```", false},
	} {
		if got := Closes(tc.line, tc.fence); got != tc.want {
			t.Errorf("Closes(%q, %q) = %v", tc.line, tc.fence, got)
		}
	}
}
