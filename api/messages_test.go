package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// seedBody is the body of the seed's curl command, byte for byte.
const seedBody = `{ "text": "also check the CI config", "idempotency_key": "nudge-1" }`

// TestSeedCurl sends the seed's request as curl -d sends it (a form content
// type, a JSON body) over real HTTP, and checks the stored envelope field by
// field.
func TestSeedCurl(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	ts := httptest.NewServer(h.srv)
	defer ts.Close()

	hr, err := http.NewRequest("POST", ts.URL+"/v3/sessions/"+id+"/messages", strings.NewReader(seedBody))
	if err != nil {
		t.Fatal(err)
	}
	// What curl -d sends.
	hr.Header.Set("Authorization", "Bearer "+adminSecret)
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hr.Header.Set("User-Agent", "curl/8.5.0")
	hr.Header.Set("Accept", "*/*")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	got := decodeAppend(t, body)
	want := envelope.Envelope{
		ID:           "client:nudge-1",
		Source:       "client",
		Kind:         envelope.KindMessage,
		Actor:        envelope.Actor{ID: "client:admin", Type: envelope.Human},
		Conversation: envelope.Conversation{Source: "client"},
		Text:         "also check the CI config",
		Refs:         envelope.Refs{},
		TS:           t0,
		Raw:          json.RawMessage(seedBody),
	}
	checkEnvelope(t, got.Message.Envelope, want)
	if got.Message.Seq != 1 || got.Message.Direction != store.Inbound {
		t.Errorf("seq %d direction %q, want 1 inbound", got.Message.Seq, got.Message.Direction)
	}
	if got.Session.ID != id || got.Session.State != store.Running {
		t.Errorf("session %+v, want %s running (a message wakes the session)", got.Session, id)
	}
	recs := h.records(id)
	if len(recs) != 1 {
		t.Fatalf("%d records stored, want 1", len(recs))
	}
	checkEnvelope(t, recs[0].Envelope, want)
}

// TestSeedCurlExec runs the seed's command with the real curl, when there
// is one.
func TestSeedCurlExec(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	h := newHarness(t, nil)
	id := h.newSession()
	ts := httptest.NewServer(h.srv)
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "-w", "\n%{http_code}",
		ts.URL+"/v3/sessions/"+id+"/messages",
		"-H", "Authorization: Bearer "+adminSecret,
		"-d", seedBody).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	cut := strings.LastIndexByte(string(out), '\n')
	body, code := string(out[:cut]), string(out[cut+1:])
	if code != "202" {
		t.Fatalf("curl got %s: %s", code, body)
	}
	got := decodeAppend(t, []byte(body))
	if got.Message.Envelope.ID != "client:nudge-1" || string(got.Message.Envelope.Raw) != seedBody {
		t.Errorf("envelope %+v", got.Message.Envelope)
	}
}

func checkEnvelope(t testing.TB, got, want envelope.Envelope) {
	t.Helper()
	if !bytes.Equal(got.Raw, want.Raw) {
		t.Errorf("raw = %q, want %q", got.Raw, want.Raw)
	}
	if !got.TS.Equal(want.TS) {
		t.Errorf("ts = %v, want %v", got.TS, want.TS)
	}
	got.Raw, want.Raw, got.TS, want.TS = nil, nil, time.Time{}, time.Time{}
	if got.Refs == nil {
		got.Refs = envelope.Refs{}
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Errorf("envelope = %s\nwant       %s", gj, wj)
	}
}

