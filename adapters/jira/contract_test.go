package jira

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
)

// TestContract runs the channel adapters' contract against the fake Jira.
// Its webhooks sign no timestamp: a replay is a duplicate delivery.
func TestContract(t *testing.T) {
	p, _ := adapters.Lookup(Name)
	adaptertest.Run(t, p, adaptertest.Features{NoSignedTime: true}, adaptertest.Channel{
		Config: `
base_url: https://acme.atlassian.net
email: bot@acme.example
api_token: cloud-api-token
webhook_secret: It's a Secret to Everybody
`,
		Required: []string{"base_url", "email", "api_token", "webhook_secret"},
		Invalid: []adaptertest.Invalid{
			{Key: "base_url", Value: "ftp://acme.atlassian.net"},
			{Key: "personal_access_token", Value: "dc-personal-access-token"},
			{Key: "url_token", Value: "short"},
			{Key: "site", Value: "https://acme.atlassian.net/"},
			{Key: "max_chars", Value: "100"},
			{Key: "max_body", Value: "-1"},
			{Key: "max_chars", Value: "many"},
			{Key: "lookup_timeout", Value: "soon"},
			{Key: "description_steers", Value: "maybe"},
			{Key: "user_cache_ttl", Value: "-1h"},
		},
		Where: "OPS",
		Open:  contractFake,
	})
}

// contractFake is the fake Jira of one contract check.
func contractFake(t *testing.T) adaptertest.Fake {
	fake := newFakeJira(t)
	n := 10100
	comment := func(t testing.TB, author map[string]any, body string) []byte {
		n++
		return jiraComment(t, eventCommentCreated, "", strconv.Itoa(n), author, body)
	}
	ada := map[string]any{"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ada Lovelace", "accountType": "atlassian"}
	mention := "[~accountid:" + botAccountID + "] "
	return adaptertest.Fake{
		New: func(t testing.TB, deps adapters.Deps) adapters.Adapter {
			deps.HTTPClient, deps.Now = fake.srv.Client(), func() time.Time { return testNow }
			a, err := New(&Config{BaseURL: fake.srv.URL, Email: testEmail, APIToken: testAPIToken, WebhookSecret: testSecret}, deps)
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
		Message: func(t testing.TB) []byte { return comment(t, ada, mention+"please look at the failing deploy") },
		Own:     func(t testing.TB) []byte { return comment(t, botUser(), mention+"the deploy is green") },
		Request: func(_ testing.TB, body []byte, s adaptertest.Signing) *http.Request {
			secret := testSecret
			if s == adaptertest.WrongSecret {
				secret = "not the secret"
			}
			r := signedRequest(body, secret)
			// One payload, one webhook identifier: a retry keeps it.
			r.Header.Set(HeaderWebhookID, adaptertest.DeliveryID(body))
			if s == adaptertest.Unsigned {
				r.Header.Del(SignatureHeader)
			}
			return r
		},
		To: func(testing.TB, adapters.Adapter) envelope.Conversation {
			return envelope.Conversation{Source: Name, Ref: "acme.atlassian.net/OPS-42"}
		},
		RateLimit: func(_ testing.TB, wait time.Duration) {
			fake.failPosts(failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": strconv.Itoa(int(wait / time.Second))}))
		},
		RefuseCredentials: func(testing.TB) func() {
			good := fake.auth
			return adaptertest.Toggle(&fake.mu, func(on bool) {
				fake.auth = good
				if on {
					fake.auth = "Basic refused"
				}
			})
		},
	}
}
