// Package store is Switchboard's durable state: sessions, each session's
// ordered log of envelopes, and API tokens.
//
// The interfaces here are small and split by role; a backend (store/sqlite,
// store/postgres) implements all of them and proves it by passing the shared
// conformance suite in store/storetest. Every method is safe for concurrent
// use and takes a context that bounds it.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
)

// Sentinel errors. Backends wrap them; callers test with errors.Is.
var (
	// ErrNotFound: the session (or token) does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: an envelope id was reused in a session for a different
	// request (other text, kind or refs). The stored original is returned
	// alongside.
	ErrConflict = errors.New("store: idempotency key reused with a different request")
	// ErrLeaseLost: the caller no longer holds the lease it acted under
	// (it expired and another process took the work).
	ErrLeaseLost = errors.New("store: lease lost")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid: the input breaks the rules every backend holds to (see
	// check.go): an envelope, id, text or cursor that no backend can store.
	ErrInvalid = errors.New("store: invalid input")
	// ErrUnavailable: the store cannot write now (disk full, database
	// read-only, connection to it lost, lock not granted in time): the
	// call failed for a reason outside the request, and the same call may
	// succeed once the cause is fixed. Callers answer "retry later" and
	// report the store as not ready.
	ErrUnavailable = errors.New("store: unavailable")
)

// State is a session's activity state.
type State string

// The session states.
const (
	Idle    State = "idle"
	Running State = "running"
)

// Valid reports whether s is idle or running.
func (s State) Valid() bool { return s == Idle || s == Running }

// Session is one agent session.
type Session struct {
	ID        string            `json:"id"`
	State     State             `json:"state"`
	Metadata  map[string]string `json:"metadata"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	// LastSeq is the sequence number of the newest record in the log, 0 for
	// an empty log.
	LastSeq int64 `json:"last_seq"`
}

// MetaRoute is the session metadata key naming the route that created the
// session (set by the router).
const MetaRoute = "route"

// Direction says whether a record came into the session or out of it.
type Direction string

// The directions.
const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
)

// Valid reports whether d is inbound or outbound.
func (d Direction) Valid() bool { return d == Inbound || d == Outbound }

// Record is one entry of a session's log.
type Record struct {
	SessionID string
	// Seq increases by one with every record in the session, from 1.
	Seq       int64
	Direction Direction
	Envelope  envelope.Envelope
	// StoredAt is when the record was committed.
	StoredAt time.Time
	// NoTurn is the AppendRequest's: the inbound record asks its session's
	// runtime for no turn.
	NoTurn bool
}

// ForRuntime reports whether the record is one a runtime acts on (see
// ForRuntime).
func (r *Record) ForRuntime() bool { return ForRuntime(r.Direction, r.Envelope.Kind) && !r.NoTurn }

// AppendRequest is one envelope to add to a session's log.
type AppendRequest struct {
	SessionID string
	Direction Direction
	Envelope  envelope.Envelope
	// Wake, on a new record, moves an idle session to running in the same
	// transaction.
	Wake bool
	// Rest, on a new record, moves a running session to idle in the same
	// transaction: an agent's output that ends its turn. (Wake and Rest
	// together are a caller's mistake; Wake wins.)
	Rest bool
	// NoTurn, on an inbound record, says that the session's runtime is to
	// take no turn on it: the session's agent reads its log itself (an
	// inbox route), as the router decides when the record arrives. Such a
	// record is no cursor consumer's work (Record.ForRuntime is false), so
	// it costs the runtime's dispatcher nothing. It is kept with the
	// record (Record.NoTurn). CheckAppend refuses it on an outbound record.
	NoTurn bool
}

// ForRuntime reports whether the record req appends is one a runtime acts
// on (see Record.ForRuntime).
func (req *AppendRequest) ForRuntime() bool {
	return ForRuntime(req.Direction, req.Envelope.Kind) && !req.NoTurn
}

// AppendResult is what Append did.
type AppendResult struct {
	Record Record
	// Created is false when the envelope id was already in the session's log;
	// Record is then the stored original and nothing changed.
	Created bool
	// State is the session's state after the append.
	State State
}

// Sessions creates and finds sessions. Creating a session and changing its
// state journal a SessionEvent (see events.go). Ids and metadata follow the
// input rules of check.go: a session is created only with an id CheckID
// accepts and metadata CheckMetadata accepts (else ErrInvalid), and an id no
// session can have is not found (CheckLookup).
type Sessions interface {
	// CreateSession creates session id with metadata, or returns the existing
	// session of that id unchanged with created false.
	CreateSession(ctx context.Context, id string, metadata map[string]string) (s Session, created bool, err error)
	// Session returns session id, or ErrNotFound.
	Session(ctx context.Context, id string) (Session, error)
	// ListSessions returns up to limit sessions whose ids sort after the
	// cursor after ("" for the first page), in id order.
	ListSessions(ctx context.Context, after string, limit int) ([]Session, error)
	// ListSessionsBefore returns up to limit sessions whose ids sort before
	// the cursor before ("" for the last page), newest id first: as ids
	// sort by creation time, the newest sessions first.
	ListSessionsBefore(ctx context.Context, before string, limit int) ([]Session, error)
	// SetState sets a session's state; changed is false when it already was
	// state. ErrNotFound for an unknown session.
	SetState(ctx context.Context, id string, state State) (changed bool, err error)
}

// Log is the per-session ordered, idempotent envelope log.
type Log interface {
	// Append adds req's envelope to its session's log, durably: when Append
	// returns nil the record is committed. It is idempotent on (session,
	// envelope id): a repeated id returns the stored original with Created
	// false, or ErrConflict (with the original in the result) when the
	// request differs (envelope.Equivalent). Concurrent calls are committed in
	// shared transactions (group commit). ErrNotFound for an unknown session;
	// ErrInvalid, before anything is written, for a request CheckAppend
	// refuses.
	Append(ctx context.Context, req AppendRequest) (AppendResult, error)
	// Read returns up to limit records of a session with Seq > after, in order.
	// ErrNotFound for an unknown session.
	Read(ctx context.Context, sessionID string, after int64, limit int) ([]Record, error)
	// Lookup returns the record of a session whose envelope id is
	// envelopeID. ErrNotFound when the session has none (or does not
	// exist).
	Lookup(ctx context.Context, sessionID, envelopeID string) (Record, error)
	// Subscribe returns a channel that receives a value (coalesced, never
	// blocking the writer) after records are appended to sessionID or a
	// SessionEvent of it is journaled, by this process or, where the
	// backend supports it, by another. Passing AllSessions ("*") as
	// sessionID receives a signal for every session, and RuntimeWork
	// ("*work") one after records a runtime acts on are appended to any
	// session (see RuntimeWork). Call cancel to release it.
	Subscribe(sessionID string) (ch <-chan struct{}, cancel func())
}

// FollowReader is a Log whose reads can cost less for a follower: a
// caller that subscribed to a session (Subscribe) before its first read and
// reads again after every signal, as a stream does.
type FollowReader interface {
	// ReadFollowing is Read for a follower. It may leave out records that
	// another process appended and whose signal has not reached this
	// process yet: the follower is signalled when it does, and reads them
	// then. What it returns is what Read would, or a prefix of it.
	ReadFollowing(ctx context.Context, sessionID string, after int64, limit int) ([]Record, error)
}

// ReadFollowing reads as a follower of sessionID: through l's
// ReadFollowing when l is a FollowReader, else through its Read.
func ReadFollowing(ctx context.Context, l Log, sessionID string, after int64, limit int) ([]Record, error) {
	if f, ok := l.(FollowReader); ok {
		return f.ReadFollowing(ctx, sessionID, after, limit)
	}
	return l.Read(ctx, sessionID, after, limit)
}

// Scope is what a token may do.
type Scope string

// The scopes.
const (
	ScopeAdmin Scope = "admin" // everything
	ScopeSteer Scope = "steer" // create sessions, send messages, read
	ScopeAgent Scope = "agent" // read and write outputs of the named sessions
)

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool { return s == ScopeAdmin || s == ScopeSteer || s == ScopeAgent }

// Token is an API token as stored: only the SHA-256 hash of the secret is
// kept.
type Token struct {
	ID        string
	Hash      [32]byte
	Name      string
	Scopes    []Scope
	Sessions  []string // for ScopeAgent: the sessions it may act on
	CreatedAt time.Time
}

// Tokens stores API tokens.
type Tokens interface {
	// CreateToken stores t.
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash finds the token whose secret hashes to hash, or ErrNotFound.
	TokenByHash(ctx context.Context, hash [32]byte) (Token, error)
	// CountTokens returns how many tokens are stored.
	CountTokens(ctx context.Context) (int, error)
}

// Store is everything a backend provides: the log and its sessions, tokens,
// the router's state (bindings, cursors, outbox; see router.go) and the
// adapters' key-value state (kv.go).
type Store interface {
	Sessions
	Log
	Tokens
	Bindings
	Cursors
	Outbox
	KV
	Webhooks
	SessionEvents
	// Ping checks that the backend answers, for /readyz.
	Ping(ctx context.Context) error
	// Close stops background work and releases the backend. It waits for
	// appends in flight.
	Close() error
}

// AppendNotice appends to session sessionID's log, in direction dir, a
// notice from the gateway itself: a system envelope with the given text and
// refs (nil for none), stamped now, whose id "system:" + key is
// deterministic, so that repeating the notice (after a crash, on a retry)
// stores it once.
func AppendNotice(ctx context.Context, l Log, sessionID, key, text string, dir Direction, refs envelope.Refs, now time.Time) error {
	env := envelope.Envelope{
		ID:     "system:" + key,
		Source: SourceSystem,
		Kind:   envelope.KindSystem,
		Actor:  envelope.Actor{ID: "system:switchboard", Display: "Switchboard", Type: envelope.System},
		Text:   text,
		Refs:   refs,
		TS:     now.UTC(),
	}
	if _, err := l.Append(ctx, AppendRequest{SessionID: sessionID, Direction: dir, Envelope: env}); err != nil && !errors.Is(err, ErrConflict) {
		return fmt.Errorf("append system notice: %w", err)
	}
	return nil
}