func TestMessageFields(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	body := `{"text": "look at this", "refs": {"repo": "acme/api", "pr": 42}, "conversation": {"ref": "thread-42"}, "actor": {"display": "Ada"}}`
	w := h.do(req{method: "POST", path: "/v3/sessions/" + id + "/messages", token: steerSecret, body: body})
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	env := decodeAppend(t, w.Body.Bytes()).Message.Envelope
	if !strings.HasPrefix(env.ID, "client:") || len(env.ID) < len("client:")+30 {
		t.Errorf("generated id %q, want client:<unique>", env.ID)
	}
	checkEnvelope(t, env, envelope.Envelope{
		ID:           env.ID,
		Source:       "client",
		Kind:         envelope.KindMessage,
		Actor:        envelope.Actor{ID: "client:steerer", Display: "Ada", Type: envelope.Human},
		Conversation: envelope.Conversation{Source: "client", Ref: "thread-42"},
		Text:         "look at this",
		Refs:         envelope.Refs{"repo": "acme/api", "pr": "42"},
		TS:           t0,
		Raw:          json.RawMessage(body),
	})

	// Without a key, every request is a new message.
	w2 := h.do(req{method: "POST", path: "/v3/sessions/" + id + "/messages", token: steerSecret, body: body})
	if w2.Code != http.StatusAccepted {
		t.Fatalf("second post: status %d", w2.Code)
	}
	if id2 := decodeAppend(t, w2.Body.Bytes()).Message.Envelope.ID; id2 == env.ID {
		t.Errorf("two posts without a key got the same id %q", id2)
	}
	if n := len(h.records(id)); n != 2 {
		t.Errorf("%d records, want 2", n)
	}
}

func TestIdempotentReplay(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	first := h.steer(id, "hello", "k1")
	if first.Code != http.StatusAccepted || first.Header().Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d replayed=%q", first.Code, first.Header().Get("Idempotent-Replayed"))
	}
	h.clock.Advance(time.Minute)
	// The same request, spelled differently: the stored original comes back.
	again := h.do(req{method: "POST", path: "/v3/sessions/" + id + "/messages", token: adminSecret,
		body: `{"idempotency_key":"k1",  "text":"hello"}`})
	if again.Code != http.StatusOK {
		t.Fatalf("replay: status %d, want 200: %s", again.Code, again.Body)
	}
	if got := again.Header().Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("Idempotent-Replayed = %q, want true", got)
	}
	a, b := decodeAppend(t, first.Body.Bytes()), decodeAppend(t, again.Body.Bytes())
	if a.Message.Seq != b.Message.Seq || !bytes.Equal(a.Message.Envelope.Raw, b.Message.Envelope.Raw) ||
		!b.Message.Envelope.TS.Equal(t0) {
		t.Errorf("replay returned %+v, want the original %+v", b.Message, a.Message)
	}
	if n := len(h.records(id)); n != 1 {
		t.Errorf("%d records after a replay, want 1", n)
	}
	// The key belongs to the session: another session takes it afresh.
	other := h.newSession()
	if w := h.steer(other, "hello", "k1"); w.Code != http.StatusAccepted {
		t.Errorf("same key in another session: %d, want 202", w.Code)
	}
}

func TestIdempotencyConflict(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	path := "/v3/sessions/" + id + "/messages"
	if w := h.do(req{method: "POST", path: path, token: adminSecret, body: `{"text":"a","idempotency_key":"k","refs":{"pr":"1"}}`}); w.Code != http.StatusAccepted {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	for _, body := range []string{
		`{"text":"b","idempotency_key":"k","refs":{"pr":"1"}}`,
		`{"text":"a","idempotency_key":"k","refs":{"pr":"2"}}`,
		`{"text":"a","idempotency_key":"k"}`,
	} {
		w := h.do(req{method: "POST", path: path, token: adminSecret, body: body})
		if w.Code != http.StatusUnprocessableEntity || errorCode(t, w.Body.Bytes()) != codeConflict {
			t.Errorf("%s: %d %s, want 422 %s", body, w.Code, w.Body, codeConflict)
		}
	}
	if n := len(h.records(id)); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
}

func TestIdempotencyKeyHeader(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	path := "/v3/sessions/" + id + "/messages"
	post := func(body string, header string) *httptest.ResponseRecorder {
		return h.do(req{method: "POST", path: path, token: adminSecret, body: body,
			header: map[string]string{"Idempotency-Key": header}})
	}
	cases := []struct {
		name, body, header string
		status             int
		id                 string
	}{
		{"header only", `{"text":"x"}`, "hdr-1", http.StatusAccepted, "client:hdr-1"},
		{"quoted header", `{"text":"y"}`, `"hdr-2"`, http.StatusAccepted, "client:hdr-2"},
		{"both equal", `{"text":"z","idempotency_key":"hdr-3"}`, "hdr-3", http.StatusAccepted, "client:hdr-3"},
		{"header replays body key", `{"text":"z"}`, "hdr-3", http.StatusOK, "client:hdr-3"},
		{"both differ", `{"text":"z","idempotency_key":"a"}`, "b", http.StatusBadRequest, ""},
		{"empty body key", `{"text":"z","idempotency_key":""}`, "", http.StatusBadRequest, ""},
		{"control character", `{"text":"z","idempotency_key":"a\u0007b"}`, "", http.StatusBadRequest, ""},
		{"too long", `{"text":"z","idempotency_key":"` + strings.Repeat("k", maxKeyLen+1) + `"}`, "", http.StatusBadRequest, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := post(c.body, c.header)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.id != "" {
				if got := decodeAppend(t, w.Body.Bytes()).Message.Envelope.ID; got != c.id {
					t.Errorf("id %q, want %q", got, c.id)
				}
			}
		})
	}
}

