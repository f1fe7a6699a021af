// Package storetest is the conformance suite that every store backend must
// pass. A backend's test calls Run with a function that makes a fresh, empty
// database per subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Backend {
//			path := filepath.Join(t.TempDir(), "switchboard.db")
//			return func() (store.Store, error) { return sqlite.Open(t.Context(), path, sqlite.Options{}) }
//		})
//	}
//
// The suite checks the contracts written in package store: sessions, the
// ordered idempotent log (also under concurrency), Raw kept byte for byte,
// wake-ups, subscriptions, durability across Close and reopen, and tokens.
// It also checks the router's storage: conversation bindings (atomic under
// concurrency), per-consumer cursors with leases, and the delivery outbox
// with its per-conversation order and leases, and the adapters' key-value
// state. Input checks that every backend refuses, the same way, what one of
// them could not store (store/check.go).
package storetest

import (
	"testing"

	"github.com/switchboardhq/switchboard/store"
)

// Backend opens a store on one underlying database. Every call opens the same
// database: after the previous store was closed (the suite reopens to check
// durability) or, when Run is given Shared, while another store on it is
// still open.
type Backend func() (store.Store, error)

// Option adjusts Run.
type Option func(*config)

type config struct {
	shared bool
}

// Shared declares that two stores may be open on one database at once (as
// two processes would), which enables the subtests that append through both.
func Shared() Option {
	return func(c *config) { c.shared = true }
}

// Run runs the conformance suite. newBackend is called once per subtest and
// must return a Backend on a fresh, empty database that lives until t ends.
// The stores the suite opens are closed by the suite.
func Run(t *testing.T, newBackend func(t *testing.T) Backend, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	s := suite{newBackend: newBackend}

	t.Run("Sessions", func(t *testing.T) {
		t.Run("CreateAndGet", s.testCreateAndGet)
		t.Run("CreateExistingReturnsOriginal", s.testCreateExisting)
		t.Run("UnknownIsNotFound", s.testSessionNotFound)
		t.Run("ListPagination", s.testListPagination)
		t.Run("SetState", s.testSetState)
	})
	t.Run("Log", func(t *testing.T) {
		t.Run("AppendAndReadInOrder", s.testAppendAndRead)
		t.Run("ReadAfterAndLimit", s.testReadAfterLimit)
		t.Run("Lookup", s.testLookup)
		t.Run("UnknownSessionIsNotFound", s.testLogNotFound)
		t.Run("EnvelopeRoundTrip", s.testEnvelopeRoundTrip)
		t.Run("RawByteForByte", s.testRawByteForByte)
		t.Run("Wake", s.testWake)
		t.Run("SessionsAreSeparate", s.testSessionsSeparate)
	})
	t.Run("Idempotency", func(t *testing.T) {
		t.Run("DuplicateReturnsOriginal", s.testDuplicate)
		t.Run("ConflictingRequest", s.testConflict)
		t.Run("SameIDInOtherSession", s.testSameIDOtherSession)
		t.Run("DuplicateDoesNotWake", s.testDuplicateDoesNotWake)
	})
	t.Run("Concurrency", func(t *testing.T) {
		t.Run("SameKey100", s.testSameKeyConcurrent)
		t.Run("ManySessionsContiguous", s.testManySessions)
		t.Run("RepeatedAndConflictingKeys", s.testRepeatedKeysConcurrent)
	})
	t.Run("Subscribe", func(t *testing.T) {
		t.Run("SignalAfterAppend", s.testSubscribe)
		t.Run("RuntimeWork", s.testSubscribeRuntimeWork)
	})
	t.Run("Durability", func(t *testing.T) {
		t.Run("ReopenKeepsEverything", s.testReopen)
		t.Run("AppendAfterClose", s.testAppendAfterClose)
		t.Run("ReadAfterClose", s.testReadAfterClose)
	})
	t.Run("Tokens", func(t *testing.T) {
		t.Run("CreateLookupCount", s.testTokens)
		t.Run("UnknownIsNotFound", s.testTokenNotFound)
	})
	t.Run("Ping", s.testPing)
	t.Run("Shared", func(t *testing.T) {
		if !cfg.shared {
			t.Skip("the backend does not support two stores on one database")
		}
		t.Run("TwoStoresOneSession", s.testTwoStores)
		t.Run("ReadWhatTheOtherReads", s.testReadWhatTheOtherReads)
	})
	t.Run("Router", func(t *testing.T) { s.runRouter(t, cfg) })
	t.Run("Webhooks", s.runWebhooks)
	t.Run("SessionEvents", func(t *testing.T) { s.runEvents(t, cfg) })
	t.Run("KV", func(t *testing.T) { s.runKV(t, cfg) })
	t.Run("FanOut", s.runFanOut)
	t.Run("Input", s.runInput)
}

type suite struct {
	newBackend func(t *testing.T) Backend
}
