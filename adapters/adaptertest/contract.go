package adaptertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// Features says what a channel cannot do. Each switch turns off the checks
// that need it, and the subtest says so when skipped: the zero Features is
// a channel that can do everything the contract checks.
type Features struct {
	// NoWebhooks: the channel sends the adapter nothing over HTTP (email
	// reads a mailbox), so there is no signature to refuse:
	// BadSignaturesRefused is off, and Fake.Send brings messages in.
	NoWebhooks bool
	// NoSignedTime: the channel's signature covers no timestamp (GitHub,
	// Jira), so a replayed request cannot be told from its signature (its
	// envelope id deduplicates it, DuplicateStoresOnce): the Stale forgery
	// is off.
	NoSignedTime bool
	// NoRateLimit: the channel's API never asks the adapter to wait (SMTP
	// has no Retry-After): RateLimitIsBackOff is off.
	NoRateLimit bool
}

// Channel is what the contract needs to know of one channel: its
// configuration, and how to open its fake.
type Channel struct {
	// Config is a valid configuration section in YAML, as it stands under
	// adapters.<name>: in the gateway's configuration.
	Config string
	// Required are keys of Config (dotted paths, "imap.addr") whose absence
	// the section refuses; Invalid are values it refuses. Each must fail
	// validation with an error naming its key.
	Required []string
	Invalid  []Invalid
	// Where is the place the fake's messages are posted in (Facts.Where),
	// for the route of the router checks ("" matches every place).
	Where string
	// Open starts a fresh fake of the channel for one check: each check
	// opens its own, so no state leaks from one to the next.
	Open func(t *testing.T) Fake
}

// Invalid is a value of a configuration key that validation refuses.
type Invalid struct {
	// Key is a dotted path ("app.id"), added to the section when missing.
	Key string
	// Value is the key's value, in YAML ("ftp://x", "-1", "[a, b]").
	Value string
}

// Fake is one channel's fake (its web API, its mailbox) and the adapter's
// test side of it: what the contract checks need to build the adapter,
// send it messages and make its channel misbehave.
type Fake struct {
	// New builds the adapter on the fake from a valid configuration. deps
	// has Ingress, State and Registry set; New adds what the channel needs
	// (HTTPClient, Now) and fails t on an error.
	New func(t testing.TB, deps adapters.Deps) adapters.Adapter

	// Message returns a new message from a person, addressed to the bot,
	// in Channel.Where: a different one (another envelope id) on each call.
	Message func(t testing.TB) []byte
	// Own returns a message the adapter's own bot or app user wrote (the
	// channel echoing a post of the gateway).
	Own func(t testing.TB) []byte

	// Request returns the webhook request that carries payload, signed as
	// s says; the same payload gives the same request (the same delivery
	// id), as the channel's retries do. Not used with Features.NoWebhooks.
	Request func(t testing.TB, payload []byte, s Signing) *http.Request
	// Send brings payload to a as the channel does (into the mailbox it
	// watches), for a channel without webhooks, and returns once a has
	// handled it: stored it through its Ingress, or dropped it.
	Send func(t testing.TB, a adapters.Adapter, payload []byte)

	// To returns a conversation of a the fake accepts posts to (a thread
	// the adapter knows, for a channel that replies only in those).
	To func(t testing.TB, a adapters.Adapter) envelope.Conversation
	// RateLimit makes the fake answer the adapter's next post with a 429
	// (or the channel's rate-limit answer) and Retry-After wait. Not used
	// with Features.NoRateLimit.
	RateLimit func(t testing.TB, wait time.Duration)
	// RefuseCredentials makes the fake refuse the adapter's credentials
	// (invalid_auth, 401, a failed login) until restore is called.
	RefuseCredentials func(t testing.TB) (restore func())
}

// Signing is how Fake.Request signs a webhook.
type Signing int

