// Package links finds references to code and trackers in free text: GitHub
// pull request, issue and commit URLs, Jira issue URLs and bare Jira keys.
// Adapters whose channels carry prose (Slack, email, Jira) use it to fill an
// envelope's refs, so that a Slack thread and the pull request it talks about
// can steer the same session.
//
// Every function is pure and safe for concurrent use.
package links

import (
	"regexp"
	"strings"

	"github.com/switchboardhq/switchboard/envelope"
)

// Kind says what a Link points at.
type Kind string

// The link kinds.
const (
	GitHubPR     Kind = "github-pr"
	GitHubIssue  Kind = "github-issue"
	GitHubCommit Kind = "github-commit"
	GitHubBranch Kind = "github-branch"
	JiraIssue    Kind = "jira-issue"
)

// Link is one reference found in text.
type Link struct {
	Kind Kind
	// Repo is "owner/name" for GitHub links.
	Repo string
	// Number is the pull request or issue number (GitHubPR, GitHubIssue).
	Number string
	// Commit is a commit sha: GitHubCommit, or a GitHubPR URL that names a
	// commit of the pull request (/pull/42/commits/<sha>).
	Commit string
	// Branch is a branch name (GitHubBranch, from a /tree/<branch> URL).
	Branch string
	// Key is a Jira issue key ("PROJ-123").
	Key string
	// Start and End are the byte offsets of the link in the text.
	Start, End int
}

var (
	// githubURL matches github.com/<owner>/<repo>/<kind>/<rest>, with or
	// without a scheme (Slack turns "github.com/o/r/pull/1" into a link with
	// the bare text as its label).
	githubURL = regexp.MustCompile(`(?i)(?:https?://)?(?:www\.)?github\.com/([a-z0-9](?:[a-z0-9-]{0,38}))/([a-z0-9._-]{1,100})/(pull|pulls|issues|commit|commits|tree)/([^\s<>|()\[\]{}"'` + "`" + `]+)`)
	// jiraURL matches a Jira issue page on any host (Jira Data Center is
	// self-hosted): https://host/browse/KEY-123 or …/jira/browse/KEY-123.
	jiraURL = regexp.MustCompile(`https?://[^\s/<>|]+(?:/[^\s/<>|]+)*?/browse/([A-Z][A-Z0-9_]+-[1-9][0-9]*)\b`)
	// anyURL masks URLs before bare keys are searched, so that a key-like
	// path segment of an unrelated URL is not taken for a Jira key.
	anyURL = regexp.MustCompile(`(?i)\b(?:https?://|www\.)[^\s<>|]+`)
	// jiraKey is a bare Jira key: a project key of two to ten characters
	// (an uppercase letter, then uppercase letters, digits or '_'), a dash
	// and an issue number without leading zeros.
	jiraKey = regexp.MustCompile(`\b([A-Z][A-Z0-9_]{1,9})-([1-9][0-9]{0,6})\b`)
	sha     = regexp.MustCompile(`^[0-9a-fA-F]{7,40}$`)
	number  = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
)

// notJira lists prefixes that look like Jira project keys but, followed by
// a dash and a number, are almost always something else: encodings, hashes,
// standards, protocols, vulnerability and model names.
var notJira = map[string]bool{
	"UTF": true, "UCS": true, "ISO": true, "IEC": true, "RFC": true, "SHA": true, "MD": true,
	"AES": true, "RSA": true, "DES": true, "ECDSA": true, "HMAC": true, "CRC": true,
	"CVE": true, "CWE": true, "GHSA": true, "PEP": true, "JSR": true, "JEP": true, "KEP": true,
	"ECMA": true, "TLS": true, "SSL": true, "HTTP": true, "IPV": true, "TCP": true, "UDP": true,
	"GPT": true, "COVID": true, "UTC": true, "GMT": true, "WCAG": true, "PCI": true, "SOC": true,
	"ARM": true, "ARM64": true, "X86": true, "AMD64": true, "WIN": true, "IE": true, "PS": true,
}

// Find returns the links in text, in the order they appear. A URL that does
// not name a pull request, issue, commit or branch is skipped, as is a bare
// key in notJira or inside a URL.
func Find(text string) []Link {
	var out []Link
	for _, m := range githubURL.FindAllStringSubmatchIndex(text, -1) {
		if l, ok := githubLink(text, m); ok {
			out = append(out, l)
		}
	}
	for _, m := range jiraURL.FindAllStringSubmatchIndex(text, -1) {
		out = append(out, Link{Kind: JiraIssue, Key: text[m[2]:m[3]], Start: m[0], End: m[1]})
	}
	masked := []byte(text)
	for _, m := range anyURL.FindAllStringIndex(text, -1) {
		for i := m[0]; i < m[1]; i++ {
			masked[i] = ' '
		}
	}
	for _, m := range jiraKey.FindAllSubmatchIndex(masked, -1) {
		project := text[m[2]:m[3]]
		if notJira[project] || !hasLetterRun(project) || adjoins(text, m[0], m[1]) {
			continue
		}
		out = append(out, Link{Kind: JiraIssue, Key: text[m[0]:m[1]], Start: m[0], End: m[1]})
	}
	sortByStart(out)
	return out
}

