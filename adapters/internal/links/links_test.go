package links

import (
	"maps"
	"testing"

	"github.com/switchboardhq/switchboard/envelope"
)

func TestRefs(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want envelope.Refs
	}{
		{"nothing", "just words, no links", nil},
		{"pr", "see https://github.com/acme/widgets/pull/42", envelope.Refs{"repo": "acme/widgets", "pr": "42"}},
		{"pr files tab", "https://github.com/acme/widgets/pull/42/files#diff-1", envelope.Refs{"repo": "acme/widgets", "pr": "42"}},
		{"pr commit", "https://github.com/acme/widgets/pull/42/commits/0123abcd0123abcd", envelope.Refs{"repo": "acme/widgets", "pr": "42", "commit": "0123abcd0123abcd"}},
		{"pulls alias", "https://github.com/acme/widgets/pulls/7", envelope.Refs{"repo": "acme/widgets", "pr": "7"}},
		{"issue", "bug: https://github.com/acme/widgets/issues/7.", envelope.Refs{"repo": "acme/widgets", "issue": "7"}},
		{"issue comment anchor", "https://github.com/acme/widgets/issues/7#issuecomment-99", envelope.Refs{"repo": "acme/widgets", "issue": "7"}},
		{"commit", "fixed in https://github.com/acme/widgets/commit/DEADBEEF1234567", envelope.Refs{"repo": "acme/widgets", "commit": "deadbeef1234567"}},
		{"branch", "https://github.com/acme/widgets/tree/feature/login", envelope.Refs{"repo": "acme/widgets", "branch": "feature/login"}},
		{"no scheme", "github.com/acme/widgets/pull/3", envelope.Refs{"repo": "acme/widgets", "pr": "3"}},
		{"www and http", "http://www.github.com/Acme/Widgets.git/pull/3", envelope.Refs{"repo": "Acme/Widgets", "pr": "3"}},
		{"in parentheses", "the fix (https://github.com/acme/widgets/pull/42)", envelope.Refs{"repo": "acme/widgets", "pr": "42"}},
		{"not a pr number", "https://github.com/acme/widgets/pull/new/branch", nil},
		{"short sha rejected", "https://github.com/acme/widgets/commit/abc12", nil},
		{"repo page only", "https://github.com/acme/widgets", nil},
		{"other host", "https://gitlab.com/acme/widgets/pull/42", nil},
		{"first pr wins", "https://github.com/a/b/pull/1 and https://github.com/a/b/pull/2", envelope.Refs{"repo": "a/b", "pr": "1"}},
		{"pr and issue same repo", "https://github.com/a/b/issues/5 fixed by https://github.com/a/b/pull/6", envelope.Refs{"repo": "a/b", "issue": "5", "pr": "6"}},
		{"other repo ignored", "https://github.com/a/b/pull/1 and https://github.com/c/d/issues/2", envelope.Refs{"repo": "a/b", "pr": "1"}},
		{"jira url", "https://acme.atlassian.net/browse/PROJ-123", envelope.Refs{"issue": "PROJ-123"}},
		{"jira data center url", "https://jira.example.com/jira/browse/OPS-9?focusedCommentId=1", envelope.Refs{"issue": "OPS-9"}},
		{"bare key", "can you look at PROJ-123 today?", envelope.Refs{"issue": "PROJ-123"}},
		{"bare key with digits", "AB2-17 is the one", envelope.Refs{"issue": "AB2-17"}},
		{"jira url beats earlier bare key", "ABC-1 or rather https://x.atlassian.net/browse/XYZ-2", envelope.Refs{"issue": "XYZ-2"}},
		{"first bare key wins", "PROJ-1 then PROJ-2", envelope.Refs{"issue": "PROJ-1"}},
		{"utf-8", "the file is UTF-8 encoded", nil},
		{"sha-256", "checksum is SHA-256 of the body", nil},
		{"iso and rfc", "ISO-8601 dates per RFC-3339", nil},
		{"cve", "patched CVE-2024-3094", nil},
		{"single letter project", "plan B-2 is out", nil},
		{"lowercase", "proj-123 is not a key", nil},
		{"leading zero", "PROJ-0123 is not a key", nil},
		{"glued", "build-PROJ-12 and PROJ-12-rc and PROJ-1.5", nil},
		{"key inside unrelated url", "https://example.com/ABC-123/page", nil},
		{"github issue beats jira key", "PROJ-9 tracks https://github.com/a/b/issues/3", envelope.Refs{"repo": "a/b", "issue": "3"}},
		{"pr plus jira key", "https://github.com/a/b/pull/42 fixes PROJ-123", envelope.Refs{"repo": "a/b", "pr": "42", "issue": "PROJ-123"}},
		{"slack label form", "label (https://github.com/a/b/pull/8)", envelope.Refs{"repo": "a/b", "pr": "8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Refs(tc.text)
			if !maps.Equal(got, tc.want) {
				t.Errorf("Refs(%q) = %v, want %v", tc.text, got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("refs do not validate: %v", err)
			}
		})
	}
}

func TestAddToKeepsExistingKeys(t *testing.T) {
	r := envelope.Refs{"issue": "OPS-1", "repo": "a/b"}
	got := AddTo(r, "PROJ-2, https://github.com/c/d/pull/9 and https://github.com/a/b/pull/3")
	want := envelope.Refs{"issue": "OPS-1", "repo": "a/b", "pr": "3"}
	if !maps.Equal(got, want) {
		t.Fatalf("AddTo = %v, want %v", got, want)
	}
}

func TestFindPositions(t *testing.T) {
	text := "PROJ-7 and https://github.com/a/b/pull/1"
	ls := Find(text)
	if len(ls) != 2 {
		t.Fatalf("Find = %+v, want 2 links", ls)
	}
	if ls[0].Kind != JiraIssue || text[ls[0].Start:ls[0].End] != "PROJ-7" {
		t.Errorf("first = %+v", ls[0])
	}
	if ls[1].Kind != GitHubPR || text[ls[1].Start:ls[1].End] != "https://github.com/a/b/pull/1" {
		t.Errorf("second = %+v", ls[1])
	}
}
