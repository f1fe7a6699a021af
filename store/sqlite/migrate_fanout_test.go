package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

// TestMigrationDrainsLegacyFollowers leaves a database as a version-7
// gateway stopped in the middle of its work (records appended, the outbox
// and webhook followers behind, one output already delivered), then opens
// it: migration 8 enqueues exactly what the followers had not, in the
// session's order, and drops their cursors.
func TestMigrationDrainsLegacyFollowers(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "switchboard.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	thread := envelope.Conversation{Source: "slack", Ref: "T1/C1/1.1"}
	if _, err := s.CreateWebhook(ctx, store.Webhook{ID: "wh", URL: "https://example.test/hook", Secret: "whsec_x",
		CreatedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Bind(ctx, store.Binding{SessionID: "ses_a", Conversation: thread}, nil); err != nil {
		t.Fatal(err)
	}
	steer := appendReq("ses_a", "slack:m1", "fix it")
	steer.Envelope.Conversation, steer.Wake = thread, true
	for _, req := range []store.AppendRequest{
		steer,
		{SessionID: "ses_a", Direction: store.Outbound, Envelope: appendReq("", "agent:o1", "on it").Envelope},
		{SessionID: "ses_a", Direction: store.Outbound, Envelope: appendReq("", "agent:o2", "done").Envelope, Rest: true},
	} {
		if _, err := s.Append(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.CreateSession(ctx, "ses_b", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetState(ctx, "ses_b", store.Running); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// What a version-7 gateway would have left: no fan-out, the outbox
	// follower past o1 (delivered), the webhook follower past m1 only, the
	// journal follower past ses_a's creation only.
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`DELETE FROM deliveries`)
	exec(`DELETE FROM schema_migrations WHERE version >= 8`) // later steps are re-run too
	exec(`ALTER TABLE records DROP COLUMN no_turn`)          // step 10's
	exec(`INSERT INTO consumers (name, scanned_rid) SELECT 'outbox', max(rid) FROM records`)
	exec(`INSERT INTO consumers (name, scanned_rid) SELECT 'webhooks', max(rid) FROM records`)
	exec(`INSERT INTO cursors (consumer, sid, seq, head) SELECT 'outbox', sid, 2, 3 FROM sessions WHERE id = 'ses_a'`)
	exec(`INSERT INTO cursors (consumer, sid, seq, head) SELECT 'webhooks', sid, 1, 3 FROM sessions WHERE id = 'ses_a'`)
	exec(`INSERT INTO deliveries (id, sid, seq, event, to_source, to_ref, status, head, next_attempt, created_at, updated_at)
		SELECT 'dlv_o1', sid, 2, 0, 'slack', 'T1/C1/1.1', 'delivered', 0, 0, 0, 0 FROM sessions WHERE id = 'ses_a'`)
	exec(`INSERT INTO kv (namespace, key, value, updated_at)
		SELECT 'router', 'webhooks.journal', CAST(min(eid) AS TEXT), 0 FROM session_events`)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ds, err := s.ListDeliveries(ctx, "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ds, func(a, b store.Delivery) int { return a.CreatedAt.Compare(b.CreatedAt) })
	var got []string
	for _, d := range ds {
		if d.ID == "dlv_o1" {
			continue
		}
		got = append(got, fmt.Sprintf("%s %s seq %d event %t", d.SessionID, d.To.Key(), d.Seq, d.Event != 0))
	}
	slices.Sort(got)
	want := []string{
		// o2 to the thread; o1 was delivered already.
		"ses_a slack/T1/C1/1.1 seq 3 event false",
		// ses_a past the webhook cursor: the wake after m1, o1, o2, the
		// rest after o2.
		"ses_a webhook/wh/ses_a seq 1 event true",
		"ses_a webhook/wh/ses_a seq 2 event false",
		"ses_a webhook/wh/ses_a seq 3 event false",
		"ses_a webhook/wh/ses_a seq 3 event true",
		// ses_b's creation and state change, past the journal cursor.
		"ses_b webhook/wh/ses_b seq 0 event true",
		"ses_b webhook/wh/ses_b seq 0 event true",
	}
	if !slices.Equal(got, want) {
		t.Errorf("deliveries after the migration:\n%q\nwant\n%q", got, want)
	}
	// The webhook queue of ses_a holds them in the session's order.
	var order []string
	for _, d := range ds {
		if d.To.Ref == "wh/ses_a" {
			order = append(order, fmt.Sprintf("%d/%t", d.Seq, d.Event != 0))
		}
	}
	if want := []string{"1/true", "2/false", "3/false", "3/true"}; !slices.Equal(order, want) {
		t.Errorf("ses_a's webhook queue in the order %q, want %q", order, want)
	}
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM cursors WHERE consumer IN ('outbox', 'webhooks')`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d legacy cursor rows left (%v), want none", n, err)
	}
}
