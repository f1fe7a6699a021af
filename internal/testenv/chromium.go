package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// ChromiumEnv names a Chromium (or Chrome) binary for browser tests,
// overriding the search of Chromium.
const ChromiumEnv = "SWITCHBOARD_CHROMIUM"

// chromiumNames are the binaries Chromium looks for on PATH, in order.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Chromium returns the path of a headless-capable Chromium for t: the
// binary named by ChromiumEnv, else the first of chromiumNames on PATH. It
// calls Missing when there is none (apt-get install chromium).
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(ChromiumEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			Missing(t, "%s names %s, which is not there: %v", ChromiumEnv, p, err)
			return ""
		}
		return p
	}
	for _, name := range chromiumNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Missing(t, "Chromium is not installed (apt-get install chromium, or point %s at a Chrome binary)", ChromiumEnv)
	return ""
}
