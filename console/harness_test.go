package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/gateway"
)

// Secrets of the harness's tokens.
const (
	adminSecret = "sb_console-test-admin-0123456789abcdef"
	steerSecret = "sb_console-test-steer-0123456789abcdef"
	agentSecret = "sb_console-test-agent-0123456789abcdef"
	// sessionKey signs session-scoped tokens (router.session_key).
	sessionKey = "console-test-session-key-0123456789abcdef"
)

const harnessConfig = `
tokens:
  - name: admin
    secret: ` + adminSecret + `
    scopes: [admin]
  - name: steerer
    secret: ` + steerSecret + `
    scopes: [steer]
  - name: agent
    secret: ` + agentSecret + `
    scopes: [agent]
    sessions: [ses_agentonly]
webhooks:
  allow_private: true
  backoff: 50ms
  max_backoff: 100ms
router:
  session_key: ` + sessionKey + `
  outbox:
    max_attempts: 1
`

// harness is a whole gateway, serving on a loopback port until the test
// ends.
type harness struct {
	t   testing.TB
	gw  *gateway.Gateway
	url string
}

// newHarness starts a gateway with the harness's tokens and a SQLite store
// in dir (t.TempDir() when "", else a store the test may have filled).
func newHarness(t testing.TB, dir string) *harness {
	t.Helper()
	return newHarnessWith(t, dir, "")
}

// newHarnessWith is newHarness with more configuration (YAML sections
// other than the harness's own) appended.
func newHarnessWith(t testing.TB, dir, extra string) *harness {
	t.Helper()
	cfg, err := config.Parse([]byte(harnessConfig+extra), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if dir == "" {
		dir = t.TempDir()
	}
	cfg.Data = dir
	cfg.Defaults()
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, cfg, gateway.Options{
		Logger: slog.New(slog.DiscardHandler),
		Getenv: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		cancel()
		t.Fatalf("gateway: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gw.Serve(ctx, ln, time.Second)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		gw.Close()
	})
	return &harness{t: t, gw: gw, url: "http://" + ln.Addr().String()}
}

// call makes a request with the bearer token secret (none when "") and
// returns the status and the JSON answer decoded into a map.
func (h *harness) call(method, path, secret string, body any, hdr ...string) (int, map[string]any) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// must is call that fails the test unless the status is want.
func (h *harness) must(want int, method, path string, body any) map[string]any {
	h.t.Helper()
	code, m := h.call(method, path, adminSecret, body)
	if code != want {
		h.t.Fatalf("%s %s: %d %v, want %d", method, path, code, m, want)
	}
	return m
}

// waitFor polls cond every 20ms until it holds, failing after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receiver is a webhook receiver that fails until told to succeed.
type receiver struct {
	ok  atomic.Bool
	got atomic.Int64
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if !rc.ok.Load() {
		http.Error(w, "not yet", http.StatusInternalServerError)
		return
	}
	rc.got.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, k := range path {
		mm, _ := v.(map[string]any)
		v = mm[k]
	}
	s, _ := v.(string)
	return s
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
