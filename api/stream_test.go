package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/store"
)

// sseItem is one thing read from an event stream: an event, or a comment.
type sseItem struct {
	id, event, data string
	comment         string
}

// sseClient reads an event stream on its own goroutine.
type sseClient struct {
	resp   *http.Response
	items  chan sseItem
	errc   chan error
	cancel context.CancelFunc
}

// openStream connects to a session's stream with the given token and
// headers; it fails t unless the answer is 200.
func openStream(t *testing.T, baseURL, path, token string, header map[string]string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hr, _ := http.NewRequestWithContext(ctx, "GET", baseURL+path, nil)
	hr.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	c := &sseClient{resp: resp, items: make(chan sseItem, 100), errc: make(chan error, 1), cancel: cancel}
	go c.read()
	t.Cleanup(c.close)
	return c
}

func (c *sseClient) close() {
	c.cancel()
	c.resp.Body.Close()
}

// read parses the stream per the SSE spec's rules for the fields we send.
func (c *sseClient) read() {
	br := bufio.NewReader(c.resp.Body)
	var cur sseItem
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.errc <- err
			close(c.items)
			return
		}
		line = strings.TrimSuffix(line, "\n")
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if cur.event != "" || data != nil {
				cur.data = strings.Join(data, "\n")
				c.items <- cur
			}
			cur, data = sseItem{}, nil
		case field == "":
			c.items <- sseItem{comment: value}
		case field == "id":
			cur.id = value
		case field == "event":
			cur.event = value
		case field == "data":
			data = append(data, value)
		}
	}
}

// next returns the next event, skipping comments.
func (c *sseClient) next(t *testing.T) sseItem {
	t.Helper()
	for {
		select {
		case it, ok := <-c.items:
			if !ok {
				t.Fatalf("stream ended: %v", <-c.errc)
			}
			if it.comment == "" {
				return it
			}
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for an event")
		}
	}
}

// record decodes an event's data as a record.
func (it sseItem) record(t *testing.T) recordJSON {
	t.Helper()
	var r recordJSON
	if err := json.Unmarshal([]byte(it.data), &r); err != nil {
		t.Fatalf("event data %q: %v", it.data, err)
	}
	if it.event != "message" || it.id != strconv.FormatInt(r.Seq, 10) {
		t.Errorf("event %q id %q for seq %d", it.event, it.id, r.Seq)
	}
	return r
}

func TestStreamResume(t *testing.T) {
	wl := (*watchLog)(nil)
	h := newHarness(t, func(o *Options) {
		wl = newWatchLog(o.Store)
		o.Log = wl
	})
	id := h.newSession()
	for _, k := range []string{"m1", "m2", "m3"} {
		h.steer(id, k, k)
	}
	ts := httptest.NewServer(h.srv)
	t.Cleanup(ts.Close) // after the streams' own cleanups
	path := "/v3/sessions/" + id + "/stream"

	c := openStream(t, ts.URL, path, steerSecret, map[string]string{"Last-Event-ID": "1"})
	for _, want := range []string{"m2", "m3"} {
		if r := c.next(t).record(t); r.Envelope.Text != want || r.Direction != store.Inbound {
			t.Errorf("got %q %s, want %q", r.Envelope.Text, r.Direction, want)
		}
	}
	// Live: an append reaches the open stream.
	h.steer(id, "m4", "m4")
	if r := c.next(t).record(t); r.Seq != 4 || r.Envelope.Text != "m4" {
		t.Errorf("live event: seq %d %q", r.Seq, r.Envelope.Text)
	}
	// The stream ends, and lets go of its subscription, when the client goes.
	c.close()
	await(t, wl.unsubbed, "the stream to end after the client left")

	// ?after= when there is no Last-Event-ID; the header wins over it.
	c = openStream(t, ts.URL, path+"?after=2", adminSecret, nil)
	if r := c.next(t).record(t); r.Seq != 3 {
		t.Errorf("?after=2: first seq %d, want 3", r.Seq)
	}
	c.close()
	c = openStream(t, ts.URL, path+"?after=0", adminSecret, map[string]string{"Last-Event-ID": "3"})
	if r := c.next(t).record(t); r.Seq != 4 {
		t.Errorf("Last-Event-ID 3 with ?after=0: first seq %d, want 4", r.Seq)
	}
}

