package hook

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	if w.Code != http.StatusRequestEntityTooLarge || w.Body.String() != "chan: request body too large\n" {
		t.Errorf("too large: %d %q", w.Code, w.Body.String())
	}
	if n := count(t, rejected, "too_large"); n != 1 {
		t.Errorf("too_large counted %v times, want 1", n)
	}

	w = httptest.NewRecorder()
	if _, ok := ReadBody(w, httptest.NewRequest(http.MethodPost, "/", io.NopCloser(failingReader{})), 5, "chan", rejected); ok {
		t.Fatal("a failing body was read")
	}
	if w.Code != http.StatusBadRequest || w.Body.String() != "chan: reading the request body failed\n" {
		t.Errorf("read error: %d %q", w.Code, w.Body.String())
	}
	if n := count(t, rejected, "too_large"); n != 1 {
		t.Errorf("a read error counted as too_large")
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