// The signings of a webhook request.
const (
	// Signed is as the channel signs it, now.
	Signed Signing = iota
	// WrongSecret is signed, now, with a secret that is not the adapter's.
	WrongSecret
	// Unsigned carries no signature at all.
	Unsigned
	// Stale is signed correctly but long ago: a captured request replayed
	// (off with Features.NoSignedTime).
	Stale
)

func (s Signing) String() string {
	switch s {
	case Signed:
		return "signed"
	case WrongSecret:
		return "signed with a wrong secret"
	case Unsigned:
		return "unsigned"
	case Stale:
		return "signed long ago (replayed)"
	}
	return fmt.Sprintf("Signing(%d)", int(s))
}

// Run is the contract every channel adapter passes, run from the adapter's
// TestContract. Each check is a subtest of it (go test -run
// Contract/DuplicateStoresOnce ./adapters/...):
//
//   - ConfigErrorsNameTheirKey: a configuration without a required key, or
//     with a value it refuses, or with a key it does not know, fails with
//     an error naming the key (relative to the section, as the gateway
//     prefixes adapters.<name>:), from Validate and from the plugin's New.
//   - BadSignaturesRefused: a webhook signed with a wrong secret, unsigned,
//     with a body changed after signing, or replayed long after, is
//     answered 4xx and nothing reaches the Ingress; the same request
//     signed rightly is taken.
//   - DuplicateStoresOnce: a message delivered twice to the adapter in
//     front of a real router and SQLite store is stored once.
//   - OwnEchoDropped: a message the adapter's own bot wrote reaches no
//     session.
//   - RateLimitIsBackOff: a post the channel answers 429 with Retry-After
//     fails with an *adapters.BackOff of about that wait, not permanent.
//   - HealthReported: the adapter is an adapters.Checker, healthy while the
//     channel takes its credentials, unhealthy once it refuses them, and
//     healthy again once it takes them again.
func Run(t *testing.T, p adapters.Plugin, f Features, ch Channel) {
	t.Helper()
	t.Run("ConfigErrorsNameTheirKey", func(t *testing.T) { checkConfig(t, p, ch) })
	t.Run("BadSignaturesRefused", func(t *testing.T) {
		if f.NoWebhooks {
			t.Skip("off: the channel has no webhooks (Features.NoWebhooks)")
		}
		checkSignatures(t, p, f, ch)
	})
	t.Run("DuplicateStoresOnce", func(t *testing.T) { checkDuplicate(t, p, f, ch) })
	t.Run("OwnEchoDropped", func(t *testing.T) { checkOwnEcho(t, p, f, ch) })
	t.Run("RateLimitIsBackOff", func(t *testing.T) {
		if f.NoRateLimit {
			t.Skip("off: the channel's API has no rate-limit answer with a wait (Features.NoRateLimit)")
		}
		checkRateLimit(t, ch)
	})
	t.Run("HealthReported", func(t *testing.T) { checkHealth(t, ch) })
}

// deps are the Deps the unit checks build adapters with.
func deps(in adapters.Ingress) adapters.Deps {
	return adapters.Deps{Ingress: in, State: &MemoryKV{}, Registry: prometheus.NewRegistry()}
}

