package storetest

import (
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

func (s suite) testSubscribe(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	createSession(t, st, "b")
	chA, cancelA := st.Subscribe("a")
	defer cancelA()
	chA2, cancelA2 := st.Subscribe("a")
	defer cancelA2()
	chB, cancelB := st.Subscribe("b")
	defer cancelB()

	mustAppend(t, st, req("a", "k1", "hello"))
	waitSignal(t, chA, "after an append")
	waitSignal(t, chA2, "to a second subscriber")
	select {
	case <-chB:
		t.Error("a subscriber of b was signalled for an append to a")
	default:
	}

	// Signals keep coming for later appends.
	mustAppend(t, st, req("a", "k2", "again"))
	waitSignal(t, chA, "after a second append")
	mustAppend(t, st, req("b", "k1", "to b"))
	waitSignal(t, chB, "after an append to b")
}

// testSubscribeRuntimeWork: a subscriber of RuntimeWork is signalled by
// the appends a runtime acts on, and only by them: an inbound message,
// not an output, a system record or a message appended NoTurn. The
// signal comes before Append returns.
func (s suite) testSubscribeRuntimeWork(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	work, cancel := st.Subscribe(store.RuntimeWork)
	defer cancel()
	noWork := func(what string) {
		t.Helper()
		select {
		case <-work:
			t.Errorf("a subscriber of runtime work was signalled for %s", what)
		default:
		}
	}
	out := req("a", "out", "an answer")
	out.Direction = store.Outbound
	mustAppend(t, st, out)
	noWork("an output")
	sys := req("a", "sys", "a notice")
	sys.Envelope.Kind, sys.Envelope.Actor = envelope.KindSystem, envelope.Actor{ID: "system:test", Type: envelope.System}
	mustAppend(t, st, sys)
	noWork("a system record")
	inbox := req("a", "inbox", "for an agent that reads its log")
	inbox.NoTurn = true
	mustAppend(t, st, inbox)
	noWork("a message appended NoTurn")
	mustAppend(t, st, req("a", "msg", "for the runtime"))
	select {
	case <-work:
	default:
		t.Error("a subscriber of runtime work was not signalled by the time a message's Append returned")
	}
	mustAppend(t, st, req("a", "msg", "for the runtime"))
	noWork("a repeat of a stored message")
}

func (s suite) testReopen(t *testing.T) {
	st, b := s.fresh(t)
	createSession(t, st, "a")
	createSession(t, st, "b")
	var want []store.Record
	for i, key := range []string{"k1", "k2", "k3"} {
		r := req("a", key, "message "+key)
		r.Wake = i == 1
		want = append(want, mustAppend(t, st, r).Record)
	}
	tok := token("tok-1", "secret-1")
	if err := st.CreateToken(t.Context(), tok); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	sessA, err := st.Session(t.Context(), "a")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	sessB, err := st.Session(t.Context(), "b")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	closeStore(t, st)

	st = open(t, b)
	if got, err := st.Session(t.Context(), "a"); err != nil {
		t.Fatalf("Session after reopen: %v", err)
	} else {
		checkSession(t, "session a after reopen", got, sessA)
	}
	if got, err := st.Session(t.Context(), "b"); err != nil {
		t.Fatalf("Session after reopen: %v", err)
	} else {
		checkSession(t, "session b after reopen", got, sessB)
	}
	recs := mustRead(t, st, "a", 0, 10)
	if len(recs) != len(want) {
		t.Fatalf("read %d records after reopen, want %d", len(recs), len(want))
	}
	for i := range recs {
		checkRecord(t, "record after reopen", recs[i], want[i])
	}
	got, err := st.TokenByHash(t.Context(), tok.Hash)
	if err != nil {
		t.Fatalf("TokenByHash after reopen: %v", err)
	}
	checkToken(t, got, tok)

	// The log carries on where it was, and still deduplicates.
	if res := mustAppend(t, st, req("a", "k2", "message k2")); res.Created || res.Record.Seq != 2 {
		t.Errorf("replay after reopen: created %v, seq %d; want the original at seq 2", res.Created, res.Record.Seq)
	}
	if res := mustAppend(t, st, req("a", "k4", "message k4")); !res.Created || res.Record.Seq != 4 {
		t.Errorf("append after reopen: created %v, seq %d; want a new record at seq 4", res.Created, res.Record.Seq)
	}
}

func (s suite) testAppendAfterClose(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	closeStore(t, st)
	if _, err := st.Append(t.Context(), req("a", "k1", "too late")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Append after Close: error %v, want ErrClosed", err)
	}
}

// testReadAfterClose: a Read after Close fails with ErrClosed, also of a
// record the store has just appended (which it may keep in memory).
func (s suite) testReadAfterClose(t *testing.T) {
	st, _ := s.fresh(t)
	createSession(t, st, "a")
	mustAppend(t, st, req("a", "k1", "kept"))
	closeStore(t, st)
	if recs, err := st.Read(t.Context(), "a", 0, 10); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Read after Close = %d records, %v; want ErrClosed", len(recs), err)
	}
}

