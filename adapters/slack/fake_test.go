package slack

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/adapters/adaptertest"
)

const (
	testBotToken = "xoxb-test-token"
	testAppToken = "xapp-test-token"
	testSecret   = "test-signing-secret"
)

// fakeSlack is a fake Slack Web API: auth.test, users.info,
// chat.postMessage, conversations.replies, conversations.history,
// reactions.add/remove and apps.connections.open. It checks the tokens and
// records what it was asked.
//
// The listings (conversations.history and conversations.replies) serve the
// messages written with write, as the Web API documents them: history the
// channel's top-level messages (and thread broadcasts) newest first, replies
// a thread's root first and then its replies oldest first; both after oldest
// (exclusive unless inclusive=1), up to limit, paginated with an opaque
// response_metadata.next_cursor and has_more, thread roots carrying
// reply_count and latest_reply; channel_not_found and thread_not_found for
// what is not there. listFail scripts failures (a 429 with Retry-After),
// onList runs before each listing call is answered.
type fakeSlack struct {
	srv *httptest.Server

	mu         sync.Mutex
	identity   identity
	authError  string                                 // auth.test answers this error when set
	revoked    string                                 // when set, every call with the bot token answers this error
	users      map[string]string                      // user id → display name
	usersBlock chan struct{}                          // when set, users.info waits for it
	posts      []url.Values                           // accepted chat.postMessage requests
	postErrors []func(http.ResponseWriter)            // consumed, one per post, before accepting
	replies    []map[string]any                       // when set, conversations.replies answers these, unpaginated
	channels   map[string][]fakeMsg                   // channel → its messages, for the listings
	pageMax    int                                    // when > 0, no listing page holds more (as Slack may)
	listFail   map[string][]func(http.ResponseWriter) // method → failures consumed, one per call
	onList     func(method string, call int)          // runs before a listing call is answered (call counts from 1)
	listReqs   []listReq                              // the listing calls
	reactions  []string                               // "add eyes C1 1.2"
	calls      map[string]int                         // method → requests
	wsURL      string                                 // apps.connections.open answer
	nextTS     int

	// Live replies: the messages the bot posted (chat.postMessage,
	// chat.startStream), by channel + "/" + ts, and the calls that change
	// them (chat.update, chat.delete, the stream methods,
	// assistant.threads.setStatus), in order. listFail scripts their
	// failures too.
	msgs    map[string]*fakeChat
	changes []listReq

	// limit, when its max is set, rate-limits the methods that change a
	// message (chat.update, chat.appendStream, chat.stopStream) as Slack
	// does a Tier 3 method: more than max calls of one method in one
	// channel within window are answered 429 with Retry-After. hits are
	// the times of the calls let through, by channel + " " + method.
	limit struct {
		max    int
		window time.Duration
	}
	hits    map[string][]time.Time
	limited int // calls answered 429 by limit
	// onText, when set, is called (under mu) with every text a message of
	// the bot takes: when it is created and when a change is accepted.
	onText func(channel, ts, text string)
}

// fakeChat is a message the fake holds for chat.update, chat.delete and
// the stream methods.
type fakeChat struct {
	Channel, Thread, TS string
	Text                string // text, or markdown_text when Markdown
	Markdown            bool
	Streaming           bool // started with chat.startStream, not yet stopped
	Foreign             bool // written by someone else: the bot may not change it
	Edits               int  // chat.update calls that changed it
}

