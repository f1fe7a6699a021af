package slack

import (
	"regexp"
	"strings"
)

// Slack message text is plain text with three characters escaped (&amp;,
// &lt;, &gt;) and markup in angle brackets: <@U123> user mentions,
// <#C123|general> channels, <!here> and other specials, and links
// <https://x|label>. See https://docs.slack.dev/messaging/formatting-message-text.

var (
	mentionRe = regexp.MustCompile(`<@([UW][A-Z0-9]+)(?:\|[^>]*)?>`)
	unescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")
)

// mentionedUsers returns the distinct user ids mentioned in text, in order.
func mentionedUsers(text string) []string {
	var ids []string
	seen := map[string]bool{}
	for _, m := range mentionRe.FindAllStringSubmatch(text, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			ids = append(ids, m[1])
		}
	}
	return ids
}

// mentions reports whether text mentions user.
func mentions(text, user string) bool {
	if user == "" {
		return false
	}
	for _, m := range mentionRe.FindAllStringSubmatch(text, -1) {
		if m[1] == user {
			return true
		}
	}
	return false
}

// stripLeadingMention removes a mention of user at the start of text, with
// the spaces and ":" or "," that follow it ("<@UBOT>: hello" → "hello").
func stripLeadingMention(text, user string) string {
	rest := strings.TrimLeft(text, " \t\n")
	if user == "" || !strings.HasPrefix(rest, "<@"+user) {
		return text
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return text
	}
	if tag := rest[2:end]; tag != user && !strings.HasPrefix(tag, user+"|") {
		return text // a longer id that starts with user's
	}
	return strings.TrimLeft(rest[end+1:], " \t\n:,")
}

// render turns Slack markup into readable text: <@U123> → "@name" (name from
// users, else the mention's own label, else the id), <#C1|general> →
// "#general", <!here> → "@here", <https://x|label> → "label (https://x)",
// <https://x> → "https://x", and unescapes &amp;, &lt; and &gt;. A link
// whose label is its own URL without the scheme (Slack's auto-links of
// "example.com") renders as the label alone.
func render(text string, users func(id string) string) string {
	var b strings.Builder
	b.Grow(len(text))
	for {
		i := strings.IndexByte(text, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(text[i:], '>')
		if j < 0 {
			break
		}
		b.WriteString(unescaper.Replace(text[:i]))
		b.WriteString(renderEntity(text[i+1:i+j], users))
		text = text[i+j+1:]
	}
	b.WriteString(unescaper.Replace(text))
	return b.String()
}

// renderEntity renders the inside of one <…>.
func renderEntity(s string, users func(id string) string) string {
	target, label, hasLabel := strings.Cut(s, "|")
	label = unescaper.Replace(label)
	switch {
	case strings.HasPrefix(target, "@"):
		id := target[1:]
		if users != nil {
			if name := users(id); name != "" {
				return "@" + name
			}
		}
		if hasLabel && label != "" {
			return "@" + strings.TrimPrefix(label, "@")
		}
		return "@" + id
	case strings.HasPrefix(target, "#"):
		if hasLabel && label != "" {
			return "#" + label
		}
		return target
	case strings.HasPrefix(target, "!"):
		cmd := target[1:]
		if hasLabel && label != "" {
			return label // <!subteam^S1|@eng>, <!date^…|Feb 18>
		}
		name, _, _ := strings.Cut(cmd, "^")
		return "@" + name // <!here>, <!channel>, <!everyone>
	}
	url := unescaper.Replace(target)
	if !hasLabel || label == "" || label == url {
		return strings.TrimPrefix(url, "mailto:")
	}
	if bare := stripScheme(url); label == bare {
		return label
	}
	return label + " (" + url + ")"
}

func stripScheme(url string) string {
	for _, p := range []string{"https://", "http://", "mailto:"} {
		if s, ok := strings.CutPrefix(url, p); ok {
			return s
		}
	}
	return url
}
