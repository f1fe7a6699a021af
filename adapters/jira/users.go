package jira

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	gojira "github.com/andygrunwald/go-jira"
)

// negativeTTL is how long a failed lookup is remembered, so that a slow or
// failing user lookup does not cost every webhook its timeout.
const negativeTTL = time.Minute

// maxLookups bounds the user lookups made for one webhook.
const maxLookups = 16

// learnUser records a display name learned from a payload, so that mentions
// of ref need no lookup.
func (a *Adapter) learnUser(ref, name string) {
	if ref != "" && name != "" {
		a.users.Put(ref, name)
	}
}

// accountPrefix marks a mention reference that is a Cloud account id, as in
// the wiki markup [~accountid:5b10…].
const accountPrefix = "accountid:"

// mentionRef normalises the inside of a wiki mention ([~…]) to a cache
// reference: "accountid:<id>" for Cloud accounts, else the user name.
func mentionRef(s string) string {
	if len(s) > len(accountPrefix) && strings.EqualFold(s[:len(accountPrefix)], accountPrefix) {
		return accountPrefix + s[len(accountPrefix):]
	}
	return s
}

// userRef returns the cache reference of a user in a payload.
func userRef(u *user) string {
	switch {
	case u == nil:
		return ""
	case u.AccountID != "":
		return accountPrefix + u.AccountID
	}
	return u.Name
}

// userName resolves a mention reference to a display name through the cache
// and the REST API. It returns "" when the name is unknown.
func (a *Adapter) userName(ctx context.Context, ref string) string {
	if ref == "" {
		return ""
	}
	return a.users.Get(ctx, ref, a.fetchUserName)
}

// fetchUserName asks the REST API for the display name of ref (GET
// /rest/api/2/user?accountId=… on Cloud, ?username=… on Data Center).
func (a *Adapter) fetchUserName(ctx context.Context, ref string) (string, error) {
	q := url.Values{}
	if id, ok := strings.CutPrefix(ref, accountPrefix); ok {
		q.Set("accountId", id)
	} else {
		q.Set("username", ref)
	}
	req, err := a.api.NewRequestWithContext(ctx, "GET", "rest/api/2/user?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	var u gojira.User
	resp, err := a.api.Do(req, &u)
	if err != nil {
		err = a.classify(resp, err)
		if ctx.Err() == nil {
			a.log.Warn("user lookup failed", "user", ref, "err", err)
		}
		return "", fmt.Errorf("jira: GET user: %w", err)
	}
	if u.DisplayName == "" {
		return "", fmt.Errorf("jira: GET user %s: no displayName", ref)
	}
	return u.DisplayName, nil
}
