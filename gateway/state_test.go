package gateway

import "testing"

// TestAdaptersGetTheStore checks that the gateway hands adapters its store
// for their durable state: the email adapter refuses to be built without it.
func TestAdaptersGetTheStore(t *testing.T) {
	g := newGateway(t, `
adapters:
  email:
    address: bot@example.com
    imap: {addr: "127.0.0.1:1", username: bot, password: pw}
    smtp: {addr: "127.0.0.1:1"}
`)
	if len(g.adapters) != 1 || g.adapters[0].name != "email" {
		t.Fatalf("adapters %v, want the email adapter", g.adapters)
	}
}
