// Package adaptertest is the channel adapters' shared test kit: what their
// tests need beyond the real services of internal/testenv. RunRouter runs
// an adapter behind a real router and store with an exec agent; the stream
// helpers (StreamingAgent, CheckStream, CheckEdits, …) drive and check a
// live reply's round trip. It sits at the top of the dependency graph
// (it imports the router), so only tests import it.
package adaptertest