func newFakeSlack(t testing.TB) *fakeSlack {
	f := &fakeSlack{
		identity: identity{TeamID: "T0TEST", UserID: "U0BOTUSER", BotID: "B0OWN"},
		users:    map[string]string{},
		calls:    map[string]int{},
		channels: map[string][]fakeMsg{},
		listFail: map[string][]func(http.ResponseWriter){},
		msgs:     map[string]*fakeChat{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlack) serve(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	token := form.Get("token")
	if token == "" {
		token = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	f.mu.Lock()
	f.calls[method]++
	revoked := f.revoked
	f.mu.Unlock()
	want := testBotToken
	if method == "apps.connections.open" {
		want = testAppToken
	}
	if token != want {
		writeJSON(w, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	if revoked != "" && token == testBotToken {
		writeJSON(w, map[string]any{"ok": false, "error": revoked})
		return
	}
	switch method {
	case "auth.test":
		f.mu.Lock()
		id, authErr := f.identity, f.authError
		f.mu.Unlock()
		if authErr != "" {
			writeJSON(w, map[string]any{"ok": false, "error": authErr})
			return
		}
		writeJSON(w, map[string]any{"ok": true, "team_id": id.TeamID, "user_id": id.UserID, "bot_id": id.BotID, "team": "Test", "user": "switchboard"})
	case "users.info":
		f.mu.Lock()
		block := f.usersBlock
		name, ok := f.users[form.Get("user")]
		f.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		if !ok {
			writeJSON(w, map[string]any{"ok": false, "error": "user_not_found"})
			return
		}
		writeJSON(w, map[string]any{"ok": true, "user": map[string]any{
			"id": form.Get("user"), "name": strings.ToLower(name), "profile": map[string]any{"display_name": name},
		}})
	case "chat.postMessage":
		f.mu.Lock()
		if len(f.postErrors) > 0 {
			fail := f.postErrors[0]
			f.postErrors = f.postErrors[1:]
			if fail != nil {
				f.mu.Unlock()
				fail(w)
				return
			}
		}
		f.nextTS++
		ts := fmt.Sprintf("1800000000.%06d", f.nextTS)
		f.posts = append(f.posts, form)
		md := form.Get("markdown_text") != ""
		m := &fakeChat{Channel: form.Get("channel"), Thread: form.Get("thread_ts"), TS: ts,
			Text: cmp.Or(form.Get("markdown_text"), form.Get("text")), Markdown: md}
		f.msgs[form.Get("channel")+"/"+ts] = m
		f.texted(m)
		f.mu.Unlock()
		writeJSON(w, map[string]any{"ok": true, "channel": form.Get("channel"), "ts": ts,
			"message": map[string]any{"text": form.Get("text"), "ts": ts, "thread_ts": form.Get("thread_ts")}})
	case "conversations.replies":
		f.mu.Lock()
		msgs := f.replies
		f.mu.Unlock()
		if msgs != nil {
			writeJSON(w, map[string]any{"ok": true, "messages": msgs, "has_more": false})
			return
		}
		f.serveListing(w, method, form)
	case "conversations.history":
		f.serveListing(w, method, form)
	case "reactions.add", "reactions.remove":
		f.mu.Lock()
		f.reactions = append(f.reactions, strings.TrimPrefix(method, "reactions.")+" "+form.Get("name")+" "+form.Get("channel")+" "+form.Get("timestamp"))
		f.mu.Unlock()
		writeJSON(w, map[string]any{"ok": true})
	case "chat.update", "chat.delete", "chat.startStream", "chat.appendStream", "chat.stopStream", "assistant.threads.setStatus":
		f.serveChange(w, method, form)
	case "apps.connections.open":
		f.mu.Lock()
		u := f.wsURL
		f.mu.Unlock()
		writeJSON(w, map[string]any{"ok": true, "url": u})
	default:
		writeJSON(w, map[string]any{"ok": false, "error": "unknown_method"})
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// failWith returns a scripted chat.postMessage failure.
func failWith(status int, header map[string]string, body any) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		if body == nil {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}
}

func (f *fakeSlack) setUsers(names map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range names {
		f.users[k] = v
	}
}

func (f *fakeSlack) failPosts(fails ...func(http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.postErrors = append(f.postErrors, fails...)
}

func (f *fakeSlack) postsCopy() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.posts...)
}

func (f *fakeSlack) callCount(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// recorder is a test Ingress that records what it was given.
type recorder struct {
	mu     sync.Mutex
	ins    []adapters.Inbound
	fail   error // Ingest returns it (and records nothing) while set
	seen   chan adapters.Inbound
	failed chan struct{} // one value per failed Ingest
}

func newRecorder() *recorder {
	return &recorder{seen: make(chan adapters.Inbound, 100), failed: make(chan struct{}, 100)}
}

func (r *recorder) Ingest(_ context.Context, in adapters.Inbound) (adapters.Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		r.failed <- struct{}{}
		return adapters.Outcome{}, r.fail
	}
	dup := false
	for _, prev := range r.ins {
		dup = dup || prev.Envelope.ID == in.Envelope.ID
	}
	r.ins = append(r.ins, in)
	r.seen <- in
	return adapters.Outcome{SessionID: "s1", Seq: int64(len(r.ins)), Duplicate: dup}, nil
}

func (r *recorder) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

func (r *recorder) all() []adapters.Inbound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]adapters.Inbound(nil), r.ins...)
}

// testNow is the fixed clock of the tests.
var testNow = time.Date(2026, 6, 18, 12, 0, 0, 0, time.UTC)

// newTestAdapter builds an adapter against fake, with mutate applied to
// its configuration.
func newTestAdapter(t *testing.T, fake *fakeSlack, in adapters.Ingress, mutate func(*Config)) *Adapter {
	t.Helper()
	return newTestAdapterWith(t, fake, in, mutate, nil)
}

// newTestAdapterWith is newTestAdapter with deps applied to its Deps too.
func newTestAdapterWith(t testing.TB, fake *fakeSlack, in adapters.Ingress, mutate func(*Config), deps func(*adapters.Deps)) *Adapter {
	t.Helper()
	cfg := &Config{BotToken: testBotToken, SigningSecret: testSecret, APIURL: fake.srv.URL + "/api/"}
	if mutate != nil {
		mutate(cfg)
	}
	d := adapters.Deps{
		Ingress:    in,
		Now:        func() time.Time { return testNow },
		HTTPClient: fake.srv.Client(),
		Registry:   prometheus.NewRegistry(),
	}
	if deps != nil {
		deps(&d)
	}
	a, err := New(cfg, d)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// signedRequest builds a POST /events request signed at the adapter's clock.
func signedRequest(body []byte, secret string, ts time.Time) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(string(body)))
	stamp := fmt.Sprint(ts.Unix())
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Slack-Request-Timestamp", stamp)
	r.Header.Set("X-Slack-Signature", Sign([]byte(secret), stamp, body))
	return r
}

// post sends body through the adapter's handler, signed, and returns the
// response.
func post(a *Adapter, body []byte, header ...string) *httptest.ResponseRecorder {
	r := signedRequest(body, testSecret, testNow)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	return w
}

// outcomes returns the events counted so far, by outcome, for transport.
func outcomes(a *Adapter, transport string) map[string]float64 {
	m := map[string]float64{}
	for _, o := range []string{outcomeIngested, outcomeDuplicate, outcomeDropped, outcomeOwn, outcomeIgnored, outcomeError} {
		if v := adaptertest.CounterValue(a.metrics.events.WithLabelValues(transport, o)); v > 0 {
			m[o] = v
		}
	}
	return m
}

// callback wraps an inner event in an event_callback, as Slack sends it.
func callback(eventID string, inner string) []byte {
	return []byte(`{"token":"tok","team_id":"T0TEST","api_app_id":"A0TEST","event":` + inner +
		`,"type":"event_callback","event_id":"` + eventID + `","event_time":1700000000}`)
}

// fakeMsg is a message as the fake's listings return it.
type fakeMsg struct {
	Type        string      `json:"type"`
	Subtype     string      `json:"subtype,omitempty"`
	User        string      `json:"user,omitempty"`
	BotID       string      `json:"bot_id,omitempty"`
	AppID       string      `json:"app_id,omitempty"`
	Username    string      `json:"username,omitempty"`
	Text        string      `json:"text"`
	TS          string      `json:"ts"`
	ThreadTS    string      `json:"thread_ts,omitempty"`
	ReplyCount  int         `json:"reply_count,omitempty"`
	LatestReply string      `json:"latest_reply,omitempty"`
	Edited      *fakeEdited `json:"edited,omitempty"`
}

type fakeEdited struct {
	User string `json:"user"`
	TS   string `json:"ts"`
}

// listReq is a listing call the fake answered (or failed).
type listReq struct {
	method string
	form   url.Values
}

// write adds m to channel's messages.
func (f *fakeSlack) write(channel string, msgs ...fakeMsg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range msgs {
		if m.Type == "" {
			m.Type = "message"
		}
		f.channels[channel] = append(f.channels[channel], m)
	}
}

// failList scripts failures of the next calls of method (nil lets one
// through).
func (f *fakeSlack) failList(method string, fails ...func(http.ResponseWriter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listFail[method] = append(f.listFail[method], fails...)
}

// listCalls returns the listing calls made so far.
func (f *fakeSlack) listCalls() []listReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]listReq(nil), f.listReqs...)
}

