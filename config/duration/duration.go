// Package duration holds Duration, a time.Duration that configuration files
// and JSON write as Go does ("30s", "1h30m"). It imports nothing of
// Switchboard, so that the adapters' configurations can use it without
// importing the whole config package.
package duration

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written as "30s" in YAML and JSON.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration like 30s or 5m, got %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
