package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboardhq/switchboard/store/sqlite"
)

// countHandler is a slog.Handler that keeps the messages logged at or
// above a level.
type countHandler struct {
	level slog.Level
	mu    *sync.Mutex
	msgs  *[]string
}

func newCountHandler(level slog.Level) countHandler {
	return countHandler{level: level, mu: &sync.Mutex{}, msgs: new([]string)}
}

func (h countHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.msgs = append(*h.msgs, r.Message)
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// count returns how many messages logged contain substr.
func (h countHandler) count(substr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range *h.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// tinyDisk mounts a tmpfs of size bytes under t's temporary directory,
// unmounted when t ends, or skips t where mounting is not allowed.
func tinyDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root and mount; %v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file at path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return
		}
	}
}

// TestStoreFullAnswers503 fills the disk of a SQLite store for real: steers
// are answered 503 with Retry-After, /readyz reports the store, the failure
// is logged once per interval rather than per request, and once the disk
// has room again the store writes and /readyz is ready.
func TestStoreFullAnswers503(t *testing.T) {
	dir := tinyDisk(t, "4m")
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "switchboard.db"), sqlite.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	// Closed before the unmount (cleanups run last-registered first).
	t.Cleanup(func() { _ = st.Close() })
	logs := newCountHandler(slog.LevelInfo)
	h := newHarnessOn(t, st, func(o *Options) { o.Logger = slog.New(logs) })
	id := h.newSession()
	if w := h.steer(id, "before", ""); w.Code != http.StatusAccepted {
		t.Fatalf("steer with room on the disk: %d %s", w.Code, w.Body)
	}

	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	const requests = 20
	for i := range requests {
		w := h.steer(id, strings.Repeat("x", 8<<10), "")
		if w.Code != http.StatusServiceUnavailable || errorCode(t, w.Body.Bytes()) != codeUnavailable {
			t.Fatalf("steer %d on a full disk: %d %s, want 503 unavailable", i, w.Code, w.Body)
		}
		if ra := w.Header().Get("Retry-After"); ra == "" {
			t.Fatalf("steer %d on a full disk: no Retry-After", i)
		}
		if i == 0 && !strings.Contains(w.Body.String(), "retry") {
			t.Errorf("steer on a full disk: message %s does not say to retry", w.Body)
		}
	}
	const logLine = "the store cannot write"
	if n := logs.count(logLine); n != 1 {
		t.Errorf("%d failed steers logged %d lines about the store, want 1", requests, n)
	}
	w := h.do(req{method: "GET", path: "/readyz"})
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "store cannot write") ||
		!strings.Contains(w.Body.String(), "full") {
		t.Errorf("readyz while the disk is full: %d %s, want 503 naming the store", w.Code, w.Body)
	}
	// Past the interval, the next failure is logged again.
	h.clock.Advance(unavailableLogEvery)
	if w := h.steer(id, "later", ""); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("steer on a full disk: %d %s", w.Code, w.Body)
	}
	if n := logs.count(logLine); n != 2 {
		t.Errorf("after the interval: %d lines about the store, want 2", n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if w := h.steer(id, "after", ""); w.Code != http.StatusAccepted {
		t.Fatalf("steer once the disk has room: %d %s", w.Code, w.Body)
	}
	if w := h.do(req{method: "GET", path: "/readyz"}); w.Code != http.StatusOK {
		t.Errorf("readyz once the store writes again: %d %s", w.Code, w.Body)
	}
	if n := logs.count("the store writes again"); n != 1 {
		t.Errorf("recovery logged %d times, want 1", n)
	}
}

// TestReadyzForgetsOldUnavailableWrites: a write that failed unavailable
// makes /readyz not ready only for unavailableReadyFor, even when no write
// has succeeded since (nothing may have tried).
func TestReadyzForgetsOldUnavailableWrites(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.health.failed(h.clock.Now(), errors.New("disk full"))
	if w := h.do(req{method: "GET", path: "/readyz"}); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz right after a failed write: %d %s", w.Code, w.Body)
	}
	h.clock.Advance(unavailableReadyFor + time.Second)
	if w := h.do(req{method: "GET", path: "/readyz"}); w.Code != http.StatusOK {
		t.Errorf("readyz long after a failed write: %d %s", w.Code, w.Body)
	}
}
