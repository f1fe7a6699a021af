package slack

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
	"github.com/switchboardhq/switchboard/envelope"
)

// TestContract runs the channel adapters' contract against the fake Slack.
func TestContract(t *testing.T) {
	p, _ := adapters.Lookup(Name)
	adaptertest.Run(t, p, adaptertest.Features{}, adaptertest.Channel{
		Config: `
bot_token: xoxb-test-token
signing_secret: test-signing-secret
api_url: https://slack.example/api/
`,
		Required: []string{"bot_token", "signing_secret"},
		Invalid: []adaptertest.Invalid{
			{Key: "bot_token", Value: "xapp-1-an-app-token"},
			{Key: "app_token", Value: "xoxb-not-an-app-token"},
			{Key: "api_url", Value: "ftp://slack.example/api/"},
			{Key: "max_chars", Value: "50"},
			{Key: "max_body", Value: "-1"},
			{Key: "max_body", Value: "lots"},
			{Key: "lookup_timeout", Value: "soon"},
			{Key: "reactions.enabled", Value: "maybe"},
			{Key: "lookup_timeout", Value: "-1s"},
			{Key: "reactions.working", Value: `":eyes:"`},
		},
		Where: "C0CHAN",
		Open:  contractFake,
	})
}

// contractFake is the fake Slack of one contract check.
func contractFake(t *testing.T) adaptertest.Fake {
	fake := newFakeSlack(t)
	n := 0
	message := func(user, text string) []byte {
		n++
		ts := fmt.Sprintf("1700000%03d.000100", n)
		return callback(fmt.Sprintf("EvContract%d", n), fmt.Sprintf(
			`{"type":"message","user":%q,"text":%q,"ts":%q,"channel":"C0CHAN","channel_type":"channel","event_ts":%q}`, user, text, ts, ts))
	}
	return adaptertest.Fake{
		New: func(t testing.TB, deps adapters.Deps) adapters.Adapter {
			return newTestAdapterWith(t, fake, deps.Ingress, nil, func(d *adapters.Deps) {
				d.State, d.Registry = deps.State, deps.Registry
			})
		},
		Message: func(testing.TB) []byte {
			return message("U0ADA", "<@U0BOTUSER> please look at the build")
		},
		Own: func(testing.TB) []byte {
			return message("U0BOTUSER", "<@U0BOTUSER> the build is green")
		},
		Request: func(_ testing.TB, body []byte, s adaptertest.Signing) *http.Request {
			switch s {
			case adaptertest.WrongSecret:
				return signedRequest(body, "not-the-signing-secret", testNow)
			case adaptertest.Unsigned:
				r := signedRequest(body, testSecret, testNow)
				r.Header.Del("X-Slack-Signature")
				r.Header.Del("X-Slack-Request-Timestamp")
				return r
			case adaptertest.Stale:
				return signedRequest(body, testSecret, testNow.Add(-2*MaxSkew))
			}
			return signedRequest(body, testSecret, testNow)
		},
		To: func(testing.TB, adapters.Adapter) envelope.Conversation {
			return envelope.Conversation{Source: Name, Ref: "T0TEST/C0CHAN/1700000000.000100"}
		},
		RateLimit: func(_ testing.TB, wait time.Duration) {
			fake.failPosts(rateLimited(int(wait / time.Second)))
		},
		RefuseCredentials: func(testing.TB) func() {
			return adaptertest.Toggle(&fake.mu, func(on bool) {
				fake.revoked = ""
				if on {
					fake.revoked = "token_revoked"
				}
			})
		},
	}
}
