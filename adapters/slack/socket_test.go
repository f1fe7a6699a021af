package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/switchboardhq/switchboard/adapters"
)

// socketServer is a local Socket Mode endpoint: every WebSocket connection
// the adapter opens is handed to the test, which speaks the Socket Mode
// protocol on it (hello, events_api, disconnect) and reads the acks.
type socketServer struct {
	srv   *httptest.Server
	conns chan *websocket.Conn
}

func newSocketServer(t *testing.T) *socketServer {
	s := &socketServer{conns: make(chan *websocket.Conn, 4)}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s.conns <- c
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *socketServer) url() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/link" }

// accept waits for the adapter's next connection and says hello.
func (s *socketServer) accept(t *testing.T) *websocket.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		t.Cleanup(func() { c.Close() })
		write(t, c, `{"type":"hello","num_connections":1,"debug_info":{"host":"test"},"connection_info":{"app_id":"A0TEST"}}`)
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the adapter did not connect")
		return nil
	}
}

func write(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// eventsAPI is an events_api envelope carrying payload.
func eventsAPI(envelopeID string, payload []byte, retry int) string {
	return `{"envelope_id":"` + envelopeID + `","payload":` + string(payload) +
		`,"type":"events_api","accepts_response_payload":false,"retry_attempt":` + string(rune('0'+retry)) + `,"retry_reason":""}`
}

// readAck reads the next message from the adapter, which must be the ack
// of envelopeID.
func readAck(t *testing.T, c *websocket.Conn, envelopeID string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reading the ack of %s: %v", envelopeID, err)
	}
	var ack struct {
		EnvelopeID string `json:"envelope_id"`
	}
	if err := json.Unmarshal(msg, &ack); err != nil || ack.EnvelopeID != envelopeID {
		t.Fatalf("got %s, want the ack of %s", msg, envelopeID)
	}
}

func ingested(t *testing.T, rec *recorder) adapters.Inbound {
	t.Helper()
	select {
	case in := <-rec.seen:
		return in
	case <-time.After(10 * time.Second):
		t.Fatal("nothing ingested")
		return adapters.Inbound{}
	}
}

func TestSocketMode(t *testing.T) {
	fake := newFakeSlack(t)
	fake.setUsers(map[string]string{"U222": "Linus"})
	ws := newSocketServer(t)
	fake.wsURL = ws.url()
	rec := newRecorder()
	a := newTestAdapter(t, fake, rec, func(c *Config) { c.SigningSecret, c.AppToken = "", testAppToken })

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not stop when its context ended")
		}
	}()

	msg := func(ts, text string) []byte {
		// Indented on purpose: raw must keep the payload's bytes.
		return callback("Ev"+ts, "{\n  \"type\": \"message\", \"user\": \"U222\", \"text\": \""+text+
			"\", \"ts\": \""+ts+"\", \"thread_ts\": \"1700000000.000100\", \"channel\": \"C123\", \"channel_type\": \"channel\"\n}")
	}

	// Connection 1: an event is stored, then acknowledged.
	c1 := ws.accept(t)
	p1 := msg("1700000001.000100", "first")
	write(t, c1, eventsAPI("env-1", p1, 0))
	in := ingested(t, rec)
	readAck(t, c1, "env-1")
	if in.Envelope.ID != "slack:T0TEST/C123/1700000001.000100" || in.Envelope.Text != "first" || in.Envelope.Actor.Display != "Linus" {
		t.Fatalf("envelope = %+v", in.Envelope)
	}
	if !bytes.Equal(in.Envelope.Raw, p1) {
		t.Fatalf("raw = %s, want the payload as received", in.Envelope.Raw)
	}

	// An event whose message cannot be stored is not acknowledged; Slack's
	// redelivery is.
	rec.setFail(errors.New("store down"))
	p2 := msg("1700000002.000100", "second")
	write(t, c1, eventsAPI("env-2", p2, 0))
	select {
	case <-rec.failed:
	case <-time.After(10 * time.Second):
		t.Fatal("env-2 was not handled")
	}
	rec.setFail(nil)
	write(t, c1, eventsAPI("env-2r", p2, 1))
	readAck(t, c1, "env-2r") // env-2 itself was never acknowledged
	if in := ingested(t, rec); in.Envelope.Text != "second" {
		t.Fatalf("redelivery stored %q", in.Envelope.Text)
	}

	// Slack asks the client to reconnect.
	write(t, c1, `{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"test"}}`)
	c2 := ws.accept(t)
	write(t, c2, eventsAPI("env-3", msg("1700000003.000100", "third"), 0))
	if in := ingested(t, rec); in.Envelope.Text != "third" {
		t.Fatalf("after disconnect stored %q", in.Envelope.Text)
	}
	readAck(t, c2, "env-3")

	// The network drops the connection without a close frame.
	c2.UnderlyingConn().Close()
	c3 := ws.accept(t)
	// An inner event type slack-go does not know is still acknowledged.
	write(t, c3, eventsAPI("env-4", callback("EvUnknown", `{"type":"brand_new_event","x":1}`), 0))
	readAck(t, c3, "env-4")
	// The adapter's own echo is acknowledged and not stored.
	write(t, c3, eventsAPI("env-5", callback("EvOwn", `{"type":"message","subtype":"bot_message","bot_id":"B0OWN","text":"reply","ts":"1700000004.000100","channel":"C123"}`), 0))
	readAck(t, c3, "env-5")
	write(t, c3, eventsAPI("env-6", msg("1700000005.000100", "fourth"), 0))
	if in := ingested(t, rec); in.Envelope.Text != "fourth" {
		t.Fatalf("after network loss stored %q", in.Envelope.Text)
	}
	readAck(t, c3, "env-6")

	if n := fake.callCount("apps.connections.open"); n != 3 {
		t.Errorf("apps.connections.open called %d times, want 3 (one per connection)", n)
	}
	if got := len(rec.all()); got != 4 {
		t.Errorf("%d messages stored, want 4", got)
	}
	if got := outcomes(a, "socket"); got[outcomeIngested] != 4 || got[outcomeError] != 1 || got[outcomeOwn] != 1 || got[outcomeIgnored] != 1 {
		t.Errorf("outcomes = %v", got)
	}
}

func TestSocketModeRejectedAppToken(t *testing.T) {
	fake := newFakeSlack(t)
	a := newTestAdapter(t, fake, newRecorder(), func(c *Config) { c.SigningSecret, c.AppToken = "", "xapp-revoked" })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	eventually(t, func() bool { return a.Check(ctx) != nil })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := a.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "app_token rejected: invalid_auth") {
		t.Fatalf("Check = %v", err)
	}
	// The bot token is fine: deliveries still work.
	if _, err := a.Deliver(t.Context(), delivery("d", "T0TEST/C1/1.1", "hi", 1)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
}