// TestStreamRaw checks that a pretty-printed body (line feeds, tabs,
// trailing spaces) comes through the stream verbatim, over several data
// lines.
func TestStreamRaw(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	body := "{\n\t\"text\": \"hi\",  \n  \"refs\": {\"pr\": 7}\n}\n"
	if w := h.do(req{method: "POST", path: "/v3/sessions/" + id + "/messages", token: adminSecret, body: body}); w.Code != 202 {
		t.Fatalf("post: %d", w.Code)
	}
	ts := httptest.NewServer(h.srv)
	t.Cleanup(ts.Close) // after the streams' own cleanups
	c := openStream(t, ts.URL, "/v3/sessions/"+id+"/stream", adminSecret, nil)
	// JSON decoders drop whitespace around a value, so look at the data itself.
	if it := c.next(t); !strings.Contains(it.data, `"raw":`+body+`},"stored_at"`) {
		t.Errorf("data %q does not hold raw %q verbatim", it.data, body)
	}
}

func TestStreamHeartbeatAndShutdown(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Heartbeat = time.Millisecond })
	ts := httptest.NewServer(h.srv)
	t.Cleanup(ts.Close) // after the streams' own cleanups
	c := openStream(t, ts.URL, "/v3/sessions/"+agentSession+"/stream", agentSecret, nil)
	for seen := false; !seen; {
		select {
		case it := <-c.items:
			seen = it.comment == "keepalive"
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
	h.srv.Shutdown()
	for {
		select {
		case _, ok := <-c.items:
			if !ok {
				if err := <-c.errc; !errors.Is(err, io.EOF) {
					t.Errorf("stream ended with %v, want EOF", err)
				}
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown did not end the stream")
		}
	}
}

func TestStreamErrors(t *testing.T) {
	h := newHarness(t, nil)
	id := h.newSession()
	for _, c := range []struct {
		name   string
		r      req
		status int
	}{
		{"unknown session", req{path: "/v3/sessions/ses_nope/stream", token: adminSecret}, 404},
		{"bad Last-Event-ID", req{path: "/v3/sessions/" + id + "/stream", token: adminSecret, header: map[string]string{"Last-Event-ID": "abc"}}, 400},
		{"bad after", req{path: "/v3/sessions/" + id + "/stream?after=-3", token: adminSecret}, 400},
		{"agent of another session", req{path: "/v3/sessions/" + id + "/stream", token: agentSecret}, 403},
		{"no token", req{path: "/v3/sessions/" + id + "/stream"}, 401},
	} {
		c.r.method = "GET"
		if w := h.do(c.r); w.Code != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, w.Code, c.status, w.Body)
		}
	}
}

func TestAppendEvent(t *testing.T) {
	rec := store.Record{Seq: 9, Direction: store.Outbound, StoredAt: t0}
	rec.Envelope.Raw = []byte("{\r\n\"a\":\r1}")
	b, err := appendEvent(nil, &rec)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "id: 9\nevent: message\ndata: {\"seq\":9,") || !strings.HasSuffix(s, "\n\n") {
		t.Errorf("event %q", s)
	}
	if strings.Contains(s, "\r") || !strings.Contains(s, "\"raw\":{\ndata: \"a\":\ndata: 1}},\"stored_at\"") {
		t.Errorf("line breaks in data not split into data lines: %q", s)
	}
}

// followLog is a store.Log that is a store.FollowReader, counting its
// reads of each kind.
type followLog struct {
	store.Log
	reads, follows atomic.Int64
}

func (l *followLog) Read(ctx context.Context, id string, after int64, limit int) ([]store.Record, error) {
	l.reads.Add(1)
	return l.Log.Read(ctx, id, after, limit)
}

func (l *followLog) ReadFollowing(ctx context.Context, id string, after int64, limit int) ([]store.Record, error) {
	l.follows.Add(1)
	return l.Log.Read(ctx, id, after, limit)
}

// TestStreamReadsAsAFollower: a stream subscribes before it reads and
// reads again after every signal, so it reads through the log's
// ReadFollowing when it has one (on PostgreSQL, that skips a query).
func TestStreamReadsAsAFollower(t *testing.T) {
	fl := (*followLog)(nil)
	h := newHarness(t, func(o *Options) {
		fl = &followLog{Log: o.Store}
		o.Log = fl
	})
	id := h.newSession()
	h.steer(id, "m1", "m1")
	ts := httptest.NewServer(h.srv)
	t.Cleanup(ts.Close)
	c := openStream(t, ts.URL, "/v3/sessions/"+id+"/stream", steerSecret, nil)
	h.steer(id, "m2", "m2")
	for _, want := range []string{"m1", "m2"} {
		if r := c.next(t).record(t); r.Envelope.Text != want {
			t.Fatalf("got %q, want %q", r.Envelope.Text, want)
		}
	}
	if f, r := fl.follows.Load(), fl.reads.Load(); f < 2 || r != 0 {
		t.Errorf("the stream read %d times as a follower and %d times with Read; want at least 2 and none", f, r)
	}
}
