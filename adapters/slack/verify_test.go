package slack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
)

type signingVector struct {
	Secret    string `json:"signing_secret"`
	Timestamp string `json:"X-Slack-Request-Timestamp"`
	Body      string `json:"body"`
	Signature string `json:"X-Slack-Signature"`
}

func loadVectors(t *testing.T) map[string]signingVector {
	t.Helper()
	b, err := os.ReadFile("../../testdata/slack/signing-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs map[string]signingVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("want the 2 signing vectors, got %d", len(vs))
	}
	return vs
}

func vectorHeader(v signingVector) http.Header {
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", v.Timestamp)
	h.Set("X-Slack-Signature", v.Signature)
	return h
}

func TestSigningVectors(t *testing.T) {
	for name, v := range loadVectors(t) {
		t.Run(name, func(t *testing.T) {
			ts, err := strconv.ParseInt(v.Timestamp, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Unix(ts, 0)
			if got := Sign([]byte(v.Secret), v.Timestamp, []byte(v.Body)); got != v.Signature {
				t.Errorf("Sign = %s, want %s", got, v.Signature)
			}
			if err := VerifySignature([]byte(v.Secret), vectorHeader(v), []byte(v.Body), now); err != nil {
				t.Errorf("VerifySignature with the vector's clock: %v", err)
			}
			// The same vector today is a replay.
			err = VerifySignature([]byte(v.Secret), vectorHeader(v), []byte(v.Body), testNow)
			if se, ok := isSignatureError(err); !ok || se.Reason != "stale" {
				t.Errorf("VerifySignature today = %v, want stale", err)
			}
		})
	}
}

func TestSignatureRejections(t *testing.T) {
	body := callback("EvSIG", `{"type":"message","user":"U1","text":"hi","ts":"1700000000.000100","channel":"C1","channel_type":"channel"}`)
	stamp := strconv.FormatInt(testNow.Unix(), 10)
	good := Sign([]byte(testSecret), stamp, body)
	for _, tc := range []struct {
		name   string
		ts     string
		sig    string
		body   []byte
		reason string
	}{
		{"forged secret", stamp, Sign([]byte("not-the-secret"), stamp, body), body, "mismatch"},
		{"tampered body", stamp, good, append([]byte(nil), strings.Replace(string(body), `"hi"`, `"rm -rf"`, 1)...), "mismatch"},
		{"signature for another timestamp", stamp, Sign([]byte(testSecret), strconv.FormatInt(testNow.Unix()-1, 10), body), body, "mismatch"},
		{"missing signature", stamp, "", body, "missing"},
		{"missing timestamp", "", good, body, "missing"},
		{"not v0", stamp, "v1=" + strings.TrimPrefix(good, "v0="), body, "malformed"},
		{"not hex", stamp, "v0=zz" + good[5:], body, "malformed"},
		{"truncated", stamp, good[:20], body, "malformed"},
		{"bad timestamp", "yesterday", good, body, "malformed"},
		{"stale", strconv.FormatInt(testNow.Add(-MaxSkew-time.Second).Unix(), 10), "", body, "stale"},
		{"future", strconv.FormatInt(testNow.Add(MaxSkew+time.Second).Unix(), 10), "", body, "future"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sig == "" && tc.reason != "missing" {
				tc.sig = Sign([]byte(testSecret), tc.ts, tc.body) // correctly signed, wrong time
			}
			rec := newRecorder()
			a := newTestAdapter(t, newFakeSlack(t), rec, nil)
			r := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(string(tc.body)))
			if tc.ts != "" {
				r.Header.Set("X-Slack-Request-Timestamp", tc.ts)
			}
			if tc.sig != "" {
				r.Header.Set("X-Slack-Signature", tc.sig)
			}
			w := httptest.NewRecorder()
			a.Handler().ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", w.Code)
			}
			if n := len(rec.all()); n != 0 {
				t.Fatalf("%d messages ingested from an unauthentic request", n)
			}
			if got := adaptertest.CounterValue(a.metrics.rejected.WithLabelValues(tc.reason)); got != 1 {
				t.Errorf("rejections with reason %q = %v, want 1", tc.reason, got)
			}
		})
	}
}

