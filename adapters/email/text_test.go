package email

import (
	"testing"
)

func TestHTMLToText(t *testing.T) {
	for _, tc := range []struct {
		name, in   string
		dropQuotes bool
		want       string
	}{
		{"paragraphs", "<p>a</p><p>b<br>c</p>", false, "a\n\nb\nc"},
		{"white space", "  a \n\t b&nbsp;&nbsp;c <b> d </b> e  ", false, "a b c d e"},
		{"entities", "&lt;p&gt; &amp; &#x1F600; &copy; &bogus;", false, "<p> & 😀 © &bogus;"},
		{"dropped", "<head><title>t</title><style>p{}</style></head><script>if (a<b) x()</script>a<style>x</style>", false, "a"},
		{"head without its end", "<head><meta x><body>a", false, "a"},
		{"comment and doctype", "<!DOCTYPE html><!-- <p>x</p> -->a<![CDATA[x]]>b", false, "ab"},
		{"bullets", "<ul><li>a<li>b</ul>", false, "- a\n- b"},
		{"numbers", "<ol start=3><li>a</li><li>b</li></ol>", false, "3. a\n4. b"},
		{"nested", "<ul><li>a<ol><li>b</li></ol></li><li>c</li></ul>", false, "- a\n  1. b\n- c"},
		{"link", `<a href="https://e.com/x">label</a> <a href="https://e.com">e.com</a> <a href="mailto:a@b">a</a>`, false, "label (https://e.com/x) e.com a"},
		{"link without end", `<a href="https://e.com/1">one<a href="https://e.com/2">two</a>`, false, "one (https://e.com/1)two (https://e.com/2)"},
		{"table", "<table><tr><td>a</td><td>b</td></tr><tr><th>c</th><th>d</th></tr></table>x", false, "a b\nc d\n\nx"},
		{"pre", "<p>see</p><pre>\nfunc f() {\n\treturn 1 &lt; 2\n}\n</pre>after", false, "see\n\nfunc f() {\n\treturn 1 < 2\n}\n\nafter"},
		{"unfinished tag is text", "a <b c", false, "a <b c"},
		{"quote kept", "a<blockquote>q</blockquote>b", false, "a\n\nq\n\nb"},
		{"quote dropped", "a<blockquote>q<blockquote>r</blockquote>s</blockquote>b", true, "a\n\nb"},
		{"gmail marker", `new<div class="gmail_quote extra"><div>On … wrote:</div>old</div>`, true, "new"},
		{"marker case and id", `new<div ID="divRplyFwdMsg">old`, true, "new"},
		{"not a marker", `new<div class="gmail_quote_container_x">kept</div>`, true, "new\nkept"},
		{"marker kept without dropQuotes", `new<div class="gmail_quote">old</div>`, false, "new\nold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HTMLToText(tc.in, tc.dropQuotes); got != tc.want {
				t.Errorf("HTMLToText(%q, %v):\n got %q\nwant %q", tc.in, tc.dropQuotes, got, tc.want)
			}
		})
	}
}
