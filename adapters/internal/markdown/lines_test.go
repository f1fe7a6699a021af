package markdown

import (
	"regexp"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/adapters/internal/markdown/markdowntest"
)

// TestLinePatterns checks the hand-written line parsers against the
// regular expressions they replace.
func TestLinePatterns(t *testing.T) {
	bulletRe := regexp.MustCompile(`^([ \t]*)[-*+][ \t]+(.*)$`)
	orderedRe := regexp.MustCompile(`^([ \t]*)([0-9]{1,9})[.)][ \t]+(.*)$`)
	taskRe := regexp.MustCompile(`^\[([ xX])\][ \t]+(.*)$`)
	ruleRe := regexp.MustCompile(`^ {0,3}([-*_])(?:[ \t]*([-*_])){2,}[ \t]*$`)
	quoteRe := regexp.MustCompile(`^ {0,3}>[ \t]?(.*)$`)
	for _, line := range []string{
		"", " ", "-", "- ", "-  a", "\t* b c", "+\tx", "-a", "*bold*", "  - [ ] task", "[x] done", "[X]\tdone", "[ ]x", "[y] no",
		"1. one", "123456789) n", "1234567890. long", "1.x", "  7.  seven", "1.", "1. ", "---", " * * *", "___ _", "    ---", "--", "-- -a",
		"- - -", "> q", ">q", ">  q", "   > q", "    > q", ">", ">\tq", "a > b",
	} {
		if m := bulletRe.FindStringSubmatch(line); true {
			indent, item, ok := Bullet(line)
			if ok != (m != nil) || ok && (indent != m[1] || item != m[2]) {
				t.Errorf("Bullet(%q) = %q, %q, %v; regexp %q", line, indent, item, ok, m)
			}
		}
		if m := orderedRe.FindStringSubmatch(line); true {
			indent, num, item, ok := Ordered(line)
			if ok != (m != nil) || ok && (indent != m[1] || num != m[2] || item != m[3]) {
				t.Errorf("Ordered(%q) = %q, %q, %q, %v; regexp %q", line, indent, num, item, ok, m)
			}
		}
		if m := taskRe.FindStringSubmatch(line); true {
			done, text, ok := Task(line)
			if ok != (m != nil) || ok && (done != (m[1] != " ") || text != m[2]) {
				t.Errorf("Task(%q) = %v, %q, %v; regexp %q", line, done, text, ok, m)
			}
		}
		if got, want := Rule(line), ruleRe.MatchString(line); got != want {
			t.Errorf("Rule(%q) = %v, regexp %v", line, got, want)
		}
		if m := quoteRe.FindStringSubmatch(line); true {
			inner, ok := Quote(line)
			if ok != (m != nil) || ok && inner != m[1] {
				t.Errorf("Quote(%q) = %q, %v; regexp %q", line, inner, ok, m)
			}
		}
	}
}

// TestFenceAgreesWithRegexp checks FenceRun and Fence against the regular
// expressions they replace, on random lines made of the pieces of fences.
func TestFenceAgreesWithRegexp(t *testing.T) {
	runRe := regexp.MustCompile("^ {0,3}(`{3,}|~{3,})(.*)$")
	fenceRe := regexp.MustCompile("^ {0,3}(`{3,}[^`]*|~{3,}.*)$")
	pieces := []string{"`", "```", "~", "~~~", " ", "  ", "\t", "\n", "\r", "a", "go", "é"}
	for _, line := range markdowntest.Texts(30000, 8, pieces) {
		// runRe's (.*) stops at a line break, which the lines of the
		// converters never hold.
		run, rest, ok := FenceRun(line)
		m := runRe.FindStringSubmatch(line)
		if strings.IndexByte(line, '\n') < 0 && ((m != nil) != ok || ok && (m[1] != run || m[2] != rest)) {
			t.Fatalf("FenceRun(%q) = %q, %q, %v; the regexp finds %q", line, run, rest, ok, m)
		}
		if _, _, ok := Fence(line); ok != fenceRe.MatchString(line) {
			t.Fatalf("Fence(%q) = %v, the regexp says %v", line, ok, !ok)
		}
	}
	for line, want := range map[string]string{
		"```go": "```|go", "   ~~~~ x`y": "~~~~| x`y", "    ```": "", "``": "", "``~": "", "~~~": "~~~|", "`````a``": "`````|a``",
	} {
		run, rest, ok := FenceRun(line)
		if got := run + "|" + rest; ok && got != want || !ok && want != "" {
			t.Errorf("FenceRun(%q) = %q, %q, %v, want %q", line, run, rest, ok, want)
		}
	}
}
