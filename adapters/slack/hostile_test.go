package slack

import (
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

// The hostile-input benchmarks: each converter runs in time linear in its
// input. split and render take about 1 MiB of each input of
// markdowntest.Inputs in well under 100 ms (ns/op); toMrkdwn, which parses
// with goldmark (markdown.Render: guarded, in parts of bounded size), takes
// 15 to 700 ms of CPU, about the same per byte at 256 KiB, 1 MiB and 4 MiB.

func BenchmarkToMrkdwnHostile(b *testing.B) { markdowntest.Bench(b, toMrkdwn) }

func BenchmarkSplitHostile(b *testing.B) {
	markdowntest.Bench(b, func(s string) string { return strings.Join(split(s, DefaultMaxChars), "") })
}

func BenchmarkRenderHostile(b *testing.B) {
	markdowntest.Bench(b, func(s string) string { return render(s, func(string) string { return "" }) })
}

func TestToMrkdwnHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, toMrkdwn, map[string]string{
		"fence": "the language of a fenced code block is dropped, as Slack shows none",
	})
}

func TestSplitHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, func(s string) string { return strings.Join(split(s, DefaultMaxChars), "") }, nil)
}

func TestRenderHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, func(s string) string { return render(s, func(string) string { return "" }) }, nil)
}

// TestToMrkdwnDeepQuotes checks that quotes nested many levels deep keep
// every level and the text.
func TestToMrkdwnDeepQuotes(t *testing.T) {
	if got, want := toMrkdwn(strings.Repeat(">", 5)+" *a*"), strings.Repeat("> ", 5)+"_a_"; got != want {
		t.Errorf("toMrkdwn = %q, want %q", got, want)
	}
}

// TestToMrkdwnLinkLabelWithCode checks that a placeholder set aside inside
// another (a code span in a link's label) is restored too.
func TestToMrkdwnLinkLabelWithCode(t *testing.T) {
	if got, want := toMrkdwn("see [`x` docs](https://x.io)"), "see <https://x.io|`x` docs>"; got != want {
		t.Errorf("toMrkdwn = %q, want %q", got, want)
	}
}
