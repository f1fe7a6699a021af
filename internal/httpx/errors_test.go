package httpx

import (
	"net/http/httptest"
	"testing"
)

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, 404, "not_found", `no "x"`)
	if w.Code != 404 || w.Header().Get("Content-Type") != "application/json" ||
		w.Body.String() != `{"error":{"code":"not_found","message":"no \"x\""}}`+"\n" {
		t.Errorf("WriteError: %d %s %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}

func TestClientKey(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7:4242":                  "192.0.2.7",
		"192.0.2.7":                       "192.0.2.7",
		"[::ffff:192.0.2.7]:80":           "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443":      "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1%eth0]:443": "2001:db8:1:2::/64",
		"@":                               "@",
		"pipe":                            "pipe",
	} {
		if got := ClientKey(addr); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", addr, got, want)
		}
	}
}
