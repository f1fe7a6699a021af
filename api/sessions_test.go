package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

func TestCreateSession(t *testing.T) {
	h := newHarness(t, nil)
	w := h.do(req{method: "POST", path: "/v3/sessions", token: steerSecret, body: `{"metadata": {"team": "infra", "ticket": "PROJ-1"}}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var s store.Session
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.ID, "ses_") || len(s.ID) != len("ses_")+32 {
		t.Errorf("id %q, want ses_ and 32 hex digits", s.ID)
	}
	if s.State != store.Idle || s.Metadata["team"] != "infra" || s.Metadata["ticket"] != "PROJ-1" || s.CreatedAt.IsZero() {
		t.Errorf("session %+v", s)
	}
	if loc := w.Header().Get("Location"); loc != "/v3/sessions/"+s.ID {
		t.Errorf("Location %q", loc)
	}
	g := h.do(req{method: "GET", path: "/v3/sessions/" + s.ID, token: steerSecret})
	var got store.Session
	if g.Code != 200 || json.Unmarshal(g.Body.Bytes(), &got) != nil || got.ID != s.ID || got.Metadata["team"] != "infra" {
		t.Errorf("get: %d %s", g.Code, g.Body)
	}

	// No body at all, and an empty object, are fine; metadata shows as {}.
	for _, body := range []string{"", "{}"} {
		w := h.do(req{method: "POST", path: "/v3/sessions", token: adminSecret, body: body})
		if w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), `"metadata":{}`) {
			t.Errorf("body %q: %d %s", body, w.Code, w.Body)
		}
	}

	for _, c := range []struct {
		name   string
		r      req
		status int
	}{
		{"unknown field", req{token: adminSecret, body: `{"metadata":{},"id":"mine"}`}, 400},
		{"metadata not strings", req{token: adminSecret, body: `{"metadata":{"n":1}}`}, 400},
		{"empty metadata key", req{token: adminSecret, body: `{"metadata":{"":"x"}}`}, 400},
		{"invalid JSON", req{token: adminSecret, body: `{`}, 400},
		{"agent may not", req{token: agentSecret}, 403},
		{"no token", req{}, 401},
	} {
		c.r.method, c.r.path = "POST", "/v3/sessions"
		if w := h.do(c.r); w.Code != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, w.Code, c.status, w.Body)
		}
	}
	for _, c := range []struct {
		path, token string
		status      int
	}{
		{"/v3/sessions/ses_nope", adminSecret, 404},
		{"/v3/sessions/" + agentSession, agentSecret, 403},
		{"/v3/sessions/" + agentSession, "", 401},
	} {
		if w := h.do(req{method: "GET", path: c.path, token: c.token}); w.Code != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, w.Code, c.status)
		}
	}
}

func TestListSessions(t *testing.T) {
	h := newHarness(t, nil)
	want := []string{agentSession}
	for range 5 {
		want = append(want, h.newSession())
	}
	created := want[1:]
	if !sort.StringsAreSorted(created) {
		t.Errorf("ids are not time-sortable: %v", created)
	}
	sort.Strings(want)

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		w := h.do(req{method: "GET", path: "/v3/sessions?limit=2&after=" + after, token: steerSecret})
		if w.Code != 200 {
			t.Fatalf("list: %d %s", w.Code, w.Body)
		}
		var page struct {
			Sessions  []store.Session `json:"sessions"`
			NextAfter string          `json:"next_after"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Sessions) > 2 {
			t.Fatalf("page of %d, limit 2", len(page.Sessions))
		}
		for _, s := range page.Sessions {
			got = append(got, s.ID)
		}
		if page.NextAfter == "" {
			break
		}
		if page.NextAfter != got[len(got)-1] {
			t.Errorf("next_after %q, want the last id %q", page.NextAfter, got[len(got)-1])
		}
		after = page.NextAfter
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("listed %v\nwant   %v", got, want)
	}
	for _, q := range []string{"?limit=0", "?limit=501", "?limit=x"} {
		if w := h.do(req{method: "GET", path: "/v3/sessions" + q, token: adminSecret}); w.Code != 400 {
			t.Errorf("%s: %d, want 400", q, w.Code)
		}
	}
	if w := h.do(req{method: "GET", path: "/v3/sessions", token: agentSecret}); w.Code != 403 {
		t.Errorf("agent listing: %d, want 403", w.Code)
	}
}

func TestPage(t *testing.T) {
	id := func(s string) string { return "id-" + s }
	items, next := page([]string(nil), 2, id)
	if items == nil || len(items) != 0 || next != "" {
		t.Errorf("nil list: %#v %q, want an empty non-nil page", items, next)
	}
	if b, _ := json.Marshal(items); string(b) != "[]" {
		t.Errorf("empty page encodes as %s", b)
	}
	if items, next := page([]string{"a", "b"}, 2, id); !slices.Equal(items, []string{"a", "b"}) || next != "" {
		t.Errorf("full last page: %v %q", items, next)
	}
	if items, next := page([]string{"a", "b", "c"}, 2, id); !slices.Equal(items, []string{"a", "b"}) || next != "id-b" {
		t.Errorf("page with more: %v %q, want [a b] and id-b", items, next)
	}
}

// TestListSessionsFiltered checks the state, route and source filters of
// the sessions list, paged, and that a filtered request looks at a bounded
// number of sessions.
func TestListSessionsFiltered(t *testing.T) {
	h, _ := routerHarness(t)
	ctx := context.Background()
	var slackRunning []string
	for i := range 12 {
		meta := map[string]string{store.MetaRoute: []string{"support", "ops"}[i%2]}
		id := fmt.Sprintf("ses_filter_%02d", i)
		if _, _, err := h.store.CreateSession(ctx, id, meta); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if _, err := h.store.SetState(ctx, id, store.Running); err != nil {
				t.Fatal(err)
			}
		}
		source := []string{"slack", "github"}[i%4/2]
		if _, _, err := h.store.Bind(ctx, store.Binding{SessionID: id, Conversation: envelope.Conversation{Source: source, Ref: id}}, nil); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 && source == "slack" {
			slackRunning = append(slackRunning, id)
		}
	}
	list := func(query string) []string {
		t.Helper()
		var ids []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("pagination does not end")
			}
			w := h.do(req{method: "GET", path: "/v3/sessions?limit=2&" + query + "&after=" + after, token: steerSecret})
			if w.Code != 200 {
				t.Fatalf("list %s: %d %s", query, w.Code, w.Body)
			}
			var page struct {
				Sessions  []store.Session `json:"sessions"`
				NextAfter string          `json:"next_after"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
				t.Fatal(err)
			}
			for _, s := range page.Sessions {
				ids = append(ids, s.ID)
			}
			if page.NextAfter == "" {
				return ids
			}
			after = page.NextAfter
		}
	}
	if got := list("state=running&source=slack"); fmt.Sprint(got) != fmt.Sprint(slackRunning) {
		t.Errorf("running sessions in slack: %v, want %v", got, slackRunning)
	}
	if got := list("route=ops"); len(got) != 6 {
		t.Errorf("sessions of route ops: %v, want 6", got)
	}
	if got := list("route=ops&state=idle&source=github"); fmt.Sprint(got) != "[ses_filter_07 ses_filter_11]" {
		t.Errorf("idle github sessions of route ops: %v", got)
	}
	if w := h.do(req{method: "GET", path: "/v3/sessions?state=asleep", token: steerSecret}); w.Code != 400 {
		t.Errorf("unknown state: %d, want 400", w.Code)
	}

	// Newest first, filtered too, paged with before=.
	newest := func(query string) []string {
		t.Helper()
		var ids []string
		before := ""
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("pagination does not end")
			}
			w := h.do(req{method: "GET", path: "/v3/sessions?order=newest&limit=2&" + query + "&before=" + before, token: steerSecret})
			var page struct {
				Sessions   []store.Session `json:"sessions"`
				NextAfter  string          `json:"next_after"`
				NextBefore string          `json:"next_before"`
			}
			if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &page) != nil || page.NextAfter != "" {
				t.Fatalf("list newest %s: %d %s", query, w.Code, w.Body)
			}
			for _, s := range page.Sessions {
				ids = append(ids, s.ID)
			}
			if page.NextBefore == "" {
				return ids
			}
			before = page.NextBefore
		}
	}
	if got := newest("route=ops&state=idle&source=github"); fmt.Sprint(got) != "[ses_filter_11 ses_filter_07]" {
		t.Errorf("idle github sessions of route ops, newest first: %v", got)
	}
	all := newest("")
	if len(all) != 13 || all[0] != "ses_filter_11" || !slices.IsSortedFunc(all, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("every session newest first: %v", all)
	}
	for _, q := range []string{"order=sideways", "order=newest&after=x", "before=x"} {
		if w := h.do(req{method: "GET", path: "/v3/sessions?" + q, token: steerSecret}); w.Code != 400 {
			t.Errorf("%s: %d, want 400", q, w.Code)
		}
	}
}
