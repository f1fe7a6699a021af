package links

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters/internal/fuzzkit"
	"github.com/switchboardhq/switchboard/envelope"
)

var (
	fuzzNumber = regexp.MustCompile(`^[1-9][0-9]*$`)
	fuzzSHA    = regexp.MustCompile(`^[0-9a-f]{7,40}$`)
	fuzzKey    = regexp.MustCompile(`^[A-Z][A-Z0-9_]+-[1-9][0-9]*$`)
)

// FuzzFind looks for links in arbitrary text, seeded with the channel
// fixtures under testdata/: it never panics; links come in order, inside
// the text, each with the fields its kind needs, well formed; and the refs
// they give validate, keep what was already set, and are valid UTF-8
// where the text was.
func FuzzFind(f *testing.F) {
	for _, b := range fuzzkit.Fixtures(f, "../../../testdata/*/*") {
		f.Add(string(b))
	}
	for _, s := range []string{
		"",
		"see https://github.com/acme/widgets/pull/42/commits/0123abcd0123abcd and PROJ-7",
		"github.com/a/b/tree/feature/x?tab=1#frag.",
		"https://jira.example.com/jira/browse/OPS-12 UTF-8 ISO-8859-1 abc-PROJ-1 PROJ-1.5",
		"https://github.com/a/.git/pull/1 https://github.com/a/../issues/2",
		"<https://github.com/acme/api/issues/9|github.com/acme/api/issues/9>",
		"github.com/a/b/tree/" + strings.Repeat("x", 300),
		"GITHUB.COM/A/B/PULLS/0012 https://www.github.com/a/b/commit/ABCDEF0",
		"\xff github.com/a/b/tree/\xc3 KEY-1\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > fuzzkit.MaxInput {
			t.Skip("input over 64 KiB")
		}
		last := 0
		for i, l := range Find(text) {
			if l.Start < last || l.Start >= l.End || l.End > len(text) {
				t.Fatalf("link %d at [%d:%d] is out of order or outside the text (len %d, previous start %d)", i, l.Start, l.End, len(text), last)
			}
			last = l.Start
			switch l.Kind {
			case GitHubPR, GitHubIssue, GitHubCommit, GitHubBranch:
				owner, repo, ok := strings.Cut(l.Repo, "/")
				if !ok || owner == "" || repo == "" || repo == "." || repo == ".." {
					t.Fatalf("link %d: repo %q is not owner/name", i, l.Repo)
				}
			}
			switch l.Kind {
			case GitHubPR, GitHubIssue:
				if !fuzzNumber.MatchString(l.Number) {
					t.Fatalf("link %d: %s number %q", i, l.Kind, l.Number)
				}
			case GitHubCommit:
				if !fuzzSHA.MatchString(l.Commit) {
					t.Fatalf("link %d: commit %q", i, l.Commit)
				}
			case GitHubBranch:
				if l.Branch == "" {
					t.Fatalf("link %d: branch link without a branch", i)
				}
			case JiraIssue:
				if !fuzzKey.MatchString(l.Key) || !strings.Contains(text[l.Start:l.End], l.Key) {
					t.Fatalf("link %d: jira key %q in %q", i, l.Key, text[l.Start:l.End])
				}
			default:
				t.Fatalf("link %d: unknown kind %q", i, l.Kind)
			}
		}
		refs := Refs(text)
		if err := refs.Validate(); err != nil {
			t.Fatalf("refs %q do not validate: %v", refs, err)
		}
		for k, v := range refs {
			if v == "" || utf8.ValidString(text) && !utf8.ValidString(v) {
				t.Fatalf("ref %s = %q is empty or not valid UTF-8", k, v)
			}
		}
		kept := envelope.Refs{envelope.RefIssue: "KEEP-1", "other": "x"}
		got := AddTo(kept, text)
		if got[envelope.RefIssue] != "KEEP-1" || got["other"] != "x" {
			t.Fatalf("AddTo overwrote a key already set: %q", got)
		}
	})
}
