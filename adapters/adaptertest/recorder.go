package adaptertest

import (
	"context"
	"sync"

	"github.com/switchboardhq/switchboard/adapters"
)

// Recorder is a test Ingress that records what it is given and reports a
// duplicate for an envelope id it saw before, as the store does. The zero
// Recorder is ready; it is safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	ins  []adapters.Inbound
	fail error // Ingest returns it (and records nothing) while set
}

// Ingest records in, or returns the error SetFail set.
func (r *Recorder) Ingest(_ context.Context, in adapters.Inbound) (adapters.Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return adapters.Outcome{}, r.fail
	}
	dup := false
	for _, prev := range r.ins {
		dup = dup || prev.Envelope.ID == in.Envelope.ID
	}
	r.ins = append(r.ins, in)
	return adapters.Outcome{SessionID: "s1", Seq: int64(len(r.ins)), Duplicate: dup}, nil
}

// SetFail makes Ingest fail with err (nil: succeed again).
func (r *Recorder) SetFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// All returns what was recorded, in order.
func (r *Recorder) All() []adapters.Inbound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]adapters.Inbound(nil), r.ins...)
}
