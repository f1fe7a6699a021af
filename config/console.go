package config

import "time"

// Console configures the operator console served at /console/.
type Console struct {
	// SessionTTL is how long a login lasts (default 12h, at most 30 days):
	// after it the browser is sent back to the login form.
	SessionTTL Duration `yaml:"session_ttl"`
}

// maxConsoleSessionTTL bounds Console.SessionTTL.
const maxConsoleSessionTTL = 30 * 24 * time.Hour

func (c *Console) defaults() {
	if c.SessionTTL == 0 {
		c.SessionTTL = Duration(12 * time.Hour)
	}
}

func (c *Console) validate() []error {
	if c.SessionTTL < 0 || c.SessionTTL.D() > maxConsoleSessionTTL {
		return []error{fieldErr("console.session_ttl", "must be between 1s and 720h (30 days)")}
	}
	return nil
}
