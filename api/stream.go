package api

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/switchboardhq/switchboard/store"
)

const (
	// streamBatch is how many records the stream reads at a time.
	streamBatch = 256
	// streamWriteTimeout bounds each write to a stream, so that a client that
	// stops reading does not hold the stream forever.
	streamWriteTimeout = 30 * time.Second
	// streamRetry is the reconnection delay suggested to clients, in ms.
	streamRetry = "3000"
)

// stream serves GET /v3/sessions/{id}/stream: the session's log as
// Server-Sent Events, one "message" event per record with the sequence
// number as its id and the record JSON (as in GET …/messages) as its data.
// It starts after the Last-Event-ID header, else after ?after=, else from the
// beginning; it sends a comment every heartbeat while idle, and ends when the
// client goes or the server shuts down. It counts against the token's
// limit of open streams (see openStream).
//
// SSE cannot carry a carriage return inside data, so a record whose raw
// payload has line breaks in it is sent over several data lines, and a
// client sees every line break in raw's whitespace as "\n". GET …/messages
// returns raw byte for byte.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	cursor := r.Header.Get("Last-Event-ID")
	name := "Last-Event-ID"
	if cursor == "" {
		cursor, name = r.URL.Query().Get("after"), "after"
	}
	after, err := seqParam(cursor, name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	release, ok := s.openStream(w, r)
	if !ok {
		return
	}
	defer release()

	changed, cancel := s.log.Subscribe(id)
	defer cancel()
	recs, err := store.ReadFollowing(ctx, s.log, id, after, streamBatch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell nginx not to buffer the stream
	w.WriteHeader(http.StatusOK)

	buf := []byte("retry: " + streamRetry + "\n: connected\n\n")
	send := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(buf); err != nil {
			return false
		}
		buf = buf[:0]
		return rc.Flush() == nil
	}
	if !send() {
		return
	}
	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	for {
		for i := range recs {
			if buf, err = appendEvent(buf, &recs[i]); err != nil {
				s.logger.ErrorContext(ctx, "api: stream: encode record", "session", id, "seq", recs[i].Seq, "err", err)
				return
			}
			after = recs[i].Seq
		}
		if len(recs) > 0 && !send() {
			return
		}
		// Unless the batch was full, wait for news, beating the heart meanwhile.
		for waiting := len(recs) < streamBatch; waiting; {
			select {
			case <-changed:
				waiting = false
			case <-heartbeat.C:
				buf = append(buf, ": keepalive\n\n"...)
				if !send() {
					return
				}
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
		recs, err = store.ReadFollowing(ctx, s.log, id, after, streamBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.ErrorContext(ctx, "api: stream: read", "session", id, "after", after, "err", err)
			}
			return
		}
	}
}

// appendEvent appends rec to b as one SSE "message" event.
func appendEvent(b []byte, rec *store.Record) ([]byte, error) {
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, rec.Seq, 10)
	b = append(b, "\nevent: message\n"...)
	data, err := appendRecord(nil, rec)
	if err != nil {
		return b, err
	}
	// A line break in data ends a data line; the client joins them with "\n".
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		b = append(b, "data: "...)
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	b = append(b, "data: "...)
	b = append(b, data...)
	return append(b, "\n\n"...), nil
}