func TestSignatureWindowEdges(t *testing.T) {
	body := []byte(`{}`)
	for _, off := range []time.Duration{-MaxSkew, MaxSkew, 0} {
		stamp := strconv.FormatInt(testNow.Add(off).Unix(), 10)
		h := http.Header{}
		h.Set("X-Slack-Request-Timestamp", stamp)
		h.Set("X-Slack-Signature", Sign([]byte(testSecret), stamp, body))
		if err := VerifySignature([]byte(testSecret), h, body, testNow); err != nil {
			t.Errorf("offset %v: %v", off, err)
		}
	}
	if err := VerifySignature(nil, http.Header{}, body, testNow); err == nil {
		t.Error("an empty secret verified a request")
	}
}

func TestVectorThroughHandler(t *testing.T) {
	// The slack-go vector's body is an app_mention callback: signed with its
	// own secret and verified at its own time, it is ingested.
	v := loadVectors(t)["slack_go_v0_35_security_test_vector"]
	ts, _ := strconv.ParseInt(v.Timestamp, 10, 64)
	fake := newFakeSlack(t)
	rec := newRecorder()
	a, err := New(&Config{BotToken: testBotToken, SigningSecret: v.Secret, APIURL: fake.srv.URL + "/api/"}, adapters.Deps{
		Ingress: rec, Now: func() time.Time { return time.Unix(ts, 0) }, HTTPClient: fake.srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(v.Body))
	r.Header = vectorHeader(v)
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", w.Code, w.Body)
	}
	ins := rec.all()
	if len(ins) != 1 || string(ins[0].Envelope.Raw) != v.Body {
		t.Fatalf("ingested %+v, want one envelope with the body as raw", ins)
	}
}

func TestHandlerLimits(t *testing.T) {
	fake := newFakeSlack(t)
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, func(c *Config) { c.MaxBody = 64 })

	w := post(a, []byte(`{"type":"url_verification","challenge":"`+strings.Repeat("x", 100)+`"}`))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status = %d, want 413", w.Code)
	}

	r := httptest.NewRequest(http.MethodGet, "/events", nil)
	w = httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status = %d, want 405", w.Code)
	}

	w = post(a, []byte(`{not json`))
	if w.Code != http.StatusBadRequest {
		t.Errorf("malformed JSON: status = %d, want 400", w.Code)
	}
}