// checkConfig is ConfigErrorsNameTheirKey.
func checkConfig(t *testing.T, p adapters.Plugin, ch Channel) {
	var valid yaml.Node
	if err := yaml.Unmarshal([]byte(ch.Config), &valid); err != nil || valid.Kind != yaml.DocumentNode || valid.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("Channel.Config is not a YAML mapping: %v", err)
	}
	// The valid section decodes, validates and builds.
	cfg := p.NewConfig()
	if err := config.DecodeNode(valid.Content[0], cfg); err != nil {
		t.Fatalf("the valid configuration does not decode: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the valid configuration does not validate: %v", err)
	}
	if _, err := p.New(cfg, deps(&Recorder{})); err != nil {
		t.Fatalf("the valid configuration does not build: %v", err)
	}
	if len(ch.Required) == 0 {
		t.Error("Channel.Required names no key: every adapter needs some configuration")
	}

	// check decodes the section doc, which must fail on key.
	check := func(t *testing.T, doc *yaml.Node, key string) {
		t.Helper()
		cfg := p.NewConfig()
		if err := config.DecodeNode(doc.Content[0], cfg); err != nil {
			if !namesKey(err, key) {
				t.Errorf("decoding fails with %q, which does not name %s", err, key)
			}
			return
		}
		err := cfg.Validate()
		switch {
		case err == nil:
			t.Fatalf("the configuration validates")
		case !namesKey(err, key):
			t.Errorf("Validate fails with %q, which does not name %s", err, key)
		}
		if _, err := p.New(cfg, deps(&Recorder{})); err == nil {
			t.Errorf("%s.New accepts it", p.Name)
		} else if !namesKey(err, key) {
			t.Errorf("%s.New fails with %q, which does not name %s", p.Name, err, key)
		}
	}
	for _, key := range ch.Required {
		t.Run("without "+key, func(t *testing.T) {
			doc := cloneNode(&valid)
			if !deleteKey(doc.Content[0], strings.Split(key, ".")) {
				t.Fatalf("Channel.Config has no key %s", key)
			}
			check(t, doc, key)
		})
	}
	for _, bad := range ch.Invalid {
		t.Run(bad.Key+"="+bad.Value, func(t *testing.T) {
			var v yaml.Node
			if err := yaml.Unmarshal([]byte(bad.Value), &v); err != nil {
				t.Fatalf("Invalid %s: %v", bad.Key, err)
			}
			doc := cloneNode(&valid)
			setKey(doc.Content[0], strings.Split(bad.Key, "."), v.Content[0])
			check(t, doc, bad.Key)
		})
	}
	t.Run("unknown key", func(t *testing.T) {
		doc := cloneNode(&valid)
		var v yaml.Node
		_ = yaml.Unmarshal([]byte("yes"), &v)
		setKey(doc.Content[0], []string{"no_such_key"}, v.Content[0])
		check(t, doc, "no_such_key")
	})
}

// namesKey reports whether err's text names key as a whole word.
func namesKey(err error, key string) bool {
	return regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(key) + `([^A-Za-z0-9_]|$)`).MatchString(err.Error())
}

func cloneNode(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = cloneNode(k)
	}
	return &c
}

// deleteKey removes path from mapping m, and reports whether it was there.
func deleteKey(m *yaml.Node, path []string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != path[0] {
			continue
		}
		if len(path) == 1 {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return true
		}
		return m.Content[i+1].Kind == yaml.MappingNode && deleteKey(m.Content[i+1], path[1:])
	}
	return false
}

// setKey sets path in mapping m to v, adding the keys that are missing.
func setKey(m *yaml.Node, path []string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != path[0] {
			continue
		}
		if len(path) == 1 {
			m.Content[i+1] = v
			return
		}
		if m.Content[i+1].Kind != yaml.MappingNode {
			m.Content[i+1] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		setKey(m.Content[i+1], path[1:], v)
		return
	}
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: path[0]}
	if len(path) == 1 {
		m.Content = append(m.Content, key, v)
		return
	}
	sub := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, key, sub)
	setKey(sub, path[1:], v)
}

