package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestNotFoundDoesNotEchoAHugeID: a 100 KB path id is quoted back cut to a
// few dozen bytes.
func TestNotFoundDoesNotEchoAHugeID(t *testing.T) {
	h := newHarness(t, nil)
	huge := strings.Repeat("x", 100<<10)
	w := h.do(req{method: "GET", path: "/v3/sessions/ses_" + huge, token: adminSecret})
	if w.Code != http.StatusNotFound {
		t.Fatalf("status %d, want 404", w.Code)
	}
	if n := w.Body.Len(); n > 300 {
		t.Errorf("the 404 is %d bytes: it echoes the id", n)
	}
	if !strings.Contains(w.Body.String(), `"ses_xxx`) || !strings.Contains(w.Body.String(), "…") {
		t.Errorf("body %s, want the start of the id, cut", w.Body)
	}
	if got := echoID("ses_é" + strings.Repeat("é", 40)); !strings.HasSuffix(got, "…") || strings.ContainsRune(got, '\uFFFD') || strings.Contains(got, `\x`) {
		t.Errorf("echoID cut %q inside a character", got)
	}
}
