package main

import (
	"strings"
	"testing"
	"time"
)

func TestAllLoopback(t *testing.T) {
	for _, c := range []struct {
		urls []string
		want bool
	}{
		{[]string{"http://127.0.0.1:8080"}, true},
		{[]string{"http://localhost:8080", "http://[::1]:8081", "http://127.0.0.2"}, true},
		{[]string{"http://127.0.0.1:8080", "http://10.0.0.7:8080"}, false},
		{[]string{"https://gateway.example.com"}, false},
		{[]string{"http://%zz"}, false},
		{nil, false},
	} {
		if got := allLoopback(c.urls); got != c.want {
			t.Errorf("allLoopback(%q) = %v, want %v", c.urls, got, c.want)
		}
	}
}

// TestPerMessageMachine: the machine's busy time less the gateway's and the
// bench's is what went elsewhere, said only when the gateways run on the
// bench's machine; a machine the platform cannot read adds no line.
func TestPerMessageMachine(t *testing.T) {
	before := storeCost{commits: 10, rows: 100, processCPU: 1}
	after := storeCost{commits: 20, rows: 300, processCPU: 1.6} // 600ms in the gateway
	local := hostUse{bench: 400 * time.Millisecond, busy: 1800 * time.Millisecond, share: 0.9, cpus: 2, local: true}
	got := perMessage(before, after, local, 1000, "round trip")
	for _, want := range []string{
		"store:      0.01 commits, 0.2 rows written per round trip (1000)\n",
		"cpu:        600µs in the gateway, 400µs in the bench per round trip\n",
		"machine:    90% of 2 processors busy, 800µs per round trip in neither (a database here",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("perMessage printed\n%s\nwant %q", got, want)
		}
	}
	remote := local
	remote.local = false
	got = perMessage(before, after, remote, 1000, "round trip")
	if want := "machine:    90% of 2 processors busy\n"; !strings.Contains(got, want) {
		t.Errorf("gateways elsewhere: perMessage printed\n%s\nwant %q", got, want)
	}
	unknown := local
	unknown.cpus, unknown.busy, unknown.share = 0, 0, 0
	if got := perMessage(before, after, unknown, 1000, "round trip"); strings.Contains(got, "machine:") {
		t.Errorf("an unread machine: perMessage printed\n%s", got)
	}
}