// githubLink reads one githubURL match.
func githubLink(text string, m []int) (Link, bool) {
	owner, repo := text[m[2]:m[3]], text[m[4]:m[5]]
	kind, rest := strings.ToLower(text[m[6]:m[7]]), text[m[8]:m[9]]
	repo = strings.TrimSuffix(repo, ".git")
	if repo == "" || repo == "." || repo == ".." {
		return Link{}, false
	}
	l := Link{Repo: owner + "/" + repo, Start: m[0], End: m[1]}
	// Trailing punctuation belongs to the sentence, not the URL.
	rest = strings.TrimRight(rest, ".,;:!?")
	rest, _, _ = strings.Cut(rest, "#")
	rest, _, _ = strings.Cut(rest, "?")
	parts := strings.Split(rest, "/")
	switch kind {
	case "pull", "pulls":
		if !number.MatchString(parts[0]) {
			return Link{}, false
		}
		l.Kind, l.Number = GitHubPR, parts[0]
		if len(parts) >= 3 && parts[1] == "commits" && sha.MatchString(parts[2]) {
			l.Commit = strings.ToLower(parts[2])
		}
	case "issues":
		if !number.MatchString(parts[0]) {
			return Link{}, false
		}
		l.Kind, l.Number = GitHubIssue, parts[0]
	case "commit", "commits":
		if !sha.MatchString(parts[0]) {
			return Link{}, false
		}
		l.Kind, l.Commit = GitHubCommit, strings.ToLower(parts[0])
	case "tree":
		branch := strings.Trim(rest, "/")
		if branch == "" {
			return Link{}, false
		}
		l.Kind, l.Branch = GitHubBranch, branch
	default:
		return Link{}, false
	}
	return l, true
}

// hasLetterRun reports whether a project key starts with two letters, which
// rules out "A1-2" and "X86-64"-like tokens.
func hasLetterRun(project string) bool {
	return len(project) >= 2 && isUpper(project[0]) && isUpper(project[1])
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// adjoins reports whether the key at text[start:end] is glued to more of a
// token: "abc-PROJ-1", "PROJ-1-2", "PROJ-1.5", "v/PROJ-1".
func adjoins(text string, start, end int) bool {
	if start > 0 {
		switch text[start-1] {
		case '-', '_', '/', '.', '@', '$':
			return true
		}
	}
	if end < len(text) {
		switch c := text[end]; c {
		case '-', '_':
			return true
		case '.':
			return end+1 < len(text) && text[end+1] >= '0' && text[end+1] <= '9'
		}
	}
	return false
}

// sortByStart orders links by position (insertion sort: the lists are short
// and nearly sorted).
func sortByStart(ls []Link) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Start < ls[j-1].Start; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

// Refs returns the refs that the links in text name, or nil when there are
// none. See AddTo for how links are chosen.
func Refs(text string) envelope.Refs { return AddTo(nil, text) }

// AddTo adds the refs that the links in text name to r and returns it
// (allocating it when r is nil and something is found). A key already in r
// is never overwritten, and the first link wins for each key.
//
// GitHub links fill repo, pr, issue, commit and branch, but only from links
// into one repository: r's repo when it has one, else the repository of the
// first GitHub link; links into other repositories are ignored, so repo and
// pr never disagree. A Jira URL or bare key fills issue when no GitHub issue
// link did; a Jira URL counts before a bare key.
func AddTo(r envelope.Refs, text string) envelope.Refs {
	found := Find(text)
	repo := r[envelope.RefRepo]
	set := func(k, v string) {
		if _, ok := r[k]; !ok {
			r = r.Set(k, v)
		}
	}
	for _, l := range found {
		switch l.Kind {
		case GitHubPR, GitHubIssue, GitHubCommit, GitHubBranch:
			if repo == "" {
				repo = l.Repo
			}
			if !strings.EqualFold(l.Repo, repo) {
				continue
			}
			set(envelope.RefRepo, l.Repo)
			switch l.Kind {
			case GitHubPR:
				set(envelope.RefPR, l.Number)
				set(envelope.RefCommit, l.Commit)
			case GitHubIssue:
				set(envelope.RefIssue, l.Number)
			case GitHubCommit:
				set(envelope.RefCommit, l.Commit)
			case GitHubBranch:
				set(envelope.RefBranch, l.Branch)
			}
		}
	}
	// Jira: explicit URLs first, then bare keys, each in text order.
	for _, pass := range []bool{true, false} {
		for _, l := range found {
			if l.Kind == JiraIssue && isURL(text, l) == pass {
				set(envelope.RefIssue, l.Key)
			}
		}
	}
	return r
}

func isURL(text string, l Link) bool {
	s := text[l.Start:l.End]
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}
