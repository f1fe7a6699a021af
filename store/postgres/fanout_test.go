package postgres

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
)

// TestDrainLegacyFollowers leaves a database as a gateway before migration
// 0007 would have when it stopped in the middle of its work (records
// appended, the outbox and webhook followers behind, one output delivered
// already), then drains it as Open does: exactly what the followers had
// not enqueued is enqueued, in the session's order, and their consumers are
// dropped; a second drain finds nothing to do.
func TestDrainLegacyFollowers(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, testenv.Postgres(t), Options{})
	thread := envelope.Conversation{Source: "slack", Ref: "T1/C1/1.1"}
	if _, err := s.CreateWebhook(ctx, store.Webhook{ID: "wh", URL: "https://example.test/hook", Secret: "whsec_x",
		CreatedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Bind(ctx, store.Binding{SessionID: "ses_a", Conversation: thread}, nil); err != nil {
		t.Fatal(err)
	}
	steer := msg("ses_a", "m1", "fix it")
	steer.Envelope.Conversation, steer.Wake = thread, true
	o1, o2 := msg("ses_a", "o1", "on it"), msg("ses_a", "o2", "done")
	o1.Direction, o2.Direction, o2.Rest = store.Outbound, store.Outbound, true
	o1.Envelope.Conversation, o2.Envelope.Conversation = envelope.Conversation{}, envelope.Conversation{}
	for _, req := range []store.AppendRequest{steer, o1, o2} {
		if _, err := s.Append(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	create(t, s, "ses_b")
	if _, err := s.SetState(ctx, "ses_b", store.Running); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`DELETE FROM deliveries`)
	exec(`INSERT INTO consumers (name) VALUES ('outbox'), ('webhooks')`)
	exec(`INSERT INTO cursors (consumer, session_id, seq) VALUES ('outbox', 'ses_a', 2), ('webhooks', 'ses_a', 1)`)
	exec(`INSERT INTO deliveries (id, session_id, seq, event, conv_source, conv_ref, status, next_attempt, created_at, updated_at)
		VALUES ('dlv_o1', 'ses_a', 2, 0, 'slack', 'T1/C1/1.1', 'delivered', now(), now(), now())`)
	exec(`INSERT INTO kv (namespace, key, value, updated_at)
		SELECT 'router', 'webhooks.journal', convert_to(xid::text || ':' || eid::text, 'UTF8'), now()
		FROM session_events WHERE session_id = 'ses_a' AND type = 'session.created'`)

	for range 2 {
		if err := drainLegacyFollowers(ctx, s.pool); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.ListDeliveries(ctx, "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		if d.ID != "dlv_o1" {
			got = append(got, fmt.Sprintf("%s %s seq %d event %t", d.SessionID, d.To.Key(), d.Seq, d.Event != 0))
		}
	}
	slices.Sort(got)
	want := []string{
		"ses_a slack/T1/C1/1.1 seq 3 event false",
		"ses_a webhook/wh/ses_a seq 1 event true",
		"ses_a webhook/wh/ses_a seq 2 event false",
		"ses_a webhook/wh/ses_a seq 3 event false",
		"ses_a webhook/wh/ses_a seq 3 event true",
		"ses_b webhook/wh/ses_b seq 0 event true",
		"ses_b webhook/wh/ses_b seq 0 event true",
	}
	if !slices.Equal(got, want) {
		t.Errorf("deliveries after the drain:\n%q\nwant\n%q", got, want)
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, event <> 0 FROM deliveries WHERE conv_ref = 'wh/ses_a' ORDER BY ord`)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for rows.Next() {
		var seq int64
		var ev bool
		if err := rows.Scan(&seq, &ev); err != nil {
			t.Fatal(err)
		}
		order = append(order, fmt.Sprintf("%d/%t", seq, ev))
	}
	if want := []string{"1/true", "2/false", "3/false", "3/true"}; !slices.Equal(order, want) {
		t.Errorf("ses_a's webhook queue in the order %q, want %q", order, want)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM consumers WHERE name IN ('outbox', 'webhooks')`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d legacy consumers left (%v), want none", n, err)
	}
}
