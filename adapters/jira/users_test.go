package jira

import (
	"context"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters/internal/lookup"
)

func TestMentionRef(t *testing.T) {
	for in, want := range map[string]string{
		"accountid:5b10": "accountid:5b10",
		"AccountId:5b10": "accountid:5b10",
		"jdoe":           "jdoe",
		"accountid:":     "accountid:",
	} {
		if got := mentionRef(in); got != want {
			t.Errorf("mentionRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIdentityMatchesUsers(t *testing.T) {
	cloud := identity{AccountID: "A1"}
	dc := identity{Name: "switchboard", Key: "JIRAUSER10100"}
	for _, tc := range []struct {
		id   identity
		u    *user
		want bool
	}{
		{cloud, &user{AccountID: "A1"}, true},
		{cloud, &user{AccountID: "A2", Name: "A1"}, false},
		{cloud, &user{Name: "switchboard"}, false},
		{dc, &user{Key: "JIRAUSER10100", Name: "renamed"}, true},
		{dc, &user{Name: "Switchboard"}, true},
		{dc, &user{Key: "JIRAUSER1", Name: "switchboard"}, false},
		{dc, nil, false},
		{identity{}, &user{}, false},
	} {
		if got := tc.id.is(tc.u); got != tc.want {
			t.Errorf("%+v.is(%+v) = %v, want %v", tc.id, tc.u, got, tc.want)
		}
	}
}

func TestLearnUserSkipsBlanks(t *testing.T) {
	a := &Adapter{users: lookup.New[string, string](lookup.Options{TTL: time.Hour, Max: 8})}
	a.learnUser("jdoe", "John Doe")
	a.learnUser("", "nobody")
	a.learnUser("blank", "")
	fetched := 0
	fetch := func(context.Context, string) (string, error) { fetched++; return "fetched", nil }
	if n := a.users.Get(t.Context(), "jdoe", fetch); n != "John Doe" || fetched != 0 {
		t.Errorf("learned name: %q after %d fetches", n, fetched)
	}
	if n := a.users.Get(t.Context(), "blank", fetch); n != "fetched" || a.users.Len() != 2 {
		t.Errorf("a blank name was learned: %q, %d entries", n, a.users.Len())
	}
}