func TestMessageErrors(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Limits.MaxBody = 4096
		o.Limits.MaxText = 100
	})
	id := h.newSession()
	path := "/v3/sessions/" + id + "/messages"
	ok := `{"text":"hi"}`
	cases := []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"unknown session", req{path: "/v3/sessions/ses_nope/messages", token: adminSecret, body: ok}, 404, codeNotFound},
		{"no token", req{path: path, body: ok}, 401, codeUnauthorized},
		{"bad token", req{path: path, token: "sb_wrong", body: ok}, 401, codeUnauthorized},
		{"basic auth", req{path: path, body: ok, header: map[string]string{"Authorization": "Basic YTpi"}}, 401, codeUnauthorized},
		{"agent scope", req{path: "/v3/sessions/" + agentSession + "/messages", token: agentSecret, body: ok}, 403, codeForbidden},
		{"body over limit", req{path: path, token: adminSecret, body: `{"text":"` + strings.Repeat("a", 5000) + `"}`}, 413, codeTooLarge},
		{"text over limit", req{path: path, token: adminSecret, body: `{"text":"` + strings.Repeat("a", 101) + `"}`}, 422, codeTextTooLong},
		{"invalid JSON", req{path: path, token: adminSecret, body: `{"text": "hi"`}, 400, codeInvalidRequest},
		{"not JSON", req{path: path, token: adminSecret, body: `text=hi`}, 400, codeInvalidRequest},
		{"not an object", req{path: path, token: adminSecret, body: `["hi"]`}, 400, codeInvalidRequest},
		{"trailing data", req{path: path, token: adminSecret, body: `{"text":"hi"} {}`}, 400, codeInvalidRequest},
		{"empty body", req{path: path, token: adminSecret}, 400, codeInvalidRequest},
		{"unknown field", req{path: path, token: adminSecret, body: `{"text":"hi","txet":"x"}`}, 400, codeInvalidRequest},
		{"unknown nested field", req{path: path, token: adminSecret, body: `{"text":"hi","conversation":{"source":"slack"}}`}, 400, codeInvalidRequest},
		{"missing text", req{path: path, token: adminSecret, body: `{"idempotency_key":"k"}`}, 400, codeInvalidRequest},
		{"blank text", req{path: path, token: adminSecret, body: `{"text":"  "}`}, 400, codeInvalidRequest},
		{"text not a string", req{path: path, token: adminSecret, body: `{"text":5}`}, 400, codeInvalidRequest},
		{"refs value object", req{path: path, token: adminSecret, body: `{"text":"hi","refs":{"pr":{}}}`}, 400, codeInvalidRequest},
		{"refs bad key", req{path: path, token: adminSecret, body: `{"text":"hi","refs":{"a b":"c"}}`}, 400, codeInvalidRequest},
		{"invalid UTF-8", req{path: path, token: adminSecret, body: "{\"text\":\"\xff\"}"}, 400, codeInvalidRequest},
		{"multipart", req{path: path, token: adminSecret, body: ok, header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}}, 415, codeUnsupportedMedia},
		{"gzip", req{path: path, token: adminSecret, body: ok, header: map[string]string{"Content-Encoding": "gzip"}}, 415, codeUnsupportedMedia},
		{"wrong method", req{method: "DELETE", path: path, token: adminSecret}, 405, codeMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.r.method == "" {
				c.r.method = "POST"
			}
			w := h.do(c.r)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if got := errorCode(t, w.Body.Bytes()); got != c.code {
				t.Errorf("code %q, want %q", got, c.code)
			}
			if c.status == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want Bearer …", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
	if n := len(h.records(id)); n != 0 {
		t.Errorf("%d records stored by failing requests", n)
	}
	// At the limits exactly, the request passes.
	if w := h.do(req{method: "POST", path: path, token: adminSecret, body: `{"text":"` + strings.Repeat("é", 50) + `"}`}); w.Code != http.StatusAccepted {
		t.Errorf("text of exactly MaxText bytes: %d %s", w.Code, w.Body)
	}
}