func TestSocketModeOnlyServesNoHTTP(t *testing.T) {
	fake := newFakeSlack(t)
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.SigningSecret, c.AppToken = "", testAppToken })
	w := post(a, []byte(`{"type":"url_verification","challenge":"c"}`))
	if w.Code != http.StatusNotFound {
		t.Fatalf("status = %d, want 404 without a signing secret", w.Code)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{"http", Config{BotToken: "xoxb-1", SigningSecret: "s"}, nil},
		{"socket", Config{BotToken: "xoxb-1", AppToken: "xapp-1"}, nil},
		{"no secret", Config{BotToken: "xoxb-1"}, []string{"signing_secret: is required"}},
		{"no bot token", Config{SigningSecret: "s"}, []string{"bot_token: is required"}},
		{"swapped tokens", Config{BotToken: "xapp-1", AppToken: "xoxb-1"}, []string{"bot_token: is an app-level token", "app_token: must be an app-level token"}},
		{"bad numbers", Config{BotToken: "xoxb-1", SigningSecret: "s", MaxChars: 50000, MaxBody: -1}, []string{"max_chars:", "max_body:"}},
		{"bad emoji", Config{BotToken: "xoxb-1", SigningSecret: "s", Reactions: Reactions{Working: ":eyes:"}}, []string{"reactions.working:"}},
		{"bad url", Config{BotToken: "xoxb-1", SigningSecret: "s", APIURL: "slack.com"}, []string{"api_url:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", tc.cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// New refuses what Validate refuses, and the registered plugin builds.
	if _, err := New(&Config{BotToken: "xoxb-1"}, adapters.Deps{Ingress: newRecorder()}); err == nil {
		t.Error("New accepted a configuration without a signing secret")
	}
	p, ok := adapters.Lookup(Name)
	if !ok {
		t.Fatal("the slack plugin is not registered")
	}
	cfg := p.NewConfig().(*Config)
	cfg.BotToken, cfg.SigningSecret = "xoxb-1", "s"
	if _, err := p.New(cfg, adapters.Deps{Ingress: newRecorder()}); err != nil {
		t.Fatalf("plugin New: %v", err)
	}
	if _, err := p.New(cfg, adapters.Deps{}); err == nil || errors.Is(err, adapters.ErrPermanent) {
		t.Errorf("plugin New without an ingress: %v", err)
	}
}

func TestConfigFromYAML(t *testing.T) {
	const section = `
bot_token: xoxb-1
signing_secret: s3cret
app_token: xapp-1
max_chars: 3000
lookup_timeout: 500ms
user_cache_ttl: 10m
reactions:
  direct_messages: true
  done: tada
`
	p, _ := adapters.Lookup(Name)
	cfg := p.NewConfig().(*Config)
	dec := yaml.NewDecoder(strings.NewReader(section))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxChars != 3000 || cfg.LookupTimeout.D() != 500*time.Millisecond || cfg.UserCacheTTL.D() != 10*time.Minute ||
		cfg.Reactions.Done != "tada" || cfg.Reactions.Working != "eyes" || !*cfg.Reactions.Enabled || !cfg.Reactions.DirectMessages ||
		cfg.MaxBody != DefaultMaxBody || cfg.APIURL != DefaultAPIURL {
		t.Fatalf("decoded %+v", cfg)
	}
	dec = yaml.NewDecoder(strings.NewReader("bot_token: xoxb-1\nsigning_secret: s\nsigning_secert: typo\n"))
	dec.KnownFields(true)
	if err := dec.Decode(p.NewConfig()); err == nil {
		t.Error("an unknown key was accepted")
	}
}

func TestRunLearnsIdentityAndStops(t *testing.T) {
	fake := newFakeSlack(t)
	a := newTestAdapter(t, fake, newRecorder(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	eventually(t, func() bool { a.idMu.RLock(); defer a.idMu.RUnlock(); return a.id.BotID == "B0OWN" })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestRunWithRejectedTokenIsUnhealthyButRuns(t *testing.T) {
	fake := newFakeSlack(t)
	fake.authError = "account_inactive"
	a := newTestAdapter(t, fake, newRecorder(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	eventually(t, func() bool { return a.Check(ctx) != nil })
	select {
	case err := <-done:
		t.Fatalf("Run ended on rejected credentials: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := a.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "account_inactive") {
		t.Fatalf("Check = %v", err)
	}
}

// eventually waits up to 10s for cond, which another goroutine makes true.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHandlerPaths(t *testing.T) {
	a := newTestAdapter(t, newFakeSlack(t), newRecorder(), nil)
	body := []byte(`{"type":"url_verification","challenge":"c"}`)
	for path, want := range map[string]int{"/events": 200, "events": 200, "/other": 404, "/": 404} {
		r := signedRequest(body, testSecret, testNow)
		r.URL.Path = path
		w := httptest.NewRecorder()
		a.Handler().ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("POST %q: status = %d, want %d", path, w.Code, want)
		}
		if want == 200 && strings.TrimSpace(w.Body.String()) != `{"challenge":"c"}` {
			t.Errorf("POST %q: body = %s", path, w.Body)
		}
	}
}
