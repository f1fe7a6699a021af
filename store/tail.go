package store

import (
	"maps"
	"slices"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Bounds of a Tail: the sessions it keeps, the records it keeps of each,
// and the largest record it keeps (text and raw payload). A session's
// records stay contiguous: one too large to keep ends what was kept of its
// session. At most 1,024 × 8 × 4 KiB, 32 MiB, and far less in practice.
const (
	tailSessions    = 1024
	tailRecords     = 8
	tailRecordBytes = 4 << 10
)

// Tail keeps, per session, the newest records that this process
// committed, so that a Read of what was just appended (a stream woken by
// the append, a follower catching up with it) costs no query of the
// records. A backend fills it after each commit, before it signals the
// commit's subscribers (Hub); a session's appends in the process must be
// committed one batch at a time (one writer, or one per session). Another
// process may append to the same session, so a backend either resets the
// tail whenever it learns that another process wrote (SQLite), or checks
// the session's last seq before it answers from it (PostgreSQL: unless the
// answer is a full page, or goes to a follower while nothing was heard of
// another process's appends to the session since its records were kept,
// which their mark tells).
//
// Read answers only with records it holds, never with "nothing newer": a
// Read after the newest record it holds goes to the store. The zero value
// is ready to use and safe for concurrent use.
type Tail struct {
	mu       sync.Mutex
	sessions *lru.Cache[string, tailSession]
}

// tailSession is what a Tail keeps of a session.
type tailSession struct {
	recs []Record // contiguous, oldest first
	mark uint64   // of the last AppendMarked that added to recs
}

// Append records recs as committed, in commit order: AppendMarked with
// every mark 0.
func (t *Tail) Append(recs []Record) { t.AppendMarked(recs, nil) }

// AppendMarked records recs as committed, in commit order, and marks each
// of their sessions with mark(session id) (0 when mark is nil), which
// ReadMarked returns with the session's records: a backend notes there
// what it knew of other processes' appends to the session when it
// committed them (PostgreSQL).
func (t *Tail) AppendMarked(recs []Record, mark func(sessionID string) uint64) {
	if len(recs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions == nil {
		t.sessions, _ = lru.New[string, tailSession](tailSessions) // only a size < 1 fails
	}
	for _, rec := range recs {
		kept, _ := t.sessions.Peek(rec.SessionID)
		if len(rec.Envelope.Text)+len(rec.Envelope.Raw) > tailRecordBytes {
			t.sessions.Remove(rec.SessionID)
			continue
		}
		if n := len(kept.recs); n == 0 || kept.recs[n-1].Seq+1 != rec.Seq {
			kept.recs = nil // not contiguous with what was kept: start again
		}
		if len(kept.recs) == tailRecords {
			kept.recs = kept.recs[1:]
		}
		var m uint64
		if mark != nil {
			m = mark(rec.SessionID)
		}
		// A slice once kept is never written to: readers hold it unlocked.
		t.sessions.Add(rec.SessionID, tailSession{append(slices.Clip(kept.recs), normalized(rec)), m})
	}
}

// normalized is rec as a store reads it back: no empty refs or raw.
func normalized(rec Record) Record {
	if len(rec.Envelope.Refs) == 0 {
		rec.Envelope.Refs = nil
	}
	if len(rec.Envelope.Raw) == 0 {
		rec.Envelope.Raw = nil
	}
	return rec
}

// Read returns up to limit records of sessionID with Seq > after, as
// Log.Read does, when it holds record after+1; ok is false otherwise. The
// records are copies the caller may change.
func (t *Tail) Read(sessionID string, after int64, limit int) (recs []Record, ok bool) {
	recs, _, ok = t.ReadMarked(sessionID, after, limit)
	return recs, ok
}

// ReadMarked is Read that also returns the session's mark: that of the
// last AppendMarked that added to the session's records.
func (t *Tail) ReadMarked(sessionID string, after int64, limit int) (recs []Record, mark uint64, ok bool) {
	if limit < 1 {
		return nil, 0, false
	}
	t.mu.Lock()
	var s tailSession
	if t.sessions != nil {
		s, _ = t.sessions.Get(sessionID)
	}
	t.mu.Unlock()
	kept := s.recs
	if len(kept) == 0 || after+1 < kept[0].Seq || after >= kept[len(kept)-1].Seq {
		return nil, 0, false
	}
	kept = kept[after+1-kept[0].Seq:]
	kept = kept[:min(limit, len(kept))]
	recs = make([]Record, len(kept))
	for i, rec := range kept {
		rec.Envelope.Refs = maps.Clone(rec.Envelope.Refs)
		rec.Envelope.Raw = slices.Clone(rec.Envelope.Raw)
		recs[i] = rec
	}
	return recs, s.mark, true
}

// Reset forgets every record kept.
func (t *Tail) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions != nil {
		t.sessions.Purge()
	}
}
