package github

import (
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

// The hostile-input benchmarks: finding the triggers of a comment body and
// splitting a reply take about 1 MiB of each input of markdowntest.Inputs
// in well under 100 ms (ns/op), because each runs in time linear in its
// input.

var hostileAddresser = addresser{names: []string{"switchboard-app[bot]", "switchboard-app", "agent"}, command: "/agent"}

func BenchmarkAddressHostile(b *testing.B) {
	markdowntest.Bench(b, func(s string) string { text, _ := hostileAddresser.address("@agent " + s); return text })
}

func BenchmarkSplitHostile(b *testing.B) {
	markdowntest.Bench(b, func(s string) string { return strings.Join(split(s, DefaultMaxChars-markerRoom), "") })
}

func TestAddressHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, func(s string) string { text, _ := hostileAddresser.address("@agent " + s); return text }, nil)
}

func TestSplitHostileKeepsText(t *testing.T) {
	markdowntest.KeepsText(t, 64<<10, func(s string) string { return strings.Join(split(s, DefaultMaxChars-markerRoom), "") }, nil)
}
