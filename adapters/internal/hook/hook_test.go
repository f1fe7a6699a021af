package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboardhq/switchboard/adapters"
)

func count(t *testing.T, v *prometheus.CounterVec, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestReadBody(t *testing.T) {
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rejected"}, []string{"reason"})

	w := httptest.NewRecorder()
	body, ok := ReadBody(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("12345")), 5, "chan", rejected)
	if !ok || string(body) != "12345" {
		t.Fatalf("ReadBody = %q, %v; want the body", body, ok)
	}

	w = httptest.NewRecorder()
	if _, ok := ReadBody(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("123456")), 5, "chan", rejected); ok {
		t.Fatal("a body over max was read")
	}
	checkError(t, w, http.StatusRequestEntityTooLarge, "payload_too_large", "chan: request body too large (the limit is 5 bytes)")
	if n := count(t, rejected, "too_large"); n != 1 {
		t.Errorf("too_large counted %v times, want 1", n)
	}

	w = httptest.NewRecorder()
	if _, ok := ReadBody(w, httptest.NewRequest(http.MethodPost, "/", io.NopCloser(failingReader{})), 5, "chan", rejected); ok {
		t.Fatal("a failing body was read")
	}
	checkError(t, w, http.StatusBadRequest, "invalid_request", "chan: reading the request body failed")
	if n := count(t, rejected, "too_large"); n != 1 {
		t.Errorf("a read error counted as too_large")
	}

	// A declared length over max is refused before anything is read.
	w = httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(failingReader{}))
	r.ContentLength = 6
	if _, ok := ReadBody(w, r, 5, "chan", rejected); ok {
		t.Fatal("a declared length over max was read")
	}
	checkError(t, w, http.StatusRequestEntityTooLarge, "payload_too_large", "chan: request body too large (the limit is 5 bytes)")
	if n := count(t, rejected, "too_large"); n != 2 {
		t.Errorf("too_large counted %v times, want 2", n)
	}

	// A body that does not come in time is a 408.
	w = httptest.NewRecorder()
	if _, ok := ReadBody(w, httptest.NewRequest(http.MethodPost, "/", io.NopCloser(timeoutReader{})), 5, "chan", rejected); ok {
		t.Fatal("a body that timed out was read")
	}
	checkError(t, w, http.StatusRequestTimeout, "request_timeout", "chan: the request body did not arrive in time; send it at once")
}

// timeoutReader fails as a connection past its read deadline does.
type timeoutReader struct{}

func (timeoutReader) Read([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }

// checkError checks that w holds a JSON error with status, code and message.
func checkError(t *testing.T, w *httptest.ResponseRecorder, status int, code, message string) {
	t.Helper()
	var got struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("%d %q: not a JSON error: %v", w.Code, w.Body, err)
	}
	if w.Code != status || got.Error.Code != code || got.Error.Message != message ||
		w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("got %d %s %q %q; want %d %q %q", w.Code, w.Header().Get("Content-Type"), got.Error.Code, got.Error.Message, status, code, message)
	}
}

func TestError(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
	}{
		{http.StatusBadRequest, "invalid_request"},
		{http.StatusUnauthorized, "invalid_signature"},
		{http.StatusNotFound, "not_found"},
		{http.StatusMethodNotAllowed, "method_not_allowed"},
		{http.StatusRequestEntityTooLarge, "payload_too_large"},
		{http.StatusInternalServerError, "internal"},
		{http.StatusServiceUnavailable, "unavailable"},
	} {
		w := httptest.NewRecorder()
		Error(w, tc.status, "chan: what went wrong")
		checkError(t, w, tc.status, tc.code, "chan: what went wrong")
	}
}

func TestStatusError(t *testing.T) {
	inner := errors.New("boom")
	err := fmt.Errorf("wrapped: %w", Errorf(http.StatusServiceUnavailable, "chan: lookup: %w", inner))
	if Code(err) != http.StatusServiceUnavailable || err.Error() != "wrapped: chan: lookup: boom" || !errors.Is(err, inner) {
		t.Errorf("Code = %d, text %q, Is(inner) %v", Code(err), err, errors.Is(err, inner))
	}
	if Code(inner) != http.StatusInternalServerError {
		t.Errorf("Code of a plain error = %d, want 500", Code(inner))
	}
}

func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		out  adapters.Outcome
		want string
	}{
		{adapters.Outcome{SessionID: "s", Seq: 1}, "ingested"},
		{adapters.Outcome{SessionID: "s", Duplicate: true}, "duplicate"},
		{adapters.Outcome{Dropped: "no route matched"}, "dropped"},
	} {
		if got := Outcome(tc.out); got != tc.want {
			t.Errorf("Outcome(%+v) = %q, want %q", tc.out, got, tc.want)
		}
	}
}

func TestPostResult(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("post: %w", &adapters.BackOff{Wait: time.Second, Err: errors.New("429")}), "rate_limited"},
		{fmt.Errorf("post: %w: gone", adapters.ErrPermanent), "permanent"},
		{errors.New("connection refused"), "error"},
	} {
		if got := PostResult(tc.err); got != tc.want {
			t.Errorf("PostResult(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
