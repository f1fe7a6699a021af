package markdown_test

import (
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown"
	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

// The hostile-input benchmarks: Split and CodeSpans take about 1 MiB of
// each input of markdowntest.Inputs in well under 100 ms (ns/op), because
// each runs in time linear in its input.

func BenchmarkSplitHostile(b *testing.B) {
	markdowntest.Bench(b, func(s string) string {
		return strings.Join(markdown.Split(s, markdown.SplitOptions{Max: 4000, KeepAngles: true}), "")
	})
}

func BenchmarkCodeSpansHostile(b *testing.B) {
	markdowntest.Bench(b, func(s string) string {
		return markdown.CodeSpans(s, func(code string) string { return code })
	})
}

func TestSplitHostileKeepsText(t *testing.T) {
	for _, o := range []markdown.SplitOptions{{Max: 100}, {Max: 4000, KeepAngles: true}, {Max: 50, Unit: markdown.UTF16}} {
		markdowntest.KeepsText(t, 64<<10, func(s string) string { return strings.Join(markdown.Split(s, o), "") }, nil)
	}
}

func TestCodeSpansHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, func(s string) string {
		return markdown.CodeSpans(s, func(code string) string { return code })
	}, nil)
}
