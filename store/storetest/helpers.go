package storetest

import (
	"bytes"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// signalTimeout bounds a wait for a Subscribe signal. It is a guard against a
// hang, never a measure of speed.
const signalTimeout = 5 * time.Second

// closeOnce lets a test close a store itself while the cleanup closes it too.
type closeOnce struct {
	store.Store
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.Store.Close() })
	return c.err
}

// open opens a store through b and closes it when t ends.
func open(t *testing.T, b Backend) store.Store {
	t.Helper()
	s, err := b()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	c := &closeOnce{Store: s}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return c
}

// fresh opens a store on a new, empty database.
func (s suite) fresh(t *testing.T) (store.Store, Backend) {
	t.Helper()
	b := s.newBackend(t)
	return open(t, b), b
}

func closeStore(t *testing.T, st store.Store) {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
}

func createSession(t *testing.T, st store.Store, id string) store.Session {
	t.Helper()
	sess, created, err := st.CreateSession(t.Context(), id, map[string]string{"purpose": "test"})
	if err != nil {
		t.Fatalf("CreateSession(%q): %v", id, err)
	}
	if !created {
		t.Fatalf("CreateSession(%q): created = false for a new session", id)
	}
	return sess
}

// ts is a fixed envelope timestamp with nanoseconds, so a backend that
// truncates time is caught.
var ts = time.Date(2026, 6, 18, 12, 0, 0, 123456789, time.UTC)

// env returns a valid message envelope with id "test:"+key.
func env(key, text string) envelope.Envelope {
	return envelope.Envelope{
		ID:           "test:" + key,
		Source:       "test",
		Kind:         envelope.KindMessage,
		Actor:        envelope.Actor{ID: "test:user-7", Display: "Ada", Type: envelope.Human},
		Conversation: envelope.Conversation{Source: "test", Ref: "thread-42"},
		Text:         text,
		Refs:         envelope.Refs{envelope.RefRepo: "octo/cat"},
		TS:           ts,
		Raw:          []byte(`{"text":"` + text + `"}`),
	}
}

func req(session, key, text string) store.AppendRequest {
	return store.AppendRequest{SessionID: session, Direction: store.Inbound, Envelope: env(key, text)}
}

func mustAppend(t *testing.T, st store.Store, r store.AppendRequest) store.AppendResult {
	t.Helper()
	res, err := st.Append(t.Context(), r)
	if err != nil {
		t.Fatalf("Append(%s, %s): %v", r.SessionID, r.Envelope.ID, err)
	}
	return res
}

func mustRead(t *testing.T, st store.Store, session string, after int64, limit int) []store.Record {
	t.Helper()
	recs, err := st.Read(t.Context(), session, after, limit)
	if err != nil {
		t.Fatalf("Read(%s, after %d, limit %d): %v", session, after, limit, err)
	}
	return recs
}

// readAll reads a session's whole log in pages.
func readAll(t *testing.T, st store.Store, session string) []store.Record {
	t.Helper()
	var all []store.Record
	after := int64(0)
	for {
		page := mustRead(t, st, session, after, 500)
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
}

// closeTime reports whether two store-generated times agree to the
// microsecond (PostgreSQL keeps microseconds and rounds).
func closeTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d <= time.Microsecond && d >= -time.Microsecond
}

// diffEnvelope describes how got differs from want, or returns "". Refs and
// Raw compare empty and nil as equal; everything else, the timestamp's
// nanoseconds included, must match exactly.
func diffEnvelope(got, want envelope.Envelope) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("id %q, want %q", got.ID, want.ID)
	case got.Source != want.Source:
		return fmt.Sprintf("source %q, want %q", got.Source, want.Source)
	case got.Kind != want.Kind:
		return fmt.Sprintf("kind %q, want %q", got.Kind, want.Kind)
	case got.Actor != want.Actor:
		return fmt.Sprintf("actor %+v, want %+v", got.Actor, want.Actor)
	case got.Conversation != want.Conversation:
		return fmt.Sprintf("conversation %+v, want %+v", got.Conversation, want.Conversation)
	case got.Text != want.Text:
		return fmt.Sprintf("text %q, want %q", got.Text, want.Text)
	case !maps.Equal(got.Refs, want.Refs):
		return fmt.Sprintf("refs %v, want %v", got.Refs, want.Refs)
	case !got.TS.Equal(want.TS):
		return fmt.Sprintf("ts %s, want %s", got.TS.Format(time.RFC3339Nano), want.TS.Format(time.RFC3339Nano))
	case !bytes.Equal(got.Raw, want.Raw):
		return fmt.Sprintf("raw %q, want %q", got.Raw, want.Raw)
	}
	return ""
}

// diffRecord describes how got differs from want, or returns "".
func diffRecord(got, want store.Record) string {
	switch {
	case got.SessionID != want.SessionID:
		return fmt.Sprintf("session %q, want %q", got.SessionID, want.SessionID)
	case got.Seq != want.Seq:
		return fmt.Sprintf("seq %d, want %d", got.Seq, want.Seq)
	case got.Direction != want.Direction:
		return fmt.Sprintf("direction %q, want %q", got.Direction, want.Direction)
	case got.NoTurn != want.NoTurn:
		return fmt.Sprintf("no-turn %v, want %v", got.NoTurn, want.NoTurn)
	case !closeTime(got.StoredAt, want.StoredAt):
		return fmt.Sprintf("stored at %s, want %s", got.StoredAt, want.StoredAt)
	}
	if d := diffEnvelope(got.Envelope, want.Envelope); d != "" {
		return "envelope " + d
	}
	return ""
}

func checkRecord(t *testing.T, what string, got, want store.Record) {
	t.Helper()
	if d := diffRecord(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

// checkContiguous checks that recs have seqs 1..len(recs) and distinct
// envelope ids, and returns the records by envelope id.
func checkContiguous(t *testing.T, session string, recs []store.Record) map[string]store.Record {
	t.Helper()
	byID := make(map[string]store.Record, len(recs))
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("session %s: record %d has seq %d, want %d (seqs must be contiguous from 1)", session, i, r.Seq, i+1)
		}
		if r.SessionID != session {
			t.Fatalf("session %s: record %d belongs to session %q", session, r.Seq, r.SessionID)
		}
		if prev, dup := byID[r.Envelope.ID]; dup {
			t.Fatalf("session %s: envelope %s stored twice, at seq %d and %d", session, r.Envelope.ID, prev.Seq, r.Seq)
		}
		byID[r.Envelope.ID] = r
	}
	return byID
}

func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(signalTimeout):
		t.Fatalf("no Subscribe signal %s within %s", what, signalTimeout)
	}
}

// Counter returns the value of counter name in reg, 0 when it is not
// registered: for backends' tests of the store's metrics.
func Counter(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