func token(id, secret string) store.Token {
	return store.Token{
		ID:        id,
		Hash:      sha256.Sum256([]byte(secret)),
		Name:      "token " + id,
		Scopes:    []store.Scope{store.ScopeSteer, store.ScopeAgent},
		Sessions:  []string{"a", "b"},
		CreatedAt: time.Date(2026, 6, 18, 12, 0, 0, 123456000, time.UTC),
	}
}

func checkToken(t *testing.T, got, want store.Token) {
	t.Helper()
	if got.ID != want.ID || got.Hash != want.Hash || got.Name != want.Name ||
		!slices.Equal(got.Scopes, want.Scopes) || !slices.Equal(got.Sessions, want.Sessions) ||
		!closeTime(got.CreatedAt, want.CreatedAt) {
		t.Errorf("token:\n got  %+v\n want %+v", got, want)
	}
}

func (s suite) testTokens(t *testing.T) {
	st, _ := s.fresh(t)
	if n, err := st.CountTokens(t.Context()); err != nil || n != 0 {
		t.Fatalf("CountTokens on an empty store = %d, %v; want 0", n, err)
	}
	agent := token("tok-agent", "secret-agent")
	admin := store.Token{
		ID: "tok-admin", Hash: sha256.Sum256([]byte("secret-admin")), Name: "admin",
		Scopes: []store.Scope{store.ScopeAdmin}, CreatedAt: agent.CreatedAt.Add(time.Minute),
	}
	for _, tok := range []store.Token{agent, admin} {
		if err := st.CreateToken(t.Context(), tok); err != nil {
			t.Fatalf("CreateToken(%s): %v", tok.ID, err)
		}
	}
	if n, err := st.CountTokens(t.Context()); err != nil || n != 2 {
		t.Fatalf("CountTokens = %d, %v; want 2", n, err)
	}
	for _, tok := range []store.Token{agent, admin} {
		got, err := st.TokenByHash(t.Context(), tok.Hash)
		if err != nil {
			t.Fatalf("TokenByHash(%s): %v", tok.ID, err)
		}
		if len(tok.Sessions) == 0 && len(got.Sessions) == 0 {
			got.Sessions = tok.Sessions // nil and empty are the same
		}
		checkToken(t, got, tok)
	}
}

func (s suite) testTokenNotFound(t *testing.T) {
	st, _ := s.fresh(t)
	if err := st.CreateToken(t.Context(), token("tok-1", "secret-1")); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if _, err := st.TokenByHash(t.Context(), sha256.Sum256([]byte("secret-2"))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash(unknown) error = %v, want ErrNotFound", err)
	}
}

func (s suite) testPing(t *testing.T) {
	st, _ := s.fresh(t)
	if err := st.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}
