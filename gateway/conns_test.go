package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testToken is the admin token of newGateway's gateways.
const testToken = "gateway-test-token-0123456789"

// guard bounds every wait of these tests: reaching it is a failure.
const guard = 10 * time.Second

// serve runs g on a loopback listener until the test ends and returns its
// address.
func serve(t *testing.T, g *Gateway) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// dialFrom connects to addr from the loopback address local (127.0.0.x),
// so that a test can be several clients.
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: guard}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readResponse reads one response from c, failing t past the guard.
func readResponse(t *testing.T, c net.Conn, br *bufio.Reader) (*http.Response, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(guard))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp, body
}

// githubSignature is a well-formed GitHub signature header, which matches no
// body: a webhook carrying it is read before it is refused.
var githubSignature = "X-Hub-Signature-256: sha256=" + strings.Repeat("0", 64) + "\r\n"

// errorCodeOf returns the code of a JSON error body, or "" for another body.
func errorCodeOf(body []byte) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

// awaitClosed fails t unless the server closes c (EOF or reset) within the
// guard.
func awaitClosed(t *testing.T, c net.Conn, br *bufio.Reader, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(guard))
	_, err := br.ReadByte()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection is still open (%v)", what, err)
	}
}

// TestSlowBodyIsCutOff sends headers announcing a body of 1000 bytes and no
// body: the webhook is answered 408 within read_timeout and the
// connection closed; so is an unauthenticated /v3 request, answered 401
// without waiting for its body, and an authenticated one 408 too.
func TestSlowBodyIsCutOff(t *testing.T) {
	g := newGateway(t, `
limits: {header_timeout: 200ms, read_timeout: 500ms}
adapters:
  github: {webhook_secret: github-secret, token: ghp_test, login: switchboard-bot, api_url: "http://127.0.0.1:1/"}
`)
	addr := serve(t, g)
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/hooks/github", "", http.StatusRequestTimeout},
		{"/v3/sessions", testToken, http.StatusRequestTimeout},
		{"/v3/sessions", "", http.StatusUnauthorized},
	} {
		c := dialFrom(t, "127.0.0.1", addr)
		br := bufio.NewReader(c)
		start := time.Now()
		head := "POST " + tc.path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n" + githubSignature
		if tc.token != "" {
			head += "Authorization: Bearer " + tc.token + "\r\n"
		}
		io.WriteString(c, head+"\r\n")
		resp, body := readResponse(t, c, br)
		if resp.StatusCode != tc.status || errorCodeOf(body) == "" {
			t.Errorf("POST %s without its body: %d %s, want %d with a JSON error", tc.path, resp.StatusCode, body, tc.status)
		}
		awaitClosed(t, c, br, "POST "+tc.path+" without its body")
		t.Logf("POST %s: closed after %v", tc.path, time.Since(start))
	}
}

// TestLongPollOutlivesTimeouts: a long poll waits longer than read_timeout
// and write_timeout and answers 200; neither deadline cuts it off.
func TestLongPollOutlivesTimeouts(t *testing.T) {
	g := newGateway(t, "limits: {header_timeout: 100ms, read_timeout: 200ms, write_timeout: 300ms}\n")
	addr := serve(t, g)
	client := &http.Client{Timeout: guard}
	do := func(method, path, body string) (*http.Response, []byte) {
		t.Helper()
		r, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := client.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := do("POST", "/v3/sessions", `{"metadata": {"a": "b"}}`)
	var s struct{ ID string }
	if err := json.Unmarshal(b, &s); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create session: %d %s", resp.StatusCode, b)
	}
	if resp.Close {
		t.Error("a request whose body was read closes its connection; want it kept alive")
	}
	start := time.Now()
	resp, b = do("GET", "/v3/sessions/"+s.ID+"/messages?wait=1s", "")
	if code := resp.StatusCode; code != http.StatusOK || !strings.Contains(string(b), `"messages":[]`) {
		t.Fatalf("long poll of 1s with read_timeout 200ms and write_timeout 300ms: %d %s", resp.StatusCode, b)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("the long poll answered after %v, before its wait of 1s", d)
	}
}

// TestSlowClientsCannotTakeEveryConnection: one client address holds at
// most max_conns_per_client connections (one more is closed at once),
// and /healthz still answers another client while they are held.
func TestSlowClientsCannotTakeEveryConnection(t *testing.T) {
	g := newGateway(t, "limits: {max_conns: 8, max_conns_per_client: 3}\n")
	addr := serve(t, g)
	var slow []net.Conn
	for range 3 {
		c := dialFrom(t, "127.0.0.1", addr)
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // and never the end of the headers
		slow = append(slow, c)
	}
	extra := dialFrom(t, "127.0.0.1", addr)
	fmt.Fprint(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	awaitClosed(t, extra, bufio.NewReader(extra), "a fourth connection from the same address")

	other := dialFrom(t, "127.0.0.2", addr)
	fmt.Fprint(other, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := readResponse(t, other, bufio.NewReader(other)); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz from another address: %d %s", resp.StatusCode, body)
	}

	// A slow connection closed gives its place back.
	slow[0].Close()
	deadline := time.Now().Add(guard)
	for {
		c := dialFrom(t, "127.0.0.1", addr)
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(guard))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no place given back after a slow client left: %v", err)
		}
	}
}

