package storetest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/store"
)

func (s suite) testCreateAndGet(t *testing.T) {
	st, _ := s.fresh(t)
	before := time.Now().Add(-time.Second)
	meta := map[string]string{"owner": "ada", "agent": "claude", "unicode": "é ✓"}
	sess, created, err := st.CreateSession(t.Context(), "sess-1", meta)
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if !created {
		t.Error("created = false for a new session")
	}
	if sess.ID != "sess-1" || sess.State != store.Idle || sess.LastSeq != 0 {
		t.Errorf("new session = %+v, want id sess-1, idle, last seq 0", sess)
	}
	if !maps.Equal(sess.Metadata, meta) {
		t.Errorf("metadata = %v, want %v", sess.Metadata, meta)
	}
	if sess.CreatedAt.Before(before) || sess.UpdatedAt.Before(before) {
		t.Errorf("created at %s, updated at %s: want times of now", sess.CreatedAt, sess.UpdatedAt)
	}

	got, err := st.Session(t.Context(), "sess-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	checkSession(t, "Session after CreateSession", got, sess)

	// A session without metadata is fine too.
	if _, created, err := st.CreateSession(t.Context(), "sess-2", nil); err != nil || !created {
		t.Fatalf("CreateSession without metadata: created %v, err %v", created, err)
	}
	if got, err := st.Session(t.Context(), "sess-2"); err != nil || len(got.Metadata) != 0 {
		t.Fatalf("Session without metadata = %+v, %v; want empty metadata", got, err)
	}
}

func checkSession(t *testing.T, what string, got, want store.Session) {
	t.Helper()
	if got.ID != want.ID || got.State != want.State || got.LastSeq != want.LastSeq ||
		!maps.Equal(got.Metadata, want.Metadata) ||
		!closeTime(got.CreatedAt, want.CreatedAt) || !closeTime(got.UpdatedAt, want.UpdatedAt) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func (s suite) testCreateExisting(t *testing.T) {
	st, _ := s.fresh(t)
	orig, _, err := st.CreateSession(t.Context(), "sess-1", map[string]string{"v": "1"})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	again, created, err := st.CreateSession(t.Context(), "sess-1", map[string]string{"v": "2", "extra": "x"})
	if err != nil {
		t.Fatalf("CreateSession again: %v", err)
	}
	if created {
		t.Error("created = true for an existing session")
	}
	checkSession(t, "CreateSession of an existing id", again, orig)
	got, err := st.Session(t.Context(), "sess-1")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	checkSession(t, "Session after a repeated CreateSession", got, orig)
}

func (s suite) testSessionNotFound(t *testing.T) {
	st, _ := s.fresh(t)
	if _, err := st.Session(t.Context(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Session(unknown) error = %v, want ErrNotFound", err)
	}
	if _, err := st.SetState(t.Context(), "nope", store.Running); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetState(unknown) error = %v, want ErrNotFound", err)
	}
}

func (s suite) testListPagination(t *testing.T) {
	st, _ := s.fresh(t)
	if page, err := st.ListSessions(t.Context(), "", 10); err != nil || len(page) != 0 {
		t.Fatalf("ListSessions on an empty store = %v, %v; want nothing", page, err)
	}
	const n = 25
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("s-%02d", i)
	}
	// Create out of order: pages follow ids, not creation.
	for _, i := range rand.Perm(n) {
		createSession(t, st, ids[i])
	}

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatalf("ListSessions did not finish after %d pages", pages)
		}
		page, err := st.ListSessions(t.Context(), after, 10)
		if err != nil {
			t.Fatalf("ListSessions(after %q): %v", after, err)
		}
		if len(page) > 10 {
			t.Fatalf("ListSessions(limit 10) returned %d sessions", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, sess := range page {
			if sess.State != store.Idle || sess.Metadata["purpose"] != "test" {
				t.Errorf("listed session %+v lacks its state or metadata", sess)
			}
			got = append(got, sess.ID)
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("paged ids = %v, want %v", got, ids)
	}

	// The cursor need not be an existing id.
	page, err := st.ListSessions(t.Context(), "s-10x", 3)
	if err != nil {
		t.Fatalf("ListSessions(after s-10x): %v", err)
	}
	if len(page) != 3 || page[0].ID != "s-11" || page[2].ID != "s-13" {
		t.Errorf("ListSessions(after s-10x, 3) = %v, want s-11..s-13", sessionIDs(page))
	}

	// Newest first: the same sessions backwards, page by page.
	var back []string
	before := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatalf("ListSessionsBefore did not finish after %d pages", pages)
		}
		page, err := st.ListSessionsBefore(t.Context(), before, 7)
		if err != nil {
			t.Fatalf("ListSessionsBefore(before %q): %v", before, err)
		}
		if len(page) > 7 {
			t.Fatalf("ListSessionsBefore(limit 7) returned %d sessions", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, sess := range page {
			if sess.Metadata["purpose"] != "test" {
				t.Errorf("listed session %+v lacks its metadata", sess)
			}
			back = append(back, sess.ID)
		}
		before = page[len(page)-1].ID
	}
	slices.Reverse(back)
	if fmt.Sprint(back) != fmt.Sprint(ids) {
		t.Fatalf("ids paged newest first, reversed = %v, want %v", back, ids)
	}
	if page, err := st.ListSessionsBefore(t.Context(), "s-10x", 3); err != nil || fmt.Sprint(sessionIDs(page)) != "[s-10 s-09 s-08]" {
		t.Errorf("ListSessionsBefore(before s-10x, 3) = %v, %v; want s-10, s-09, s-08", sessionIDs(page), err)
	}
}

func sessionIDs(ss []store.Session) []string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	return ids
}

func (s suite) testSetState(t *testing.T) {
	st, _ := s.fresh(t)
	orig := createSession(t, st, "sess-1")

	steps := []struct {
		state   store.State
		changed bool
	}{
		{store.Running, true},
		{store.Running, false},
		{store.Idle, true},
		{store.Idle, false},
		{store.Running, true},
	}
	for i, step := range steps {
		changed, err := st.SetState(t.Context(), "sess-1", step.state)
		if err != nil {
			t.Fatalf("step %d: SetState(%s): %v", i, step.state, err)
		}
		if changed != step.changed {
			t.Errorf("step %d: SetState(%s) changed = %v, want %v", i, step.state, changed, step.changed)
		}
		got, err := st.Session(t.Context(), "sess-1")
		if err != nil {
			t.Fatalf("Session: %v", err)
		}
		if got.State != step.state {
			t.Errorf("step %d: state = %s after SetState(%s)", i, got.State, step.state)
		}
		if got.UpdatedAt.Before(orig.UpdatedAt) || !closeTime(got.CreatedAt, orig.CreatedAt) {
			t.Errorf("step %d: times went wrong: %+v (created as %+v)", i, got, orig)
		}
	}
}
