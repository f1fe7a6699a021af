package adaptertest

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/envelope"
)

// Eventually waits until cond, which another goroutine makes true, fails t
// naming what when it is not within a minute: the deadline only guards
// against a hang.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// CounterValue reads a counter (-1 when it cannot be read).
func CounterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// Delivery is delivery id of an agent's message, text written at ts, to
// conversation to: attempt counts from 1.
func Delivery(id string, to envelope.Conversation, text string, ts time.Time, attempt int) adapters.Delivery {
	return adapters.Delivery{
		ID:        id,
		SessionID: "s1",
		To:        to,
		Envelope: envelope.Envelope{
			ID: "agent:out-" + id, Source: "agent", Kind: envelope.KindMessage,
			Actor: envelope.Actor{ID: "agent:s1", Type: envelope.Agent},
			Text:  text, TS: ts,
		},
		Attempt: attempt,
	}
}
