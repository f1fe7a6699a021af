package httpx

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
)

// ErrorBody returns the JSON body every Switchboard endpoint answers an
// error with: {"error": {"code": code, "message": message}}.
func ErrorBody(code, message string) []byte {
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Error detail `json:"error"`
	}{detail{code, message}})
	return b
}

// WriteError answers with status and ErrorBody(code, message) as JSON.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(ErrorBody(code, message), '\n'))
}

// ClientKey returns the key under which per-client limits count a remote
// address ("host:port", or a bare host): its IP, an IPv6 address reduced
// to its /64 (one site's share, which a client can rotate through freely).
// An address that is not an IP is returned as it is.
func ClientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
