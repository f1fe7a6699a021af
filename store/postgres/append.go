package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/retry"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/internal/groupcommit"
)

const (
	// commitTimeout bounds one batch transaction, retries included, so that a
	// hung server cannot hold appends (and Close) forever.
	commitTimeout = 30 * time.Second
	// maxAttempts is how often a batch is tried when it loses a deadlock or
	// serialization conflict.
	maxAttempts = 5
	// appendBackoffMin and appendBackoffMax bound the waits between those
	// tries (retry.Backoff).
	appendBackoffMin = time.Millisecond
	appendBackoffMax = 4 * time.Millisecond
	// maxNotifyPayload is the longest session id sent through pg_notify
	// (PostgreSQL's payload limit is 8000 bytes). Subscribers in other
	// processes of a session with a longer id are not signalled.
	maxNotifyPayload = 7999
)

// Append adds req's envelope to its session's log and returns once it is
// committed. It is idempotent on (session, envelope id), also across
// processes: a repeated id returns the stored original with Created false,
// or ErrConflict with the original when the request differs. Concurrent
// calls share transactions. ErrNotFound for an unknown session, ErrClosed
// after Close.
func (s *Store) Append(ctx context.Context, req store.AppendRequest) (store.AppendResult, error) {
	if err := s.checkOpen("append"); err != nil {
		return store.AppendResult{}, err
	}
	if err := store.CheckAppend(req); err != nil {
		return store.AppendResult{}, fmt.Errorf("postgres: append: %w", err)
	}
	start := time.Now()
	res, err := s.shard(req.SessionID).Do(ctx, req)
	switch {
	case err == nil:
		s.metrics.ObserveAppend(time.Since(start))
		return res, nil
	case errors.Is(err, groupcommit.ErrClosed):
		return res, fmt.Errorf("postgres: append: %w", store.ErrClosed)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict):
		s.metrics.ObserveAppend(time.Since(start))
		return res, err
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// Left before joining a batch: nothing was written.
		return res, fmt.Errorf("postgres: append: %w", err)
	case cannotWrite(err):
		s.metrics.Error("append")
		return res, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	default:
		s.metrics.Error("append")
		return res, err
	}
}

// shard returns the committer of a session.
func (s *Store) shard(sessionID string) *groupcommit.Committer[store.AppendRequest, store.AppendResult] {
	if len(s.shards) == 1 {
		return s.shards[0]
	}
	return s.shards[fnv32a(sessionID)%uint32(len(s.shards))]
}

type appendKey struct{ session, envelope string }

// keep puts the records a committed batch created in the store's tail,
// each session's marked with its news count as the batch began (heard),
// before the batch's subscribers hear of them. A session's appends in this
// process all go through its shard, one batch at a time, so the tail gets
// each session's records in order.
func (s *Store) keep(results []groupcommit.Result[store.AppendResult], heard map[string]uint64) {
	created := make([]store.Record, 0, len(results))
	for _, r := range results {
		if r.Err == nil && r.Val.Created {
			created = append(created, r.Val.Record)
		}
	}
	s.tail.AppendMarked(created, func(sessionID string) uint64 { return heard[sessionID] })
}

// commit is the group-commit function: it commits batch in one transaction,
// retrying lost deadlock or serialization conflicts, and falls back to one
// transaction per request when the batch fails on bad data, so that one bad
// request fails alone.
func (s *Store) commit(ctx context.Context, batch []store.AppendRequest) ([]groupcommit.Result[store.AppendResult], error) {
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	// What was heard of other processes' appends to the batch's sessions
	// before its first try: a record another process appends to one of
	// them after the batch commits is notified after this.
	heard := make(map[string]uint64, len(batch))
	for i := range batch {
		heard[batch[i].SessionID] = s.news.of(batch[i].SessionID)
	}

	rejected := make([]error, len(batch))
	for i := range batch {
		if err := checkRequest(&batch[i]); err != nil {
			rejected[i] = fmt.Errorf("postgres: append: %w", err)
		}
	}
	sleep := s.sleep
	if sleep == nil {
		sleep = retry.Sleep
	}
	b := retry.Backoff{Min: appendBackoffMin, Max: appendBackoffMax}
	var err error
	for attempt := 1; ; attempt++ {
		var results []groupcommit.Result[store.AppendResult]
		var touched []string
		results, touched, err = s.tryCommit(ctx, batch, rejected)
		if err == nil {
			s.keep(results, heard)
			for _, id := range touched {
				s.hub.Publish(id)
			}
			if madeWork(results) {
				s.hub.PublishWork()
			}
			return results, nil
		}
		if !retryable(err) || attempt == maxAttempts || ctx.Err() != nil {
			break
		}
		wait := b.Next()
		s.log.Debug("postgres: retrying append batch", "attempt", attempt, "err", err, "in", wait)
		sleep(ctx, wait) // if ctx ended, the next try fails at once
	}
	if badData(err) && len(batch) > 1 {
		results := make([]groupcommit.Result[store.AppendResult], len(batch))
		for i := range batch {
			if rejected[i] != nil {
				results[i].Err = rejected[i]
				continue
			}
			one, err := s.commit(ctx, batch[i:i+1])
			if err != nil {
				one = []groupcommit.Result[store.AppendResult]{{Err: err}}
			}
			results[i] = one[0]
		}
		return results, nil
	}
	return nil, fmt.Errorf("postgres: append: %w", err)
}

