package httpx

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"  ", 0, false},
		{"junk", 0, false},
		{"1.5", 0, false},
		{"-3", 0, false},
		{"-99999999999999999999", 0, false},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 120 ", 2 * time.Minute, true},
		{"+5", 5 * time.Second, true},
		{"99999999999", math.MaxInt64, true},
		{"99999999999999999999", math.MaxInt64, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), -time.Minute, true},
		{now.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second, true},
		{now.Add(2 * time.Hour).Format(time.ANSIC), 2 * time.Hour, true},
	} {
		if got, ok := RetryAfter(c.v, now); got != c.want || ok != c.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", c.v, got, ok, c.want, c.ok)
		}
	}
}
