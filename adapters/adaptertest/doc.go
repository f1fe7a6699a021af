// Package adaptertest is the channel adapters' shared test kit: what their
// tests need beyond the real services of internal/testenv. Run is the
// contract every channel adapter passes (configuration errors name their
// key, forged webhooks are refused, a duplicate is stored once, the bot's
// own echo is dropped, a 429 is a back-off, health is reported), each
// adapter supplying its fake as a Fake and switching off with Features
// what its channel cannot do. RunRouter runs an adapter behind a real
// router and store with an exec agent; the stream helpers (StreamingAgent,
// CheckStream, CheckEdits, …) drive and check a live reply's round trip.
// The smaller pieces every adapter's tests share: Recorder (a recording
// Ingress), Eventually, GoldenJSON and CheckTidy with the -update flag
// (Update), MemoryKV and FailingKV (store.KV doubles). It sits at the top of the dependency graph (it imports the router), so
// only tests import it.
package adaptertest
