package router

import (
	"testing"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/envelope"
)

func routeFromYAML(t *testing.T, yml string) *config.Route {
	t.Helper()
	c, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return &c.Routes[0]
}

func TestMatch(t *testing.T) {
	gh := routeFromYAML(t, `
routes:
  - name: gh
    match: {source: github, where: ["acme/*"]}
`)
	slack := routeFromYAML(t, `
routes:
  - name: sl
    match: {source: slack, where: ["C1*"], direct: false, senders: ["U9*"], require_addressed_when_bound: true}
`)
	anyBots := routeFromYAML(t, `
routes:
  - name: any
    match: {bots: true, addressed: false}
`)
	in := func(src string, f adapters.Facts) *adapters.Inbound {
		return &adapters.Inbound{Envelope: envelope.Envelope{Source: src}, Facts: f}
	}
	for _, tc := range []struct {
		name  string
		rt    *config.Route
		in    *adapters.Inbound
		bound bool
		want  bool
		why   string
	}{
		{"addressed in a watched repo", gh, in("github", adapters.Facts{Where: "acme/widgets", Addressed: true}), false, true, ""},
		{"glob is case-insensitive", gh, in("github", adapters.Facts{Where: "ACME/Widgets", Addressed: true}), false, true, ""},
		{"other source", gh, in("slack", adapters.Facts{Where: "acme/widgets", Addressed: true}), false, false, "source"},
		{"other repo", gh, in("github", adapters.Facts{Where: "evil/widgets", Addressed: true}), false, false, "where"},
		{"new conversation needs addressing", gh, in("github", adapters.Facts{Where: "acme/widgets"}), false, false, "not addressed"},
		{"bound conversation needs none", gh, in("github", adapters.Facts{Where: "acme/widgets"}), true, true, ""},
		{"bots dropped by default", gh, in("github", adapters.Facts{Where: "acme/x", Addressed: true, FromBot: true}), false, false, "from a bot"},
		{"bots allowed when the route says so", anyBots, in("github", adapters.Facts{FromBot: true}), false, true, ""},
		{"direct messages can be turned off", slack, in("slack", adapters.Facts{Where: "C123", Direct: true, Sender: "U9"}), false, false, "direct messages off"},
		{"sender allow-list", slack, in("slack", adapters.Facts{Where: "C123", Addressed: true, Sender: "U1"}), false, false, "sender"},
		{"sender allowed", slack, in("slack", adapters.Facts{Where: "C123", Addressed: true, Sender: "U99"}), false, true, ""},
		{"addressing required even when bound", slack, in("slack", adapters.Facts{Where: "C123", Sender: "U99"}), true, false, "not addressed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := match(tc.rt, tc.in, tc.bound)
			if ok != tc.want || why != tc.why {
				t.Fatalf("match = %v (%q), want %v (%q)", ok, why, tc.want, tc.why)
			}
		})
	}
}

func TestAnyGlobStarMatchesSlashes(t *testing.T) {
	if !anyGlob([]string{"*"}, "acme/widgets") {
		t.Fatal(`"*" should match everything`)
	}
	if anyGlob([]string{"acme/*"}, "acme") {
		t.Fatal(`"acme/*" matched "acme"`)
	}
}