// TestBodyLimitUnknownLength sends a chunked body, whose length is learnt
// only by reading it.
func TestBodyLimitUnknownLength(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Limits.MaxBody = 100 })
	id := h.newSession()
	ts := httptest.NewServer(h.srv)
	defer ts.Close()
	body := io.MultiReader(strings.NewReader(`{"text":"`), strings.NewReader(strings.Repeat("a", 200)), strings.NewReader(`"}`))
	hr, _ := http.NewRequest("POST", ts.URL+"/v3/sessions/"+id+"/messages", body)
	hr.Header.Set("Authorization", "Bearer "+adminSecret)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength == 0 || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
}

// TestRawByteForByte sends a pretty-printed body and finds it verbatim in
// the response, the store, the pull endpoint and the stream.
func TestRawByteForByte(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	body := "{\n\t\"text\" :  \"r\\u00e9sum\u00e9 \\\"quoted\\\"\",\r\n  \"refs\": { \"pr\": 1.50e1 },\n" +
		"  \"idempotency_key\": \"raw-1\"   ,\n  \"actor\": {\"display\": \"<Ada & co>\"}\n}\n\n"
	w := h.do(req{method: "POST", path: "/v3/sessions/" + id + "/messages", token: adminSecret, body: body})
	if w.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	// JSON decoders drop the whitespace around a value, so look at the bytes.
	verbatim := []byte(`"raw":` + body + `},"stored_at"`)
	if !bytes.Contains(w.Body.Bytes(), verbatim) {
		t.Errorf("response does not hold the body verbatim:\n%q", w.Body)
	}
	env := decodeAppend(t, w.Body.Bytes()).Message.Envelope
	if env.Text != `résumé "quoted"` || env.Refs["pr"] != "1.50e1" || env.Actor.Display != "<Ada & co>" {
		t.Errorf("decoded fields: %q %v %q", env.Text, env.Refs, env.Actor.Display)
	}
	if got := h.records(id)[0].Envelope.Raw; string(got) != body {
		t.Errorf("stored raw = %q", got)
	}
	r := h.do(req{method: "GET", path: "/v3/sessions/" + id + "/messages", token: adminSecret})
	if !bytes.Contains(r.Body.Bytes(), verbatim) {
		t.Errorf("GET messages does not hold the body verbatim:\n%q", r.Body)
	}
}

