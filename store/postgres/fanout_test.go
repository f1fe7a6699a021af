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

// TestLatestConversationKeptInTheSessionRow: migration 11 fills each
// session's newest inbound conversation from its records, and Append keeps
// it: an output that names no conversation goes to it (when it is bound),
// before and after the session's next inbound record moves it.
func TestLatestConversationKeptInTheSessionRow(t *testing.T) {
	ctx := t.Context()
	dsn := testenv.Postgres(t)
	pool := migratedTo(t, dsn, 10)
	// Session a: inbound from thread 1, then thread 2, then an output and
	// an inbound message that names no conversation. Session b: nothing
	// inbound with a conversation.
	for _, q := range []string{
		"INSERT INTO sessions (id, state, last_seq, created_at, updated_at) VALUES ('a', 'idle', 4, now(), now()), ('b', 'idle', 1, now(), now())",
		`INSERT INTO records (session_id, seq, direction, envelope_id, source, kind, actor_id, actor_display, actor_type,
			conv_source, conv_ref, text, refs, ts, ts_nanos, stored_at)
			VALUES ('a', 1, 'inbound', 'm1', 'slack', 'message', 'slack:U1', '', 'human', 'slack', 'T/C/1', 'one', '{}', now(), 0, now()),
				('a', 2, 'inbound', 'm2', 'slack', 'message', 'slack:U1', '', 'human', 'slack', 'T/C/2', 'two', '{}', now(), 0, now()),
				('a', 3, 'outbound', 'o3', 'exec', 'message', 'bot', '', 'agent', '', '', 'ok', '{}', now(), 0, now()),
				('a', 4, 'inbound', 'm4', 'client', 'message', 'client:x', '', 'human', '', '', 'four', '{}', now(), 0, now()),
				('b', 1, 'inbound', 'm1', 'client', 'message', 'client:x', '', 'human', '', '', 'one', '{}', now(), 0, now())`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	s := openStore(t, dsn, Options{})
	latest := func(id string) envelope.Conversation {
		t.Helper()
		var c envelope.Conversation
		if err := s.pool.QueryRow(ctx, `SELECT latest_source, latest_ref FROM sessions WHERE id = $1`, id).Scan(&c.Source, &c.Ref); err != nil {
			t.Fatal(err)
		}
		return c
	}
	one, two := envelope.Conversation{Source: "slack", Ref: "T/C/1"}, envelope.Conversation{Source: "slack", Ref: "T/C/2"}
	if got := latest("a"); got != two {
		t.Errorf("migrated latest conversation of a = %+v, want %+v", got, two)
	}
	if got := latest("b"); !got.IsZero() {
		t.Errorf("migrated latest conversation of b = %+v, want none", got)
	}
	for _, c := range []envelope.Conversation{one, two} {
		if _, _, err := s.Bind(ctx, store.Binding{SessionID: "a", Conversation: c}, nil); err != nil {
			t.Fatal(err)
		}
	}
	output := func(key string) int64 {
		t.Helper()
		out := msg("a", key, "answer")
		out.Direction, out.Envelope.Conversation = store.Outbound, envelope.Conversation{}
		res, err := s.Append(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		return res.Record.Seq
	}
	wentTo := func(seq int64) []envelope.Conversation {
		t.Helper()
		ds, err := s.SessionDeliveries(ctx, store.DeliveryFilter{SessionID: "a"}, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var to []envelope.Conversation
		for _, d := range ds {
			if d.Seq == seq && d.Event == 0 {
				to = append(to, d.To)
			}
		}
		return to
	}
	if seq := output("o5"); !slices.Equal(wentTo(seq), []envelope.Conversation{two}) {
		t.Errorf("output after the migration went to %+v, want %+v", wentTo(seq), two)
	}
	in := msg("a", "m7", "back in thread one")
	in.Envelope.Conversation = one
	if _, err := s.Append(ctx, in); err != nil {
		t.Fatal(err)
	}
	if got := latest("a"); got != one {
		t.Errorf("latest conversation after an inbound message from thread one = %+v", got)
	}
	if seq := output("o8"); !slices.Equal(wentTo(seq), []envelope.Conversation{one}) {
		t.Errorf("output after a message from thread one went to %+v, want %+v", wentTo(seq), one)
	}
}
