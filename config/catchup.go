package config

import (
	"slices"
	"strings"
	"time"
)

// CatchUp configures the catch-up after downtime: on start, after a
// channel reconnects and on demand, each channel that can (Slack, GitHub,
// Jira) fetches what was written while the gateway was not listening.
type CatchUp struct {
	// Window bounds it (default 24h): nothing older is fetched, and a
	// conversation idle for longer is not looked at, so agents never run
	// on old history.
	Window Duration `yaml:"window"`
	// OnStart runs every channel's catch-up when the gateway starts
	// (default true).
	OnStart *bool `yaml:"on_start"`
}

func (c *CatchUp) defaults() {
	if c.Window == 0 {
		c.Window = Duration(24 * time.Hour)
	}
	if c.OnStart == nil {
		on := true
		c.OnStart = &on
	}
}

func (c *CatchUp) validate() []error {
	if c.Window < 0 {
		return []error{fieldErr("catch_up.window", "must not be negative")}
	}
	return nil
}

// Places returns the places the routes name explicitly for channel source:
// the match.where entries without glob characters of the routes that
// match that source (or any source), sorted, each once.
func (c *Config) Places(source string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range c.Routes {
		if r.Match.Source != "" && r.Match.Source != source {
			continue
		}
		for _, w := range r.Match.Where {
			if w == "" || strings.ContainsAny(w, `*?[\`) || seen[w] {
				continue
			}
			seen[w] = true
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}