// TestConcurrentSameKey sends 100 simultaneous requests with one key: one
// stores the message (202), the others replay it (200).
func TestConcurrentSameKey(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	ts := httptest.NewServer(h.srv)
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	defer client.CloseIdleConnections()

	const n = 100
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		statuses = make([]int, n)
		seqs     = make([]int64, n)
		errs     = make(chan error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			hr, _ := http.NewRequest("POST", ts.URL+"/v3/sessions/"+id+"/messages", strings.NewReader(seedBody))
			hr.Header.Set("Authorization", "Bearer "+steerSecret)
			resp, err := client.Do(hr)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			statuses[i] = resp.StatusCode
			if resp.StatusCode < 300 {
				var r appendResponse
				if err := json.Unmarshal(b, &r); err != nil {
					errs <- err
					return
				}
				seqs[i] = r.Message.Seq
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	count := map[int]int{}
	for i, s := range statuses {
		count[s]++
		if seqs[i] != 1 {
			t.Errorf("request %d: seq %d, want 1", i, seqs[i])
		}
	}
	if count[202] != 1 || count[200] != n-1 {
		t.Errorf("statuses %v, want one 202 and %d 200s", count, n-1)
	}
	if recs := h.records(id); len(recs) != 1 {
		t.Errorf("%d records stored, want exactly 1", len(recs))
	}
}

func TestOutputs(t *testing.T) {
	h := newHarness(t, nil)
	path := "/v3/sessions/" + agentSession + "/outputs"
	// A message wakes the session; the agent's output with state idle ends
	// the turn.
	if w := h.steer(agentSession, "please fix", "m1"); w.Code != http.StatusAccepted ||
		decodeAppend(t, w.Body.Bytes()).Session.State != store.Running {
		t.Fatalf("steer: %d %s", w.Code, w.Body)
	}
	body := `{"text":"done: see PR","idempotency_key":"o1","refs":{"pr":7},"conversation":{"source":"slack","ref":"C1/123.4"},"broadcast":true,"state":"idle"}`
	w := h.do(req{method: "POST", path: path, token: agentSecret, body: body})
	if w.Code != http.StatusAccepted {
		t.Fatalf("output: %d %s", w.Code, w.Body)
	}
	got := decodeAppend(t, w.Body.Bytes())
	checkEnvelope(t, got.Message.Envelope, envelope.Envelope{
		ID:           "agent:o1",
		Source:       "agent",
		Kind:         envelope.KindMessage,
		Actor:        envelope.Actor{ID: "agent:bot", Type: envelope.Agent},
		Conversation: envelope.Broadcast, // broadcast wins over a named conversation
		Text:         "done: see PR",
		Refs:         envelope.Refs{"pr": "7"},
		TS:           t0,
		Raw:          json.RawMessage(body),
	})
	if got.Message.Direction != store.Outbound || got.Message.Seq != 2 {
		t.Errorf("direction %q seq %d, want outbound 2", got.Message.Direction, got.Message.Seq)
	}
	if got.Session.State != store.Idle {
		t.Errorf("state in response %q, want idle", got.Session.State)
	}
	if sess, err := h.store.Session(context.Background(), agentSession); err != nil || sess.State != store.Idle {
		t.Errorf("stored state %q (%v), want idle", sess.State, err)
	}

	// Replay, conflict, scopes and bad states.
	if w := h.do(req{method: "POST", path: path, token: agentSecret, body: body}); w.Code != http.StatusOK ||
		w.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %q", w.Code, w.Header().Get("Idempotent-Replayed"))
	}
	if w := h.do(req{method: "POST", path: path, token: agentSecret, body: `{"text":"other","idempotency_key":"o1"}`}); w.Code != http.StatusUnprocessableEntity {
		t.Errorf("conflict: %d", w.Code)
	}
	other := h.newSession()
	for _, c := range []struct {
		name   string
		r      req
		status int
	}{
		{"admin may", req{path: path, token: adminSecret, body: `{"text":"from admin"}`}, 202},
		{"steer may not", req{path: path, token: steerSecret, body: `{"text":"x"}`}, 403},
		{"agent of another session", req{path: "/v3/sessions/" + other + "/outputs", token: agentSecret, body: `{"text":"x"}`}, 403},
		{"state running", req{path: path, token: agentSecret, body: `{"text":"x","state":"running"}`}, 400},
		{"conversation ref without source", req{path: path, token: agentSecret, body: `{"text":"x","conversation":{"ref":"r"}}`}, 400},
		{"unknown session", req{path: "/v3/sessions/ses_nope/outputs", token: adminSecret, body: `{"text":"x"}`}, 404},
		{"no token", req{path: path, body: `{"text":"x"}`}, 401},
	} {
		c.r.method = "POST"
		if w := h.do(c.r); w.Code != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, w.Code, c.status, w.Body)
		}
	}
}

