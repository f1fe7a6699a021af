package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/switchboardhq/switchboard/internal/httpx"
)

// ErrForbiddenAddress: a destination resolved to an address the client may
// not reach (loopback, private, link-local, …) without AllowPrivate.
var ErrForbiddenAddress = errors.New("webhook: destination address not allowed")

// ClientOptions configure NewClient.
type ClientOptions struct {
	// AllowPrivate lets the client reach loopback, private (RFC 1918, ULA),
	// link-local, CGNAT, unspecified and other special-purpose addresses
	// (see Public). Off, such destinations are refused when dialling, after
	// DNS resolution, so a name that resolves (or re-resolves) to an inside
	// address cannot get through.
	AllowPrivate bool
	// Timeout bounds one Post, from dial to the end of reading the response
	// (default 10s).
	Timeout time.Duration
	// MaxResponse is how much of a response body is read and kept (default
	// 1 KiB); the rest is discarded unread.
	MaxResponse int64
	// UserAgent is sent with every request (default "Switchboard-Webhooks").
	UserAgent string
	// IdlePerHost is how many idle connections to one destination host
	// are kept for reuse (default 32). Set it to how many posts may be in
	// flight at once, or connections beyond it are closed after each post
	// and dialled again for the next.
	IdlePerHost int
}

// Client posts signed webhook deliveries. It is safe for concurrent use.
type Client struct {
	hc  *http.Client
	max int64
	ua  string
}

// NewClient returns a Client. It does no I/O.
func NewClient(o ClientOptions) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxResponse <= 0 {
		o.MaxResponse = 1 << 10
	}
	if o.UserAgent == "" {
		o.UserAgent = "Switchboard-Webhooks"
	}
	if o.IdlePerHost <= 0 {
		o.IdlePerHost = 32
	}
	d := &net.Dialer{Timeout: o.Timeout}
	if !o.AllowPrivate {
		d.Control = refusePrivate
	}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would dial on the client's behalf, past the check
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   o.IdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.Timeout,
	}
	return &Client{
		hc: &http.Client{
			Transport: tr,
			Timeout:   o.Timeout,
			// A redirect is a failed delivery: following it would post the
			// signed event somewhere the destination's owner did not name.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		max: o.MaxResponse,
		ua:  o.UserAgent,
	}
}

// refusePrivate is a net.Dialer Control hook: it runs for each address the
// dialer tries, after resolution, and refuses the non-public ones.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
	}
	if !Public(ap.Addr()) {
		return fmt.Errorf("%w: %s is not a public address", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// nonPublic4 are the IPv4 ranges, beyond those the netip predicates name,
// that are not reachable public unicast (IANA's special-purpose registry):
// the "this network" block (0.0.0.0/8, which Linux dials as loopback), CGNAT
// shared space, IETF protocol assignments, the documentation and
// benchmarking networks, and the reserved 240.0.0.0/4 with broadcast.
var nonPublic4 = prefixes(
	"0.0.0.0/8",
	"100.64.0.0/10",
	"192.0.0.0/24",
	"192.0.2.0/24",
	"198.18.0.0/15",
	"198.51.100.0/24",
	"203.0.113.0/24",
	"240.0.0.0/4",
)

// nonPublic6 are the IPv6 ranges, beyond loopback, link-local, multicast and
// unique-local (fc00::/7), that are not public unicast: discard-only,
// Teredo (its embedded addresses are obfuscated, and it is a tunnel into
// whatever network runs the relay), the benchmarking and documentation
// networks, the local-use NAT64 prefix (RFC 8215, which translates to
// addresses of the operator's choosing), and the deprecated site-local
// fec0::/10, which some stacks still route inside a site.
var nonPublic6 = prefixes(
	"100::/64",
	"2001::/32",
	"2001:2::/48",
	"2001:db8::/32",
	"3fff::/20",
	"64:ff9b:1::/48",
	"fec0::/10",
)

// Ranges of IPv6 that carry an IPv4 address, which decides where a dial
// really goes: the well-known NAT64 prefix (RFC 6052) and IPv4-compatible
// addresses (::a.b.c.d, which also hold :: and ::1) and IPv4-translated
// ones (::ffff:0:a.b.c.d, RFC 2765) in the last 32 bits, 6to4 (RFC 3056) in
// bits 16 to 48.
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	ipv4Compat = netip.MustParsePrefix("::/96")
	ipv4Trans  = netip.MustParsePrefix("::ffff:0:0:0/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

func prefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// embeddedIPv4 returns the IPv4 address that an IPv6 address of a
// translation or tunnelling range stands for.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64.Contains(a), ipv4Compat.Contains(a), ipv4Trans.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Public reports whether a is a public unicast address: not loopback,
// private, link-local, multicast, unspecified, CGNAT, reserved or any other
// special-purpose range (see nonPublic4 and nonPublic6). An IPv6 address
// that carries an IPv4 one (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96,
// 6to4 2002::/16) is judged by the IPv4 address it carries, so
// 64:ff9b::8.8.8.8 is public (an IPv6-only host reaches the world that way)
// and 2002:7f00:1:: (127.0.0.1) is not.
func Public(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return false
	}
	if a.Is6() {
		if v4, ok := embeddedIPv4(a); ok {
			return Public(v4)
		}
	}
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	ranges := nonPublic6
	if a.Is4() {
		ranges = nonPublic4
	}
	for _, p := range ranges {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// Result is what one Post got back.
type Result struct {
	// StatusCode is the response's status, 0 when none came.
	StatusCode int
	// Latency is from sending the request to reading the response.
	Latency time.Duration
	// Body is the start of the response body (up to MaxResponse bytes).
	Body []byte
	// RetryAfter is the response's Retry-After, 0 when absent or invalid.
	RetryAfter time.Duration
}

// OK reports whether the receiver accepted the delivery (a 2xx status).
func (r Result) OK() bool { return r.StatusCode >= 200 && r.StatusCode < 300 }

// Post sends body to url as application/json, signed by s with message id
// id at ts, and returns what came back. It blocks until the response is
// read or ctx or the client's timeout ends; err is non-nil only when no
// response came (a dial, TLS, timeout or refused-address error). A non-2xx
// response is not an error: look at Result.
func (c *Client) Post(ctx context.Context, url string, s *Signer, id string, ts time.Time, body []byte) (Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("webhook: post: %w", err)
	}
	if err := s.SetHeaders(req.Header, id, ts, body); err != nil {
		return Result{}, fmt.Errorf("webhook: post: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.ua)
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return Result{Latency: time.Since(start)}, fmt.Errorf("webhook: post: %w", err)
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, c.max))
	return Result{
		StatusCode: resp.StatusCode,
		Latency:    time.Since(start),
		Body:       excerpt,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}, nil
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date,
// capped at a week; 0 when absent, invalid, zero or in the past.
func retryAfter(v string, now time.Time) time.Duration {
	d, ok := httpx.RetryAfter(v, now)
	if !ok || d <= 0 {
		return 0
	}
	return min(d, 7*24*time.Hour)
}