// tsLess orders Slack timestamps.
func tsLess(a, b string) bool {
	ta, _ := parseTS(a)
	tb, _ := parseTS(b)
	return ta.Before(tb)
}

func (f *fakeSlack) serveListing(w http.ResponseWriter, method string, form url.Values) {
	f.mu.Lock()
	f.listReqs = append(f.listReqs, listReq{method: method, form: form})
	call := f.calls[method]
	hook := f.onList
	var fail func(http.ResponseWriter)
	if q := f.listFail[method]; len(q) > 0 {
		fail, f.listFail[method] = q[0], q[1:]
	}
	f.mu.Unlock()
	if hook != nil {
		hook(method, call)
	}
	if fail != nil {
		fail(w)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	msgs, ok := f.channels[form.Get("channel")]
	if !ok {
		writeJSON(w, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	// Thread roots carry their replies' count and newest ts.
	count, latest := map[string]int{}, map[string]string{}
	for _, r := range msgs {
		if r.ThreadTS != "" && r.ThreadTS != r.TS {
			count[r.ThreadTS]++
			if l := latest[r.ThreadTS]; l == "" || tsLess(l, r.TS) {
				latest[r.ThreadTS] = r.TS
			}
		}
	}
	all := make([]fakeMsg, 0, len(msgs))
	for _, m := range msgs {
		if n := count[m.TS]; n > 0 && (m.ThreadTS == "" || m.ThreadTS == m.TS) {
			m.ThreadTS, m.ReplyCount, m.LatestReply = m.TS, n, latest[m.TS]
		}
		all = append(all, m)
	}
	sort.SliceStable(all, func(i, j int) bool { return tsLess(all[i].TS, all[j].TS) })
	after := func(ts string) bool {
		o := form.Get("oldest")
		if o == "" {
			return true
		}
		if form.Get("inclusive") == "1" {
			return !tsLess(ts, o)
		}
		return tsLess(o, ts)
	}
	limit, _ := strconv.Atoi(form.Get("limit"))
	if limit <= 0 {
		limit = 100
	}
	if f.pageMax > 0 && limit > f.pageMax {
		limit = f.pageMax
	}
	var from string // the next_ts a cursor carries
	if c := form.Get("cursor"); c != "" {
		b, err := base64.StdEncoding.DecodeString(c)
		next, ok := strings.CutPrefix(string(b), "next_ts:")
		if err != nil || !ok {
			writeJSON(w, map[string]any{"ok": false, "error": "invalid_cursor"})
			return
		}
		from = next
	}
	var head, list []fakeMsg
	if method == "conversations.history" {
		for i := len(all) - 1; i >= 0; i-- { // newest first
			m := all[i]
			top := m.ThreadTS == "" || m.ThreadTS == m.TS || m.Subtype == "thread_broadcast"
			if top && after(m.TS) && (from == "" || !tsLess(from, m.TS)) {
				list = append(list, m)
			}
		}
	} else {
		root := form.Get("ts")
		for _, m := range all {
			switch {
			case m.TS == root:
				head = []fakeMsg{m}
			case m.ThreadTS == root && after(m.TS) && (from == "" || !tsLess(m.TS, from)):
				list = append(list, m)
			}
		}
		if head == nil {
			writeJSON(w, map[string]any{"ok": false, "error": "thread_not_found"})
			return
		}
	}
	more := len(list) > limit
	next := ""
	if more {
		next = base64.StdEncoding.EncodeToString([]byte("next_ts:" + list[limit].TS))
		list = list[:limit]
	}
	// Slack answers every page of a thread with its root first.
	writeJSON(w, map[string]any{"ok": true, "messages": append(head, list...), "has_more": more,
		"response_metadata": map[string]any{"next_cursor": next}})
}

// rateLimited is a 429 with Retry-After, as Slack answers a Tier 3 method
// called too often.
func rateLimited(seconds int) func(http.ResponseWriter) {
	return failWith(http.StatusTooManyRequests, map[string]string{"Retry-After": strconv.Itoa(seconds)}, nil)
}

// serveChange answers the methods that change the bot's messages, as the
// Web API documents them (https://docs.slack.dev/reference/methods/):
//
//   - chat.update (channel, ts, text or markdown_text): message_not_found
//     for no such message in the channel, cant_update_message for a message
//     the bot did not write, no_text without a text; edit_window_closed is
//     scripted with listFail.
//   - chat.delete (channel, ts): message_not_found, cant_delete_message.
//   - chat.startStream (channel, thread_ts, markdown_text,
//     recipient_team_id, recipient_user_id; the recipient is required
//     outside DMs) starts a message in streaming state.
//   - chat.appendStream (channel, ts, markdown_text, required) appends to
//     it; chat.stopStream (channel, ts, optional markdown_text) appends the
//     last text and ends the stream. Both answer
//     message_not_in_streaming_state for a message not streaming.
//   - assistant.threads.setStatus (channel_id, thread_ts, status; an empty
//     status clears it).
//
// Every call is recorded in changes, answered or not; listFail[method]
// scripts failures (a 429 with Retry-After, a 5xx, an ok:false error).
func (f *fakeSlack) serveChange(w http.ResponseWriter, method string, form url.Values) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, listReq{method: method, form: form})
	if wait := f.rateLimit(form.Get("channel"), method); wait > 0 {
		rateLimited(int(wait))(w)
		return
	}
	if q := f.listFail[method]; len(q) > 0 {
		fail := q[0]
		f.listFail[method] = q[1:]
		if fail != nil {
			fail(w)
			return
		}
	}
	fail := func(code string) { writeJSON(w, map[string]any{"ok": false, "error": code}) }
	channel := form.Get("channel")
	key := channel + "/" + form.Get("ts")
	m := f.msgs[key]
	switch method {
	case "assistant.threads.setStatus":
		switch {
		case form.Get("channel_id") == "":
			fail("channel_not_found")
		case form.Get("thread_ts") == "":
			fail("invalid_thread_ts")
		default:
			writeJSON(w, map[string]any{"ok": true})
		}
		return
	case "chat.startStream":
		if !strings.HasPrefix(channel, "D") && (form.Get("recipient_user_id") == "" || form.Get("recipient_team_id") == "") {
			fail("missing_recipient_user_id")
			return
		}
		f.nextTS++
		ts := fmt.Sprintf("1800000000.%06d", f.nextTS)
		m := &fakeChat{Channel: channel, Thread: form.Get("thread_ts"), TS: ts,
			Text: form.Get("markdown_text"), Markdown: true, Streaming: true}
		f.msgs[channel+"/"+ts] = m
		f.texted(m)
		writeJSON(w, map[string]any{"ok": true, "channel": channel, "ts": ts})
		return
	}
	if m == nil {
		fail("message_not_found")
		return
	}
	switch method {
	case "chat.update":
		text, md := form.Get("text"), false
		if mt := form.Get("markdown_text"); mt != "" {
			text, md = mt, true
		}
		switch {
		case m.Foreign:
			fail("cant_update_message")
		case text == "":
			fail("no_text")
		default:
			m.Text, m.Markdown = text, md
			m.Edits++
			f.texted(m)
			writeJSON(w, map[string]any{"ok": true, "channel": channel, "ts": m.TS, "text": text})
		}
	case "chat.delete":
		if m.Foreign {
			fail("cant_delete_message")
			return
		}
		delete(f.msgs, key)
		writeJSON(w, map[string]any{"ok": true, "channel": channel, "ts": m.TS})
	case "chat.appendStream", "chat.stopStream":
		switch {
		case !m.Streaming:
			fail("message_not_in_streaming_state")
		case method == "chat.appendStream" && form.Get("markdown_text") == "":
			fail("no_text")
		default:
			m.Text += form.Get("markdown_text")
			m.Streaming = method == "chat.appendStream"
			f.texted(m)
			writeJSON(w, map[string]any{"ok": true, "channel": channel, "ts": m.TS})
		}
	}
}

// texted hands m's new text to onText. f.mu is held.
func (f *fakeSlack) texted(m *fakeChat) {
	if f.onText != nil {
		f.onText(m.Channel, m.TS, m.Text)
	}
}

// rateLimit applies limit to a call of a change method in channel: it
// returns 0 and counts the call when it is let through, else the seconds
// until it would be (Retry-After, at least 1). f.mu is held.
func (f *fakeSlack) rateLimit(channel, method string) int {
	if f.limit.max <= 0 || !slices.Contains([]string{"chat.update", "chat.appendStream", "chat.stopStream"}, method) {
		return 0
	}
	if f.hits == nil {
		f.hits = map[string][]time.Time{}
	}
	now, key := time.Now(), channel+" "+method
	hits := f.hits[key]
	for len(hits) > 0 && now.Sub(hits[0]) >= f.limit.window {
		hits = hits[1:]
	}
	if len(hits) >= f.limit.max {
		f.hits[key] = hits
		f.limited++
		return max(1, int(math.Ceil(hits[0].Add(f.limit.window).Sub(now).Seconds())))
	}
	f.hits[key] = append(hits, now)
	return 0
}

// message returns a copy of the message at ts in channel.
func (f *fakeSlack) message(channel, ts string) (fakeChat, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.msgs[channel+"/"+ts]
	if !ok {
		return fakeChat{}, false
	}
	return *m, true
}

// thread returns the texts of the bot's messages in channel's thread root,
// in ts order.
func (f *fakeSlack) thread(channel, root string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ms []*fakeChat
	for _, m := range f.msgs {
		if m.Channel == channel && m.Thread == root {
			ms = append(ms, m)
		}
	}
	sort.Slice(ms, func(i, j int) bool { return tsLess(ms[i].TS, ms[j].TS) })
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

// changeCalls returns the calls of the given methods (all change methods
// when none is named), in order, as "method key=value …" with the keys
// that matter to the tests.
func (f *fakeSlack) changeCalls(methods ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.changes {
		if len(methods) > 0 && !slices.Contains(methods, c.method) {
			continue
		}
		line := c.method
		for _, k := range []string{"channel", "channel_id", "ts", "thread_ts", "text", "markdown_text", "status", "recipient_team_id", "recipient_user_id"} {
			if c.form.Has(k) {
				line += " " + k + "=" + c.form.Get(k)
			}
		}
		out = append(out, line)
	}
	return out
}

// putForeign adds a message someone else wrote at ts in channel.
func (f *fakeSlack) putForeign(channel, ts, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs[channel+"/"+ts] = &fakeChat{Channel: channel, TS: ts, Text: text, Foreign: true}
}