// TestLimitListenerWaitsForASlot: past max open connections, Accept
// returns the next one only once an open one is closed.
func TestLimitListenerWaitsForASlot(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(inner, 2, 0)
	defer ln.Close()
	for range 3 {
		dialFrom(t, "127.0.0.1", inner.Addr().String())
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(); err != nil {
		t.Fatal(err)
	}
	var closed atomic.Bool
	third := make(chan bool, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		third <- closed.Load()
	}()
	closed.Store(true)
	a.Close()
	select {
	case wasClosed := <-third:
		if !wasClosed {
			t.Error("a third connection was accepted while two were open")
		}
	case <-time.After(guard):
		t.Fatal("closing a connection did not let the third in")
	}
}

// TestOversizedBodyIsAnsweredNotReset sends a 3 MiB body the way Python's
// urllib does, all of it before reading the answer, from a socket with a
// small send buffer: it always reads the 413 (or 401) with its JSON error,
// never a connection reset.
func TestOversizedBodyIsAnsweredNotReset(t *testing.T) {
	g := newGateway(t, `
adapters:
  github: {webhook_secret: github-secret, token: ghp_test, login: switchboard-bot, api_url: "http://127.0.0.1:1/", max_body: 1048576}
routes:
  - name: upstream
    runtime: http
    http: {url: "http://127.0.0.1:1", token: up-token, secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}
`)
	addr := serve(t, g)
	body := strings.Repeat("x", 3<<20)
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/v3/sessions/ses_x/messages", testToken, http.StatusRequestEntityTooLarge},
		{"/v3/sessions/ses_x/messages", "", http.StatusUnauthorized},
		{"/hooks/github", "", http.StatusRequestEntityTooLarge},
		{"/hooks/sessions", "", http.StatusRequestEntityTooLarge},
		{"/hooks/nope", "", http.StatusNotFound},
	} {
		for try := range 5 {
			c := dialFrom(t, "127.0.0.1", addr)
			// Smaller than the body, as on any real network.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetWriteBuffer(256 << 10)
			}
			head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s", tc.path, len(body), githubSignature)
			if tc.token != "" {
				head += "Authorization: Bearer " + tc.token + "\r\n"
			}
			_ = c.SetWriteDeadline(time.Now().Add(guard))
			if _, err := io.WriteString(c, head+"\r\n"+body); err != nil {
				t.Fatalf("POST %s, try %d: writing the body: %v", tc.path, try, err)
			}
			resp, b := readResponse(t, c, bufio.NewReader(c))
			if resp.StatusCode != tc.status || errorCodeOf(b) == "" {
				t.Fatalf("POST %s, try %d: %d %s, want %d with a JSON error", tc.path, try, resp.StatusCode, b, tc.status)
			}
			c.Close()
		}
	}
}

// TestHooksRefuseBeforeReadingTheBody: a webhook whose headers (or URL
// token) alone show it is not authentic is refused without waiting for
// its body, which never comes here (read_timeout is longer than the
// guard), with a complete answer that closes the connection.
func TestHooksRefuseBeforeReadingTheBody(t *testing.T) {
	g := newGateway(t, `
limits: {read_timeout: 60s}
adapters:
  github: {webhook_secret: github-secret, token: ghp_test, login: switchboard-bot, api_url: "http://127.0.0.1:1/"}
  slack: {bot_token: xoxb-test, signing_secret: slack-secret, api_url: "http://127.0.0.1:1/api/"}
  jira: {base_url: "http://127.0.0.1:1", email: bot@example.com, api_token: jira-token, url_token: jira-url-token-0123456789}
`)
	addr := serve(t, g)
	for _, tc := range []struct {
		path, header string
		status       int
	}{
		{"/hooks/github", "X-GitHub-Event: ping\r\n", http.StatusUnauthorized},
		{"/hooks/github", "X-Hub-Signature-256: sha256=zz\r\n", http.StatusUnauthorized},
		{"/hooks/slack/events", "", http.StatusUnauthorized},
		{"/hooks/slack/events", "X-Slack-Request-Timestamp: 1000\r\nX-Slack-Signature: v0=" + strings.Repeat("0", 64) + "\r\n", http.StatusUnauthorized},
		{"/hooks/jira/wrong-token", "", http.StatusNotFound},
		{"/hooks/jira", "", http.StatusUnauthorized},
	} {
		c := dialFrom(t, "127.0.0.1", addr)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", tc.path, tc.header)
		resp, body := readResponse(t, c, bufio.NewReader(c))
		if resp.StatusCode != tc.status || errorCodeOf(body) == "" {
			t.Errorf("POST %s (%q) without its body: %d %s, want %d", tc.path, tc.header, resp.StatusCode, body, tc.status)
		}
		if resp.ContentLength != int64(len(body)) || !resp.Close {
			t.Errorf("POST %s (%q) without its body: Content-Length %d, close %v; want the length, so that the answer ends before the server stops waiting for the body, and Connection: close",
				tc.path, tc.header, resp.ContentLength, resp.Close)
		}
		c.Close()
	}
}
