package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/switchboardhq/switchboard/store"
)

func TestFindConversation(t *testing.T) {
	h, _ := routerHarness(t)
	bind := `{"source":"github","ref":"acme/app#7"}`
	if w := h.do(req{method: "POST", path: "/v3/sessions/" + agentSession + "/conversations", token: adminSecret, body: bind}); w.Code != http.StatusCreated {
		t.Fatalf("bind: %d %s", w.Code, w.Body)
	}
	find := func(source, ref string) string {
		return "/v3/conversations?" + url.Values{"source": {source}, "ref": {ref}}.Encode()
	}
	w := h.do(req{method: "GET", path: find("github", "acme/app#7"), token: steerSecret})
	var b store.Binding
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &b) != nil || b.SessionID != agentSession {
		t.Fatalf("find: %d %s", w.Code, w.Body)
	}
	if w := h.do(req{method: "GET", path: find("github", "acme/app#8"), token: steerSecret}); w.Code != http.StatusNotFound {
		t.Fatalf("unbound: %d %s, want 404", w.Code, w.Body)
	}
	if w := h.do(req{method: "GET", path: "/v3/conversations?source=github", token: steerSecret}); w.Code != http.StatusBadRequest {
		t.Fatalf("no ref: %d %s, want 400", w.Code, w.Body)
	}
	if w := h.do(req{method: "GET", path: find("github", "acme/app#7"), token: agentSecret}); w.Code != http.StatusForbidden {
		t.Fatalf("agent token: %d, want 403", w.Code)
	}
}