// checkSignatures is BadSignaturesRefused.
func checkSignatures(t *testing.T, p adapters.Plugin, f Features, ch Channel) {
	fk := ch.Open(t)
	rec := &Recorder{}
	a := fk.New(t, deps(rec))
	h, ok := a.(adapters.HTTPHandler)
	if !ok {
		t.Fatalf("the %s adapter is not an adapters.HTTPHandler: set Features.NoWebhooks", p.Name)
	}
	serve := func(r *http.Request) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.Handler().ServeHTTP(w, r)
		return w
	}
	msg := fk.Message(t)
	// The body changed after it was signed: a space after the JSON, or a
	// byte more of a form.
	tampered := fk.Request(t, msg, Signed)
	body := append(bytes.Clone(msg), ' ')
	tampered.Body, tampered.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	var stale *http.Request // nil: off
	if !f.NoSignedTime {
		stale = fk.Request(t, msg, Stale)
	}
	for _, c := range []struct {
		what string
		r    *http.Request
	}{
		{WrongSecret.String(), fk.Request(t, msg, WrongSecret)},
		{Unsigned.String(), fk.Request(t, msg, Unsigned)},
		{"body changed after signing", tampered},
		{Stale.String(), stale},
	} {
		t.Run(c.what, func(t *testing.T) {
			if c.r == nil {
				t.Skip("off: the channel signs no timestamp (Features.NoSignedTime); a replay is a duplicate delivery")
			}
			w := serve(c.r)
			if w.Code < 400 || w.Code > 499 {
				t.Errorf("answered %d %s, want a 4xx", w.Code, strings.TrimSpace(w.Body.String()))
			}
			if ins := rec.All(); len(ins) != 0 {
				t.Errorf("%d messages reached the Ingress, want none: %s", len(ins), ins[0].Envelope.ID)
			}
		})
	}
	// Nothing forged got through; the real request does, so the above were
	// refused for their signatures.
	if w := serve(fk.Request(t, msg, Signed)); w.Code < 200 || w.Code > 299 {
		t.Fatalf("the rightly signed request: %d %s, want a 2xx", w.Code, strings.TrimSpace(w.Body.String()))
	}
	if n := len(rec.All()); n != 1 {
		t.Fatalf("the rightly signed request brought %d messages to the Ingress, want 1", n)
	}
}

// silentAgent is the exec agent of the router checks: it reads its input
// and answers nothing.
const silentAgent = "#!/bin/sh\ncat > /dev/null\n"

// routed is the adapter of a Fake behind a real router and SQLite store.
type routed struct {
	fk Fake
	a  adapters.Adapter
	st store.Store
}

func runRouted(t *testing.T, p adapters.Plugin, ch Channel) *routed {
	fk := ch.Open(t)
	a, st := RunRouter(t, p.Name, ch.Where, silentAgent, func(in adapters.Ingress, kv store.KV) adapters.Adapter {
		return fk.New(t, adapters.Deps{Ingress: in, State: kv, Registry: prometheus.NewRegistry()})
	})
	return &routed{fk: fk, a: a, st: st}
}

// send brings payload to the adapter: a signed webhook, or Fake.Send.
func (r *routed) send(t *testing.T, f Features, payload []byte) {
	t.Helper()
	if f.NoWebhooks {
		r.fk.Send(t, r.a, payload)
		return
	}
	h, ok := r.a.(adapters.HTTPHandler)
	if !ok {
		t.Fatal("the adapter is not an adapters.HTTPHandler: set Features.NoWebhooks")
	}
	w := httptest.NewRecorder()
	h.Handler().ServeHTTP(w, r.fk.Request(t, payload, Signed))
	if w.Code < 200 || w.Code > 299 {
		t.Fatalf("webhook answered %d %s, want a 2xx", w.Code, strings.TrimSpace(w.Body.String()))
	}
}

// inbound returns the envelope ids of the inbound records of every session.
func inbound(t *testing.T, st store.Store) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	after := ""
	for {
		ss, err := st.ListSessions(ctx, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			recs, err := st.Read(ctx, s.ID, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				if rec.Direction == store.Inbound {
					ids = append(ids, rec.Envelope.ID)
				}
			}
		}
		if len(ss) < 100 {
			return ids
		}
		after = ss[len(ss)-1].ID
	}
}

// settle waits until the store holds n inbound records (the last payload
// sent, which the adapter handles after the earlier ones, is stored) and
// returns their ids.
func settle(t *testing.T, st store.Store, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ids := inbound(t, st)
		if len(ids) >= n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d inbound records stored within 30s, want %d: %q", len(ids), n, ids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkDuplicate is DuplicateStoresOnce.
func checkDuplicate(t *testing.T, p adapters.Plugin, f Features, ch Channel) {
	r := runRouted(t, p, ch)
	msg := r.fk.Message(t)
	r.send(t, f, msg)
	r.send(t, f, msg)
	// Another message after both: once it is stored, the repeat was
	// handled too.
	r.send(t, f, r.fk.Message(t))
	if ids := settle(t, r.st, 2); len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("inbound records %q, want 2: the message delivered twice stored once, and the next one", ids)
	}
}