// sessionRow is a locked session as the batch changes it.
type sessionRow struct {
	state   store.State
	from    store.State // the state the row had, under the lock
	lastSeq int64
	// wokenSeq is the newest record of the batch a runtime acts on (see
	// store.Record.ForRuntime), 0 when none.
	wokenSeq int64
	changed  bool
}

// tryCommit makes one attempt at committing batch, skipping the requests
// with a rejected error, and returns one result per request and the sessions
// that got new records.
//
// The transaction locks the batch's session rows in id order (so concurrent
// batches cannot deadlock on each other), then looks up the envelope ids
// already stored; holding the locks, no other appender can add to those
// sessions, so the lookup is exact. New records are inserted, the sessions'
// last_seq and state updated and a notification queued. BEGIN, the locks and
// the lookup travel in one pipeline, the writes and COMMIT in a second: two
// round trips per batch. A request repeating an earlier one of the same
// batch is answered like a repeat of a stored record.
func (s *Store) tryCommit(ctx context.Context, batch []store.AppendRequest, rejected []error) (results []groupcommit.Result[store.AppendResult], touched []string, err error) {
	results = make([]groupcommit.Result[store.AppendResult], len(batch))
	var sessionIDs, keySessions, keyEnvelopes []string
	var fan fanOut // what the batch's outputs are routed by
	seenKey := make(map[appendKey]bool, len(batch))
	for i := range batch {
		if rejected[i] != nil {
			results[i].Err = rejected[i]
			continue
		}
		r := &batch[i]
		sessionIDs = append(sessionIDs, r.SessionID)
		fan.want(r)
		if k := (appendKey{r.SessionID, r.Envelope.ID}); !seenKey[k] {
			seenKey[k] = true
			keySessions = append(keySessions, k.session)
			keyEnvelopes = append(keyEnvelopes, k.envelope)
		}
	}
	if len(sessionIDs) == 0 {
		return results, nil, nil
	}
	slices.Sort(sessionIDs)
	sessionIDs = slices.Compact(sessionIDs)

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Release()
	committed := false
	defer func() {
		if !committed {
			// The transaction may be open or aborted. Should ROLLBACK fail,
			// Release discards the connection.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
	}()

	// Lock, then look up: the second statement runs after the first has
	// taken every lock, and sees what their previous holders committed.
	sessions := make(map[string]*sessionRow, len(sessionIDs))
	fan.latestConv = make(map[string]envelope.Conversation, len(sessionIDs))
	known := make(map[appendKey]store.Record, len(keySessions))
	var now time.Time
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(genericPlansSQL)
	b.Queue(`SELECT id, state, last_seq, latest_source, latest_ref, now() FROM sessions
		WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, sessionIDs)
	// LIMIT 1 keeps the subquery from being flattened into a join, so every
	// key is one probe of the unique index, whatever the plan estimates.
	b.Queue(`SELECT r.* FROM unnest($1::text[], $2::text[]) AS k (session_id, envelope_id)
		CROSS JOIN LATERAL (
			SELECT `+recordColumns+` FROM records
			WHERE session_id = k.session_id AND envelope_id = k.envelope_id
			LIMIT 1
		) AS r`, keySessions, keyEnvelopes)
	fan.queueReads(b)
	err = withBatch(conn.SendBatch(ctx, b), func(br pgx.BatchResults) error {
		for range 2 { // BEGIN, generic plans
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, _ := br.Query()
		for rows.Next() {
			var id, state string
			var latest envelope.Conversation
			row := &sessionRow{}
			if err := rows.Scan(&id, &state, &row.lastSeq, &latest.Source, &latest.Ref, &now); err != nil {
				rows.Close()
				return err
			}
			fan.latestConv[id] = latest
			row.state = store.State(state)
			row.from = row.state
			sessions[id] = row
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, _ = br.Query()
		for rows.Next() {
			rec, err := scanRecord(rows)
			if err != nil {
				rows.Close()
				return err
			}
			known[appendKey{rec.SessionID, rec.Envelope.ID}] = rec
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return fan.scanReads(br)
	})
	if err != nil {
		return nil, nil, err
	}
	now = now.UTC()

	var ins insertRows
	for i := range batch {
		if rejected[i] != nil {
			continue
		}
		r := &batch[i]
		sess := sessions[r.SessionID]
		if sess == nil {
			results[i].Err = fmt.Errorf("postgres: append to %q: %w", r.SessionID, store.ErrNotFound)
			continue
		}
		k := appendKey{r.SessionID, r.Envelope.ID}
		if orig, ok := known[k]; ok {
			results[i].Val = store.AppendResult{Record: orig, State: sess.state}
			if !envelope.Equivalent(&orig.Envelope, &r.Envelope) {
				results[i].Err = fmt.Errorf("postgres: append %s to %q: %w", r.Envelope.ID, r.SessionID, store.ErrConflict)
			}
			continue
		}
		sess.lastSeq++
		if r.ForRuntime() {
			sess.wokenSeq = sess.lastSeq
		}
		if !sess.changed {
			touched = append(touched, r.SessionID)
		}
		sess.changed = true
		switch {
		case r.Wake && sess.state == store.Idle:
			sess.state = store.Running
		case r.Rest && !r.Wake && sess.state == store.Running:
			sess.state = store.Idle
		}
		rec := store.Record{
			SessionID: r.SessionID,
			Seq:       sess.lastSeq,
			Direction: r.Direction,
			Envelope:  normalize(r.Envelope),
			StoredAt:  now,
			NoTurn:    r.NoTurn,
		}
		known[k] = rec
		ins.add(&rec)
		fan.record(&rec)
		results[i].Val = store.AppendResult{Record: rec, Created: true, State: sess.state}
	}

	if len(touched) > 0 {
		slices.Sort(touched)
		var upd struct {
			ids, states, latestSources, latestRefs []string
			seqs, woken                            []int64
		}
		notify := make([]string, 0, len(touched)+1)
		for _, id := range touched {
			upd.ids = append(upd.ids, id)
			upd.states = append(upd.states, string(sessions[id].state))
			upd.seqs = append(upd.seqs, sessions[id].lastSeq)
			upd.woken = append(upd.woken, sessions[id].wokenSeq)
			// The newest inbound conversation, as fan.record kept it.
			upd.latestSources = append(upd.latestSources, fan.latestConv[id].Source)
			upd.latestRefs = append(upd.latestRefs, fan.latestConv[id].Ref)
			if len(id) <= maxNotifyPayload {
				notify = append(notify, id)
			}
		}
		if madeWork(results) {
			// The other replicas' runtime dispatchers listen for this, not
			// for every append.
			notify = append(notify, store.RuntimeWork)
		}
		b := &pgx.Batch{}
		ins.queue(b, now)
		// The records' deliveries, before the session update whose journal
		// trigger enqueues the state changes' after them; the enqueue also
		// locks the tails the trigger will enqueue to (queueEnqueue).
		for _, id := range touched {
			if sessions[id].state != sessions[id].from {
				fan.stateChanged(id)
			}
		}
		if len(fan.deliveries) > 0 || len(fan.lockOnly) > 0 {
			if err := queueEnqueue(b, fan.deliveries, false, fan.lockOnly); err != nil {
				return nil, nil, err
			}
		}
		// "s.id = ANY" lets the plan find the rows through the primary key
		// rather than by scanning, whatever it guesses of unnest's size.
		b.Queue(`UPDATE sessions s SET last_seq = u.last_seq, state = u.state, updated_at = $4,
				woken_seq = greatest(s.woken_seq, u.woken_seq), latest_source = u.latest_source, latest_ref = u.latest_ref
			FROM unnest($1::text[], $2::bigint[], $3::text[], $5::bigint[], $6::text[], $7::text[])
				AS u (id, last_seq, state, woken_seq, latest_source, latest_ref)
			WHERE s.id = u.id AND s.id = ANY($1)`, upd.ids, upd.seqs, upd.states, now, upd.woken, upd.latestSources, upd.latestRefs)
		b.Queue("COMMIT")
		// The other replicas' wake-up, sent after the COMMIT in the same
		// pipeline, so in a transaction of its own that writes nothing.
		// PostgreSQL serializes the commits of every transaction that
		// notifies, across the whole server, under one lock held through
		// the commit's WAL flush: inside the append's transaction, two
		// gateways' appends waited for each other's disk writes (and
		// everything waiting on their session rows waited too). Outside it,
		// the lock is held only while the ids are queued. The server runs
		// it right after the COMMIT whatever the client does meanwhile; if
		// it fails, the records are stored and only the other replicas'
		// followers are late, until the next append to those sessions.
		b.Queue(`SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id`, s.channel, notify)
		err = withBatch(conn.SendBatch(ctx, b), func(br pgx.BatchResults) error {
			for range len(b.QueuedQueries) - 2 {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			if err := commitResult(br.Exec()); err != nil {
				return err
			}
			if _, err := br.Exec(); err != nil {
				s.log.Warn("postgres: notify other replicas of an append", "sessions", len(notify), "err", err)
			}
			return nil
		})
	} else {
		err = commitResult(conn.Exec(ctx, "COMMIT"))
	}
	if err != nil {
		return nil, nil, err
	}
	committed = true
	return results, touched, nil
}

// madeWork reports whether a batch's results hold a record it created that
// a runtime acts on (store.RuntimeWork).
func madeWork(results []groupcommit.Result[store.AppendResult]) bool {
	for i := range results {
		if r := &results[i]; r.Err == nil && r.Val.Created && r.Val.Record.ForRuntime() {
			return true
		}
	}
	return false
}

// commitResult checks the outcome of a COMMIT: on a failed transaction the
// server answers ROLLBACK without an error.
func commitResult(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("transaction rolled back (%s)", tag)
	}
	return err
}

// withBatch runs fn on br and closes br, returning the first error.
func withBatch(br pgx.BatchResults, fn func(pgx.BatchResults) error) error {
	err := fn(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// insertRows holds new records column by column, for one multi-row INSERT.
type insertRows struct {
	sessionIDs, directions, envelopeIDs, sources, kinds []string
	actorIDs, actorDisplays, actorTypes                 []string
	convSources, convRefs, texts, refs                  []string
	ts                                                  []time.Time
	tsNanos                                             []int16
	seqs                                                []int64
	raws                                                [][]byte
	noTurns                                             []bool
}

func (r *insertRows) add(rec *store.Record) {
	e := &rec.Envelope
	r.sessionIDs = append(r.sessionIDs, rec.SessionID)
	r.seqs = append(r.seqs, rec.Seq)
	r.directions = append(r.directions, string(rec.Direction))
	r.envelopeIDs = append(r.envelopeIDs, e.ID)
	r.sources = append(r.sources, e.Source)
	r.kinds = append(r.kinds, string(e.Kind))
	r.actorIDs = append(r.actorIDs, e.Actor.ID)
	r.actorDisplays = append(r.actorDisplays, e.Actor.Display)
	r.actorTypes = append(r.actorTypes, string(e.Actor.Type))
	r.convSources = append(r.convSources, e.Conversation.Source)
	r.convRefs = append(r.convRefs, e.Conversation.Ref)
	r.texts = append(r.texts, e.Text)
	r.refs = append(r.refs, refsJSON(e.Refs))
	r.ts = append(r.ts, e.TS)
	r.tsNanos = append(r.tsNanos, int16(e.TS.Nanosecond()%1000))
	r.raws = append(r.raws, e.Raw)
	r.noTurns = append(r.noTurns, rec.NoTurn)
}

func (r *insertRows) queue(b *pgx.Batch, storedAt time.Time) {
	b.Queue(`INSERT INTO records (session_id, seq, direction, envelope_id, source, kind,
			actor_id, actor_display, actor_type, conv_source, conv_ref, text, refs, ts, ts_nanos, raw, no_turn, stored_at)
		SELECT session_id, seq, direction, envelope_id, source, kind,
			actor_id, actor_display, actor_type, conv_source, conv_ref, text, refs::jsonb, ts, ts_nanos, raw, no_turn, $18
		FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
			$14::timestamptz[], $15::smallint[], $16::bytea[], $17::boolean[])
			AS u (session_id, seq, direction, envelope_id, source, kind,
			actor_id, actor_display, actor_type, conv_source, conv_ref, text, refs, ts, ts_nanos, raw, no_turn)`,
		r.sessionIDs, r.seqs, r.directions, r.envelopeIDs, r.sources, r.kinds,
		r.actorIDs, r.actorDisplays, r.actorTypes, r.convSources, r.convRefs, r.texts, r.refs,
		r.ts, r.tsNanos, r.raws, r.noTurns, storedAt)
}

// recordColumns are the columns scanRecord reads, in order.
var recordColumns = recordColumnsOf("")

func recordColumnsOf(alias string) string {
	cols := []string{"session_id", "seq", "direction", "envelope_id", "source", "kind",
		"actor_id", "actor_display", "actor_type", "conv_source", "conv_ref", "text", "refs",
		"ts", "ts_nanos", "raw", "stored_at", "no_turn"}
	if alias != "" {
		for i, c := range cols {
			cols[i] = alias + "." + c
		}
	}
	return strings.Join(cols, ", ")
}

func scanRecord(row pgx.Row) (store.Record, error) {
	var rec store.Record
	var dir, kind, actorType string
	var refs, raw []byte
	var nanos int16
	e := &rec.Envelope
	err := row.Scan(&rec.SessionID, &rec.Seq, &dir, &e.ID, &e.Source, &kind,
		&e.Actor.ID, &e.Actor.Display, &actorType, &e.Conversation.Source, &e.Conversation.Ref, &e.Text, &refs,
		&e.TS, &nanos, &raw, &rec.StoredAt, &rec.NoTurn)
	if err != nil {
		return store.Record{}, err
	}
	if len(raw) > 0 { // an empty raw reads as none, as on SQLite
		e.Raw = raw
	}
	rec.Direction = store.Direction(dir)
	e.Kind = envelope.Kind(kind)
	e.Actor.Type = envelope.ActorType(actorType)
	if err := json.Unmarshal(refs, &e.Refs); err != nil {
		return store.Record{}, fmt.Errorf("decode refs of %s/%d: %w", rec.SessionID, rec.Seq, err)
	}
	if len(e.Refs) == 0 {
		e.Refs = nil
	}
	e.TS = e.TS.Add(time.Duration(nanos)).UTC()
	rec.StoredAt = rec.StoredAt.UTC()
	return rec, nil
}

// normalize returns e as Read will return it, so that a created record and
// the same record read back compare equal.
func normalize(e envelope.Envelope) envelope.Envelope {
	e.TS = e.TS.UTC()
	if len(e.Refs) == 0 {
		e.Refs = nil
	}
	if len(e.Raw) == 0 {
		e.Raw = nil
	}
	return e
}

func refsJSON(r envelope.Refs) string {
	if len(r) == 0 {
		return "{}"
	}
	b, err := json.Marshal(map[string]string(r))
	if err != nil { // unreachable: strings always marshal
		return "{}"
	}
	return string(b)
}

// checkRequest rejects, before any transaction, what the database cannot
// store (store.CheckAppend), so that one bad request cannot fail the batch
// it shares.
func checkRequest(r *store.AppendRequest) error { return store.CheckAppend(*r) }

// retryable reports whether a failed batch may simply be tried again: it
// lost a deadlock or serialization conflict, hit the unique backstop (an
// appender that did not take the session lock), or failed before anything
// reached the server.
func retryable(err error) bool {
	switch pgCode(err) {
	case "40001", "40P01", "23505":
		return true
	}
	return pgconn.SafeToRetry(err)
}

// badData reports whether err is the server refusing a value (data
// exception, integrity violation, program limit), which one request of the
// batch may have caused.
func badData(err error) bool {
	code := pgCode(err)
	return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23") || strings.HasPrefix(code, "54")
}
