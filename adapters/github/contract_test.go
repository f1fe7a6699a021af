package github

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
)

// TestContract runs the channel adapters' contract against the fake
// GitHub. Its webhooks sign no timestamp: a replay is a duplicate delivery.
func TestContract(t *testing.T) {
	p, _ := adapters.Lookup(Name)
	adaptertest.Run(t, p, adaptertest.Features{NoSignedTime: true}, adaptertest.Channel{
		Config: `
webhook_secret: It's a Secret to Everybody
token: ghp_testtoken
login: switchboard
api_url: https://github.example/api/
`,
		Required: []string{"webhook_secret", "token"},
		Invalid: []adaptertest.Invalid{
			{Key: "login", Value: "'@switchboard'"},
			{Key: "api_url", Value: "ftp://github.example/"},
			{Key: "max_chars", Value: "100"},
			{Key: "max_body", Value: "-1"},
			{Key: "max_body", Value: "lots"},
			{Key: "pr_cache_ttl", Value: "a while"},
			{Key: "app.id", Value: "four"},
			{Key: "lookup_timeout", Value: "20s"},
			{Key: "triggers.command", Value: "agent"},
			{Key: "triggers.mentions", Value: "['@agent']"},
			{Key: "reactions.working", Value: "thumbs"},
		},
		Where: "acme/api",
		Open:  contractFake,
	})
}

// contractFake is the fake GitHub of one contract check.
func contractFake(t *testing.T) adaptertest.Fake {
	fake := newFakeGitHub(t, newClock())
	fake.setPull("acme/api", 7, prHead{Branch: "fix-flaky-test", SHA: "6dcb09b5b57875f334f61aebed695e2e4193db5e", Repo: "acme/api"})
	n := int64(1500000100)
	comment := func(t testing.TB, login, body string) []byte {
		n++
		return prComment(t, n, login, body)
	}
	return adaptertest.Fake{
		New: func(t testing.TB, deps adapters.Deps) adapters.Adapter {
			// The real clock, as the router's: the rate-limit gate opens
			// when the outbox retries.
			deps.HTTPClient = fake.srv.Client()
			a, err := New(&Config{WebhookSecret: testSecret, Token: testToken, Login: testLogin, APIURL: fake.url()}, deps)
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
		Message: func(t testing.TB) []byte { return comment(t, "ada", "@switchboard please look at the build") },
		Own:     func(t testing.TB) []byte { return comment(t, testLogin, "@switchboard the build is green") },
		Request: func(_ testing.TB, body []byte, s adaptertest.Signing) *http.Request {
			// One payload, one delivery id: a redelivery keeps it.
			r := webhook("issue_comment", adaptertest.DeliveryID(body), body)
			switch s {
			case adaptertest.WrongSecret:
				r.Header.Set("X-Hub-Signature-256", Sign([]byte("not the secret"), body))
			case adaptertest.Unsigned:
				r.Header.Del("X-Hub-Signature-256")
			}
			return r
		},
		To: func(testing.TB, adapters.Adapter) envelope.Conversation {
			return envelope.Conversation{Source: Name, Ref: "acme/api#7"}
		},
		RateLimit: func(_ testing.TB, wait time.Duration) {
			fake.failPosts(failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": strconv.Itoa(int(wait / time.Second))}, secondaryMsg))
		},
		RefuseCredentials: func(testing.TB) func() {
			return adaptertest.Toggle(&fake.mu, func(on bool) { fake.revoked = on })
		},
	}
}
