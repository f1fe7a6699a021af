package email

import (
	"strings"
	"testing"
)

// TestMarkdownToHTML: the text/html alternative shows the Markdown's
// structure (CommonMark with GitHub's extensions) and passes on no markup
// or dangerous link from the text.
func TestMarkdownToHTML(t *testing.T) {
	h := MarkdownToHTML("# Plan\n\n1. **build** it\n2. _test_ it\n\n- [x] done\n\n> quoted\n\n| a | b |\n|---|---|\n| 1 | ~~2~~ |\n\n" +
		"[run](javascript:alert(1)) <img src=x onerror=alert(1)> <https://e.com/x>\n\n<div onclick=\"x\">block</div>\n")
	for _, want := range []string{
		"<!DOCTYPE html>\n<html><body>\n", "<h1>Plan</h1>", "<ol>\n<li><strong>build</strong> it</li>", "<em>test</em>",
		`<input checked="" disabled="" type="checkbox"`, "<blockquote>\n<p>quoted</p>", "<table>", "<del>2</del>",
		`<a href="">run</a>`, `<a href="https://e.com/x">https://e.com/x</a>`, "</body></html>\n",
		// Raw HTML is shown as the text it is, not dropped with its text.
		"&lt;img src=x onerror=alert(1)&gt;", "<p>&lt;div onclick=&#34;x&#34;&gt;block&lt;/div&gt;</p>",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("html lacks %q:\n%s", want, h)
		}
	}
	for _, bad := range []string{"javascript:", "<img", "<div"} {
		if strings.Contains(h, bad) {
			t.Errorf("html holds %q:\n%s", bad, h)
		}
	}
}
