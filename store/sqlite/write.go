package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/internal/groupcommit"
)

// The range of times a column of Unix nanoseconds can hold.
var (
	minTime = time.Unix(0, -1<<63)
	maxTime = time.Unix(0, 1<<63-1)
)

// nanos returns t as Unix nanoseconds, or an error naming what when t does
// not fit.
func nanos(what string, t time.Time) (int64, error) {
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("%s %s is outside the years 1678 to 2262", what, t.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// write hands op to the writer and waits for its transaction to commit. A
// failure that is not the client's is counted as an error of what.
func (s *Store) write(ctx context.Context, what string, op writeOp) (writeResult, error) {
	res, err := s.commit.Do(ctx, op)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, groupcommit.ErrClosed):
		err = fmt.Errorf("sqlite: write: %w", store.ErrClosed)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// The caller left before the write joined a batch: nothing was written.
		err = fmt.Errorf("sqlite: write: %w", err)
	case unavailable(err):
		err = fmt.Errorf("sqlite: write: %w: %w", store.ErrUnavailable, err)
	}
	if !isClientError(err) {
		s.metrics.Error(what)
	}
	return res, err
}

// unavailable reports whether err is SQLite failing to write for a reason
// outside the request: the disk or database is full, the file is
// read-only or cannot be opened, an I/O error, or the write lock was not
// granted within the busy timeout.
func unavailable(err error) bool {
	var se *sqlitedriver.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary result code of an extended one
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_BUSY:
		return true
	}
	return false
}

// isClientError reports whether err is an expected outcome rather than a
// failure of the store.
func isClientError(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrLeaseLost) ||
		errors.Is(err, store.ErrClosed) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded)
}

// Append adds req's envelope to its session's log and returns once the
// record is durably committed, sharing the commit with concurrent calls. A
// repeated envelope id returns the stored original with Created false, or
// with an error wrapping store.ErrConflict when the request differs. An
// unknown session gives an error wrapping store.ErrNotFound.
func (s *Store) Append(ctx context.Context, req store.AppendRequest) (store.AppendResult, error) {
	if err := store.CheckAppend(req); err != nil {
		return store.AppendResult{}, fmt.Errorf("sqlite: append: %w", err)
	}
	start := time.Now()
	op, err := appendOp(req)
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("sqlite: append: %w", err)
	}
	res, err := s.write(ctx, "append", op)
	if err == nil {
		s.metrics.ObserveAppend(time.Since(start))
	}
	return res.append, err
}

// appendArgs is an Append as the writer runs it: the request with its
// columns encoded.
type appendArgs struct {
	req    store.AppendRequest
	refs   any // JSON text, or nil for no refs
	tsNano int64
}

func (a appendArgs) run(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
	return w.append(ctx, &a, now)
}

// appendOp encodes the columns of req, which store.CheckAppend accepted.
func appendOp(req store.AppendRequest) (writeOp, error) {
	a := appendArgs{req: req}
	var err error
	if a.tsNano, err = nanos("ts", req.Envelope.TS); err != nil {
		return nil, err
	}
	if len(req.Envelope.Refs) > 0 {
		b, err := json.Marshal(map[string]string(req.Envelope.Refs))
		if err != nil {
			return nil, fmt.Errorf("encode refs: %w", err)
		}
		a.refs = string(b)
	}
	// A method value holds a copy of a in its one allocation; a closure
	// would capture a value this large by reference, in a second one.
	return a.run, nil
}

// CreateSession creates session id with metadata, or returns the existing
// session of that id unchanged with created false.
func (s *Store) CreateSession(ctx context.Context, id string, metadata map[string]string) (store.Session, bool, error) {
	op, err := createSessionOp(id, metadata)
	if err != nil {
		return store.Session{}, false, fmt.Errorf("sqlite: create session: %w", err)
	}
	res, err := s.write(ctx, "create_session", op)
	if err != nil {
		return store.Session{}, false, err
	}
	return res.val.(store.Session), res.ok, nil
}

func createSessionOp(id string, metadata map[string]string) (writeOp, error) {
	meta, err := sessionMetadata(id, metadata)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		return w.createSession(ctx, id, meta, now)
	}, nil
}

// sessionMetadata checks a new session's id and metadata and encodes the
// metadata.
func sessionMetadata(id string, metadata map[string]string) (string, error) {
	if err := errors.Join(store.CheckID("session id", id), store.CheckMetadata("metadata", metadata)); err != nil {
		return "", err
	}
	if len(metadata) == 0 {
		return "{}", nil
	}
	meta, err := json.Marshal(metadata)
	if err != nil {
		return "", fmt.Errorf("encode metadata: %w", err)
	}
	return string(meta), nil
}

// SetState sets session id's state; changed is false when it already was
// state. An unknown session gives an error wrapping store.ErrNotFound.
func (s *Store) SetState(ctx context.Context, id string, state store.State) (bool, error) {
	if !state.Valid() {
		return false, fmt.Errorf("sqlite: set state: %w: state %q is not idle or running", store.ErrInvalid, state)
	}
	res, err := s.write(ctx, "set_state", func(ctx context.Context, w *writer, now int64) (groupcommitResult, error) {
		return w.setState(ctx, id, state, now)
	})
	return res.ok, err
}

// CreateToken stores t. A zero CreatedAt is stored as the current time.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	op, err := createTokenOp(t)
	if err != nil {
		return fmt.Errorf("sqlite: create token: %w", err)
	}
	_, err = s.write(ctx, "create_token", op)
	return err
}

func createTokenOp(t store.Token) (writeOp, error) {
	if t.ID == "" {
		return nil, errors.New("empty id")
	}
	for _, v := range append([]string{t.ID, t.Name}, t.Sessions...) {
		if err := store.CheckText("token field", v); err != nil {
			return nil, err
		}
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	created, err := nanos("created_at", t.CreatedAt)
	if err != nil {
		return nil, err
	}
	scopes, err := json.Marshal(nonNil(t.Scopes))
	if err != nil {
		return nil, fmt.Errorf("encode scopes: %w", err)
	}
	sessions, err := json.Marshal(nonNil(t.Sessions))
	if err != nil {
		return nil, fmt.Errorf("encode sessions: %w", err)
	}
	cols := []any{t.ID, t.Hash[:], t.Name, string(scopes), string(sessions), created}
	return func(ctx context.Context, w *writer, _ int64) (groupcommitResult, error) {
		if _, err := w.insertToken.ExecContext(ctx, cols...); err != nil {
			return groupcommitResult{}, fmt.Errorf("insert token: %w", err)
		}
		return groupcommitResult{}, nil
	}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
