package webhooks

import (
	"testing"

	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/store"
)

func TestFailedKeyMakesDeliveryFailedRecords(t *testing.T) {
	rec := store.Record{Envelope: envelope.Envelope{ID: "system:" + failedKey + "wh_1:dlv_1:3", Kind: envelope.KindSystem}}
	if got := store.EventTypeOf(&rec); got != envelope.EventDeliveryFail {
		t.Fatalf("a record with id %q has event type %q, want %q", rec.Envelope.ID, got, envelope.EventDeliveryFail)
	}
}