// checkOwnEcho is OwnEchoDropped.
func checkOwnEcho(t *testing.T, p adapters.Plugin, f Features, ch Channel) {
	r := runRouted(t, p, ch)
	r.send(t, f, r.fk.Own(t))
	// A person's message after it: once it is stored, the echo was handled.
	r.send(t, f, r.fk.Message(t))
	if ids := settle(t, r.st, 1); len(ids) != 1 {
		t.Fatalf("inbound records %q, want only the person's message: the bot's own reached a session", ids)
	}
}

// deliveries numbers the deliveries of the unit checks.
var deliveries atomic.Int64

// delivery is an agent's answer to post to to.
func delivery(to envelope.Conversation) adapters.Delivery {
	id := fmt.Sprintf("contract-%d", deliveries.Add(1))
	return Delivery(id, to, "The build is green again.", time.Now().UTC().Truncate(time.Second), 1)
}

// checkRateLimit is RateLimitIsBackOff.
func checkRateLimit(t *testing.T, ch Channel) {
	fk := ch.Open(t)
	a := fk.New(t, deps(&Recorder{}))
	to := fk.To(t, a)
	const wait = 7 * time.Second
	fk.RateLimit(t, wait)
	_, err := a.Deliver(context.Background(), delivery(to))
	var bo *adapters.BackOff
	switch {
	case !errors.As(err, &bo):
		t.Fatalf("Deliver = %v, want an *adapters.BackOff", err)
	case bo.Wait < wait-time.Second || bo.Wait > wait+time.Second:
		t.Errorf("BackOff waits %s, want about Retry-After (%s)", bo.Wait, wait)
	case errors.Is(err, adapters.ErrPermanent):
		t.Errorf("Deliver = %v: a rate limit is not permanent", err)
	}
}

// checkHealth is HealthReported.
func checkHealth(t *testing.T, ch Channel) {
	fk := ch.Open(t)
	a := fk.New(t, deps(&Recorder{}))
	c, ok := a.(adapters.Checker)
	if !ok {
		t.Fatal("the adapter is not an adapters.Checker")
	}
	ctx := context.Background()
	to := fk.To(t, a)
	if _, err := a.Deliver(ctx, delivery(to)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if err := c.Check(ctx); err != nil {
		t.Fatalf("Check after a post the channel took = %v, want healthy", err)
	}
	restore := fk.RefuseCredentials(t)
	if _, err := a.Deliver(ctx, delivery(to)); err == nil {
		t.Fatal("Deliver succeeded with refused credentials")
	}
	if err := c.Check(ctx); err == nil {
		t.Fatal("Check after the channel refused the credentials = nil, want unhealthy")
	}
	restore()
	if _, err := a.Deliver(ctx, delivery(to)); err != nil {
		t.Fatalf("Deliver after the credentials are taken again: %v", err)
	}
	if err := c.Check(ctx); err != nil {
		t.Errorf("Check after the credentials are taken again = %v, want healthy", err)
	}
}

// Toggle turns a switch of a fake on, under mu, and returns the func that
// turns it off again: a Fake.RefuseCredentials is
//
//	return adaptertest.Toggle(&fake.mu, func(on bool) { fake.revoked = on })
func Toggle(mu sync.Locker, set func(on bool)) (off func()) {
	mu.Lock()
	set(true)
	mu.Unlock()
	return func() {
		mu.Lock()
		set(false)
		mu.Unlock()
	}
}

// DeliveryID is a webhook delivery id for payload (hex, 32 digits): the
// same payload has the same id, as a channel's retries of one delivery do.
func DeliveryID(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:16])
}