func TestReadMessages(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	for i := 1; i <= 5; i++ {
		if w := h.steer(id, fmt.Sprintf("m%d", i), fmt.Sprintf("k%d", i)); w.Code != http.StatusAccepted {
			t.Fatalf("steer %d: %d", i, w.Code)
		}
	}
	get := func(query, token string) *httptest.ResponseRecorder {
		return h.do(req{method: "GET", path: "/v3/sessions/" + id + "/messages" + query, token: token})
	}
	var texts []string
	after := int64(0)
	for page := 0; ; page++ {
		w := get(fmt.Sprintf("?after=%d&limit=2", after), steerSecret)
		if w.Code != http.StatusOK {
			t.Fatalf("page %d: %d %s", page, w.Code, w.Body)
		}
		r := decodeRead(t, w.Body.Bytes())
		if len(r.Messages) == 0 {
			if r.NextAfter != after {
				t.Errorf("empty page: next_after %d, want %d", r.NextAfter, after)
			}
			break
		}
		for _, m := range r.Messages {
			if m.Seq != after+1 || m.Direction != store.Inbound || m.StoredAt.IsZero() {
				t.Errorf("record %+v after %d", m, after)
			}
			after = m.Seq
			texts = append(texts, m.Envelope.Text)
		}
		if r.NextAfter != after {
			t.Errorf("next_after %d, want %d", r.NextAfter, after)
		}
	}
	if strings.Join(texts, ",") != "m1,m2,m3,m4,m5" {
		t.Errorf("read %v", texts)
	}
	// Nothing new and a short wait: an empty page.
	if r := decodeRead(t, get("?after=5&wait=1ms", adminSecret).Body.Bytes()); len(r.Messages) != 0 || r.NextAfter != 5 {
		t.Errorf("after the end: %+v", r)
	}
	for _, c := range []struct {
		query, token string
		status       int
	}{
		{"?after=-1", adminSecret, 400},
		{"?after=x", adminSecret, 400},
		{"?limit=0", adminSecret, 400},
		{"?limit=100000", adminSecret, 400},
		{"?wait=soon", adminSecret, 400},
		{"?wait=-1s", adminSecret, 400},
		{"", agentSecret, 403}, // not the agent's session
		{"", "", 401},
	} {
		if w := get(c.query, c.token); w.Code != c.status {
			t.Errorf("%q: %d, want %d", c.query, w.Code, c.status)
		}
	}
	if w := h.do(req{method: "GET", path: "/v3/sessions/ses_nope/messages", token: adminSecret}); w.Code != 404 {
		t.Errorf("unknown session: %d", w.Code)
	}
	if w := h.do(req{method: "GET", path: "/v3/sessions/" + agentSession + "/messages", token: agentSecret}); w.Code != 200 {
		t.Errorf("agent reading its session: %d", w.Code)
	}
}

func TestWaitParam(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"": 0, "0": 0, "30s": 30 * time.Second, "1.5": 1500 * time.Millisecond, "2m": MaxWait, "3600": MaxWait, "250ms": 250 * time.Millisecond,
	} {
		if got, err := waitParam(in); err != nil || got != want {
			t.Errorf("waitParam(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "-1", "-2s", "NaN"} {
		if _, err := waitParam(in); err == nil {
			t.Errorf("waitParam(%q) succeeded", in)
		}
	}
}

// TestLongPollWakes starts a long poll, waits until it has found nothing and
// is waiting, appends, and expects the poll to return the new record.
func TestLongPollWakes(t *testing.T) {
	wl := (*watchLog)(nil)
	h := newHarness(t, func(o *Options) {
		wl = newWatchLog(o.Store)
		o.Log = wl
	})
	id := h.newSession()
	h.steer(id, "first", "k1")
	ts := httptest.NewServer(h.srv)
	defer ts.Close()

	type result struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		hr, _ := http.NewRequest("GET", ts.URL+"/v3/sessions/"+id+"/messages?after=1&wait=60s", nil)
		hr.Header.Set("Authorization", "Bearer "+adminSecret)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, b, err}
	}()
	await(t, wl.emptyReads, "the long poll to find nothing")
	select {
	case r := <-done:
		t.Fatalf("the poll returned before anything was appended: %+v", r)
	default:
	}
	h.steer(id, "second", "k2")
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not wake on append")
	}
	if r.err != nil || r.status != 200 {
		t.Fatalf("poll: %d %v %s", r.status, r.err, r.body)
	}
	got := decodeRead(t, r.body)
	if len(got.Messages) != 1 || got.Messages[0].Envelope.Text != "second" || got.NextAfter != 2 {
		t.Errorf("poll returned %+v", got)
	}
	if n := wl.openSubs(); n != 0 {
		t.Errorf("%d subscriptions left open", n)
	}
}

