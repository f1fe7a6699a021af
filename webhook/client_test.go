package webhook

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true},
		{"2606:4700::1111", true},
		{"::ffff:1.1.1.1", true},
		{"127.0.0.1", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fc00::1", false},
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		// "This network": Linux dials 0.0.0.0/8 as the local host.
		{"0.1.2.3", false},
		// Benchmarking, reserved, broadcast, IETF and documentation nets.
		{"198.18.0.1", false},
		{"198.19.255.254", false},
		{"198.20.0.1", true},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"192.0.0.8", false},
		{"192.0.2.1", false},
		{"198.51.100.1", false},
		{"203.0.113.1", false},
		// NAT64 (RFC 6052) is judged by the IPv4 address it carries.
		{"64:ff9b::7f00:1", false},
		{"64:ff9b::a9fe:a9fe", false},
		{"64:ff9b::10.0.0.1", false},
		{"64:ff9b::808:808", true},
		{"64:ff9b:1::808:808", false}, // local-use NAT64: the operator's own
		// 6to4 carries the IPv4 address in bits 16 to 48.
		{"2002:7f00:1::1", false},
		{"2002:a00:1::1", false},
		{"2002:c0a8:101::", false},
		{"2002:808:808::1", true},
		// IPv4-compatible and IPv4-translated addresses.
		{"::127.0.0.1", false},
		{"::10.0.0.1", false},
		{"::169.254.169.254", false},
		{"::8.8.8.8", true},
		{"::ffff:0:127.0.0.1", false},
		// Site-local, Teredo, discard-only, documentation.
		{"fec0::1", false},
		{"feff::1", false},
		{"2001::1", false},
		{"100::1", false},
		{"2001:db8::1", false},
		{"3fff::1", false},
		{"2001:4860:4860::8888", true},
	} {
		if got := Public(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Public(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestClientRefusesPrivateAddressesAtDial(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer srv.Close()
	s, _ := NewSigner(clientSecret)
	// "localhost" resolves to loopback: the check runs after resolution.
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for _, u := range []string{srv.URL, url} {
		_, err := NewClient(ClientOptions{}).Post(t.Context(), u, s, "msg_1", time.Now(), []byte(`{}`))
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("Post(%s) = %v, want ErrForbiddenAddress", u, err)
		}
	}
	if hit {
		t.Error("the refused destination was reached")
	}
	res, err := NewClient(ClientOptions{AllowPrivate: true}).Post(t.Context(), srv.URL, s, "msg_1", time.Now(), []byte(`{}`))
	if err != nil || res.StatusCode != 200 || !hit {
		t.Errorf("with AllowPrivate: %+v, %v", res, err)
	}
}

func TestClientPostSignsAndLimitsResponse(t *testing.T) {
	var got http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, strings.Repeat("x", 5000))
	}))
	defer srv.Close()
	s, _ := NewSigner(clientSecret)
	c := NewClient(ClientOptions{AllowPrivate: true, MaxResponse: 100})
	now := time.Now()
	res, err := c.Post(t.Context(), srv.URL, s, "msg_1", now, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 || res.OK() || len(res.Body) != 100 || res.RetryAfter != 7*time.Second {
		t.Errorf("result = status %d, %d body bytes, retry after %v", res.StatusCode, len(res.Body), res.RetryAfter)
	}
	v, _ := NewVerifier(clientSecret)
	if err := v.Verify(got, body, now); err != nil || got.Get("Content-Type") != "application/json" {
		t.Errorf("delivery does not verify: %v (headers %v)", err, got)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	other := 0
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { other++ }))
	defer target.Close()
	srv := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	defer srv.Close()
	s, _ := NewSigner(clientSecret)
	res, err := NewClient(ClientOptions{AllowPrivate: true}).Post(t.Context(), srv.URL, s, "msg_1", time.Now(), nil)
	if err != nil || res.StatusCode != http.StatusTemporaryRedirect || res.OK() || other != 0 {
		t.Errorf("redirect: %+v, %v, target hit %d times", res, err, other)
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	s, _ := NewSigner(clientSecret)
	_, err := NewClient(ClientOptions{AllowPrivate: true, Timeout: 50 * time.Millisecond}).Post(t.Context(), srv.URL, s, "msg_1", time.Now(), nil)
	if err == nil {
		t.Error("Post to a receiver that never answers returned no error")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "-3": 0, "junk": 0, "120": 2 * time.Minute,
		now.Add(30 * time.Second).Format(http.TimeFormat): 30 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		"99999999999": 7 * 24 * time.Hour,
		now.Add(8 * 24 * time.Hour).Format(http.TimeFormat): 7 * 24 * time.Hour,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

const clientSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestClientKeepsConnectionsForParallelPosts posts two waves of parallel
// deliveries to one host: the second wave reuses the first wave's
// connections rather than dialling anew.
func TestClientKeepsConnectionsForParallelPosts(t *testing.T) {
	const parallel = 8
	var (
		mu      sync.Mutex
		dialled int
		arrived = make(chan struct{}, parallel)
		release = make(chan struct{}, parallel)
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			dialled++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	c := NewClient(ClientOptions{AllowPrivate: true, IdlePerHost: parallel})
	s, _ := NewSigner(clientSecret)
	for wave := range 2 {
		var wg sync.WaitGroup
		for i := range parallel {
			wg.Go(func() {
				res, err := c.Post(t.Context(), srv.URL, s, fmt.Sprintf("msg_%d_%d", wave, i), time.Now(), []byte(`{}`))
				if err != nil || !res.OK() {
					t.Errorf("post: %+v, %v", res, err)
				}
			})
		}
		for range parallel { // every post in flight at once
			<-arrived
		}
		for range parallel {
			release <- struct{}{}
		}
		wg.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	if dialled != parallel {
		t.Errorf("%d connections dialled for two waves of %d parallel posts, want %d", dialled, parallel, parallel)
	}
}
