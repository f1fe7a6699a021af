package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/internal/retry"
)

// Stream follows a session's log from seq after, calling fn for each record
// in order. It reconnects (resuming from the last seq seen, via
// Last-Event-ID) when the connection drops, and returns when ctx ends
// (returning nil), when fn returns an error (returning it), or on an error
// answer from the gateway such as 401 or 404.
//
// Between connections it waits a capped exponential backoff
// (100ms, doubling up to 5s), which starts over once a connection brought
// new records.
func (c *Client) Stream(ctx context.Context, sessionID string, after int64, fn func(Record) error) error {
	sleep := c.sleep
	if sleep == nil {
		sleep = retry.Sleep
	}
	b := retry.Backoff{Min: streamBackoffMin, Max: streamBackoffMax}
	for {
		last, err := c.streamOnce(ctx, sessionID, after, fn)
		if last > after {
			after = last
			b.Reset()
		}
		var fnErr *callbackError
		var apiErr *Error
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &fnErr):
			return fnErr.err
		case errors.As(err, &apiErr) && apiErr.Status < 500 && apiErr.Status != http.StatusTooManyRequests:
			return err
		}
		if !sleep(ctx, b.Next()) {
			return nil
		}
	}
}

// Stream's waits between connections.
const (
	streamBackoffMin = 100 * time.Millisecond
	streamBackoffMax = 5 * time.Second
)

type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

func (c *Client) streamOnce(ctx context.Context, sessionID string, after int64, fn func(Record) error) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v3/sessions/"+url.PathEscape(sessionID)+"/stream", nil)
	if err != nil {
		return after, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	resp, err := c.http.Do(req)
	if err != nil {
		return after, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return after, decodeError(resp, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() == 0 {
				continue
			}
			var rec Record
			if err := json.Unmarshal([]byte(data.String()), &rec); err != nil {
				return after, fmt.Errorf("switchboard: stream: decode: %w", err)
			}
			data.Reset()
			if rec.Seq <= after {
				continue
			}
			if err := fn(rec); err != nil {
				return after, &callbackError{err}
			}
			after = rec.Seq
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return after, err
	}
	return after, errors.New("switchboard: stream: connection closed")
}