// TestLongPollShutdown ends a waiting poll with Shutdown.
func TestLongPollShutdown(t *testing.T) {
	wl := (*watchLog)(nil)
	h := newHarness(t, func(o *Options) {
		wl = newWatchLog(o.Store)
		o.Log = wl
	})
	id := h.newSession()
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		hr := httptest.NewRequest("GET", "/v3/sessions/"+id+"/messages?wait=60s", nil)
		hr.Header.Set("Authorization", "Bearer "+adminSecret)
		h.srv.ServeHTTP(w, hr)
		done <- w
	}()
	await(t, wl.emptyReads, "the long poll to wait")
	h.srv.Shutdown()
	select {
	case w := <-done:
		if w.Code != 200 || len(decodeRead(t, w.Body.Bytes()).Messages) != 0 {
			t.Errorf("poll ended with %d %s", w.Code, w.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not end the long poll")
	}
}

// TestLoneSurrogatesAreRefused: a lone surrogate escape decodes (to U+FFFD)
// but would leave raw unreadable by strict readers; it is a 400, and a
// proper pair is taken.
func TestLoneSurrogatesAreRefused(t *testing.T) {
	h := newHarness(t, nil)
	path := "/v3/sessions/" + agentSession + "/messages"
	for _, c := range []struct {
		body   string
		status int
	}{
		{`{"text":"\ud800","idempotency_key":"lone-high"}`, 400},
		{`{"text":"a\udc00b","idempotency_key":"lone-low"}`, 400},
		{`{"text":"x","refs":{"k":"\ud83dz"},"idempotency_key":"high-then-letter"}`, 400},
		{`{"text":"\ud83d\ude00","idempotency_key":"pair"}`, 202},
	} {
		w := h.do(req{method: "POST", path: path, token: steerSecret, body: c.body})
		if w.Code != c.status {
			t.Errorf("%s: %d, want %d: %s", c.body, w.Code, c.status, w.Body)
		}
		if c.status == 400 && !strings.Contains(w.Body.String(), "surrogate") {
			t.Errorf("%s: %s, want a message about the surrogate", c.body, w.Body)
		}
	}
}

// TestOutputEdits checks edits and deletions of outputs: they name an
// earlier output message of the same session, go where it went, and are
// refused with a clear 4xx otherwise.
func TestOutputEdits(t *testing.T) {
	h, _ := routerHarness(t)
	ctx := context.Background()
	thread := envelope.Conversation{Source: "slack", Ref: "T1/C1/100.1"}
	if _, _, err := h.store.Bind(ctx, store.Binding{SessionID: agentSession, Conversation: thread}, nil); err != nil {
		t.Fatal(err)
	}
	path := "/v3/sessions/" + agentSession + "/outputs"
	post := func(token, body string) *httptest.ResponseRecorder {
		return h.do(req{method: "POST", path: path, token: token, body: body})
	}
	// A stream: a partial message to the thread, a partial edit, a final edit.
	if w := post(agentSecret, `{"text":"Look","partial":true,"idempotency_key":"s1","conversation":{"source":"slack","ref":"T1/C1/100.1"}}`); w.Code != http.StatusAccepted {
		t.Fatalf("partial message: %d %s", w.Code, w.Body)
	}
	if w := post(agentSecret, `{"text":"Looking at","kind":"edit","partial":true,"refs":{"edits":"agent:s1"},"idempotency_key":"s1-1"}`); w.Code != http.StatusAccepted {
		t.Fatalf("partial edit: %d %s", w.Code, w.Body)
	}
	body := `{"text":"Looking at it: done.","kind":"edit","refs":{"edits":"agent:s1"},"idempotency_key":"s1-2","state":"idle"}`
	w := post(agentSecret, body)
	if w.Code != http.StatusAccepted {
		t.Fatalf("final edit: %d %s", w.Code, w.Body)
	}
	got := decodeAppend(t, w.Body.Bytes())
	checkEnvelope(t, got.Message.Envelope, envelope.Envelope{
		ID: "agent:s1-2", Source: "agent", Kind: envelope.KindEdit,
		Actor:        envelope.Actor{ID: "agent:bot", Type: envelope.Agent},
		Conversation: thread, // where the message went
		Text:         "Looking at it: done.",
		Refs:         envelope.Refs{envelope.RefEdits: "agent:s1"},
		TS:           t0,
		Raw:          json.RawMessage(body),
	})
	if w := post(agentSecret, body); w.Code != http.StatusOK || w.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("replayed edit: %d %q", w.Code, w.Header().Get("Idempotent-Replayed"))
	}
	if w := post(agentSecret, `{"kind":"delete","refs":{"deletes":"agent:s1"},"idempotency_key":"s1-del"}`); w.Code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	recs := h.records(agentSession)
	var partial []bool
	var kinds []envelope.Kind
	for _, rec := range recs {
		kinds = append(kinds, rec.Envelope.Kind)
		partial = append(partial, rec.Envelope.Partial())
		if rec.Envelope.Conversation != thread {
			t.Errorf("record %d (%s) went to %s, want the thread", rec.Seq, rec.Envelope.Kind, rec.Envelope.Conversation.Key())
		}
	}
	if want := []envelope.Kind{"message", "edit", "edit", "delete"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	if want := []bool{true, true, false, false}; !slices.Equal(partial, want) {
		t.Errorf("partial %v, want %v", partial, want)
	}

	// Refusals.
	other := h.newSession()
	if w := h.do(req{method: "POST", path: "/v3/sessions/" + other + "/outputs", token: adminSecret, body: `{"text":"theirs","idempotency_key":"t1"}`}); w.Code != http.StatusAccepted {
		t.Fatalf("other session's output: %d %s", w.Code, w.Body)
	}
	if w := h.steer(agentSession, "a person's message", "in-1"); w.Code != http.StatusAccepted {
		t.Fatalf("steer: %d", w.Code)
	}
	for _, c := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"unknown output", `{"kind":"edit","text":"x","refs":{"edits":"agent:nope"}}`, 404, codeOutputNotFound},
		{"another session's output", `{"kind":"edit","text":"x","refs":{"edits":"agent:t1"}}`, 404, codeOutputNotFound},
		{"an edit of an edit", `{"kind":"edit","text":"x","refs":{"edits":"agent:s1-1"}}`, 422, codeNotEditable},
		{"an inbound message", `{"kind":"edit","text":"x","refs":{"edits":"client:in-1"}}`, 422, codeNotEditable},
		{"edit without target", `{"kind":"edit","text":"x"}`, 400, codeInvalidRequest},
		{"edit without text", `{"kind":"edit","refs":{"edits":"agent:s1"}}`, 400, codeInvalidRequest},
		{"edit with a conversation", `{"kind":"edit","text":"x","refs":{"edits":"agent:s1"},"conversation":{"source":"slack","ref":"T1/C1/100.1"}}`, 400, codeInvalidRequest},
		{"edit broadcast", `{"kind":"edit","text":"x","refs":{"edits":"agent:s1"},"broadcast":true}`, 400, codeInvalidRequest},
		{"delete with text", `{"kind":"delete","text":"x","refs":{"deletes":"agent:s1"}}`, 400, codeInvalidRequest},
		{"partial delete", `{"kind":"delete","partial":true,"refs":{"deletes":"agent:s1"}}`, 400, codeInvalidRequest},
		{"message naming a target", `{"text":"x","refs":{"edits":"agent:s1"}}`, 400, codeInvalidRequest},
		{"refs.partial by hand", `{"text":"x","refs":{"partial":"true"}}`, 400, codeInvalidRequest},
		{"system kind", `{"kind":"system","text":"x"}`, 400, codeInvalidRequest},
		{"unknown kind", `{"kind":"shout","text":"x"}`, 400, codeInvalidRequest},
	} {
		w := post(agentSecret, c.body)
		if w.Code != c.status || !strings.Contains(w.Body.String(), `"`+c.code+`"`) {
			t.Errorf("%s: %d %s, want %d %s", c.name, w.Code, w.Body, c.status, c.code)
		}
	}
	// An agent token of another session cannot edit this one's outputs.
	if w := h.do(req{method: "POST", path: "/v3/sessions/" + other + "/outputs", token: agentSecret,
		body: `{"kind":"edit","text":"x","refs":{"edits":"agent:s1"}}`}); w.Code != http.StatusForbidden {
		t.Errorf("agent of another session: %d, want 403", w.Code)
	}
}
