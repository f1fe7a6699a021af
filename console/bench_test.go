package console_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboardhq/switchboard/api"
	"github.com/switchboardhq/switchboard/envelope"
	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
	"github.com/switchboardhq/switchboard/store/sqlite"
)

// preload fills the SQLite store in dir, as the gateway will open it, with
// sessions sessions and one more session of records records, whose id it
// returns. It writes through the store directly, from several goroutines
// so that the store's group commit batches the writes.
func preload(b *testing.B, dir string, sessions, records int) string {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "switchboard.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	err = parallel(sessions, func(i int) error {
		md := map[string]string{"team": fmt.Sprintf("team-%d", i%17), "n": fmt.Sprint(i)}
		_, _, err := st.CreateSession(ctx, api.NewSessionID(), md)
		return err
	})
	if err != nil {
		b.Fatalf("preload sessions: %v", err)
	}
	big := api.NewSessionID()
	if _, _, err := st.CreateSession(ctx, big, map[string]string{"long": "yes"}); err != nil {
		b.Fatal(err)
	}
	if err := fill(ctx, st, big, records); err != nil {
		b.Fatalf("preload records: %v", err)
	}
	b.Logf("preloaded %d sessions and a %d-record session in %v", sessions, records, time.Since(start).Round(time.Millisecond))
	return big
}

// fill appends n messages to session id, written through st directly.
// Appends to one session are ordered by the store; several in flight still
// share commits.
func fill(ctx context.Context, st store.Log, id string, n int) error {
	return parallel(n, func(i int) error {
		text := fmt.Sprintf("Record %d: please **look** at `step %d` and report back.\n\n- one\n- two", i, i)
		_, err := st.Append(ctx, store.AppendRequest{SessionID: id, Direction: store.Inbound, Envelope: envelope.Envelope{
			ID: fmt.Sprintf("client:fill-%d", i), Source: envelope.SourceClient, Kind: envelope.KindMessage,
			Actor: envelope.Actor{ID: "client:fill", Type: "user"}, Text: text, TS: time.Now().UTC(),
		}})
		return err
	})
}

// parallel calls do(1) … do(n) from 32 goroutines, so that the store's
// group commit batches the writes, and returns the first error.
func parallel(n int, do func(i int) error) error {
	const workers = 32
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				if err := do(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// BenchmarkFirstRender measures, in headless Chromium, the time from
// navigating to a console page (a full page load: HTML, modules, session
// check, API calls) to its first render with data:
//
//   - sessions: the sessions list's first page of 50 rows;
//   - timeline: a long session's newest 100 records;
//
// against a SQLite store of 100,000 sessions and one 10,000-record session
// (large), and, for comparison, of 100 sessions and one 200-record session
// (small); api-sessions-page and api-timeline-page time the API calls
// behind them, from Go. It skips without Chromium (see testenv.Chromium). Run it with
//
//	go test -run '^$' -bench FirstRender -benchtime 20x ./console/
func BenchmarkFirstRender(b *testing.B) {
	testenv.Chromium(b) // skip before the long preload
	for _, size := range []struct {
		name              string
		sessions, records int
	}{{"large", 100_000, 10_000}, {"small", 100, 200}} {
		b.Run(size.name, func(b *testing.B) {
			benchmarkFirstRender(b, size.sessions, size.records)
		})
	}
}

func benchmarkFirstRender(b *testing.B, sessions, records int) {
	dir := b.TempDir()
	big := preload(b, dir, sessions, records)
	h := newHarness(b, dir)
	t := newTab(b, h)
	t.open("")
	t.login(adminSecret)
	t.do("logged in", chromedp.WaitVisible(chromedp.CSS("#nav")))

	// ns/op is from the start of navigation, as the test sees it, to the
	// render seen by a poll; ms/first-render is the page's own clock
	// (performance.now(), from the navigation's start) at the first poll
	// that saw the render.
	measure := func(b *testing.B, route, ready string) {
		var inPage float64
		for b.Loop() {
			b.StopTimer()
			t.do("blank", chromedp.Navigate("about:blank"))
			b.StartTimer()
			t.open(route)
			t.until("rendered", ready)
			b.StopTimer()
			inPage += eval[float64](t, `window.firstRender`)
			b.StartTimer()
		}
		b.ReportMetric(inPage/float64(b.N), "ms/first-render")
	}
	// The API calls behind the two renders, from Go: what the store's size
	// could change.
	b.Run("api-sessions-page", func(b *testing.B) {
		for b.Loop() {
			if code, _ := h.call("GET", "/v3/sessions?limit=50", adminSecret, nil); code != 200 {
				b.Fatalf("list: %d", code)
			}
		}
	})
	b.Run("api-timeline-page", func(b *testing.B) {
		path := fmt.Sprintf("/v3/sessions/%s/messages?after=%d&limit=100", big, max(0, records-100))
		for b.Loop() {
			if code, _ := h.call("GET", path, adminSecret, nil); code != 200 {
				b.Fatalf("read: %d", code)
			}
		}
	})
	b.Run("sessions", func(b *testing.B) {
		measure(b, "#/sessions", `document.querySelectorAll("#sessions-body tr").length === 50 && (window.firstRender ??= performance.now())`)
	})
	b.Run("timeline", func(b *testing.B) {
		measure(b, "#/sessions/"+big, `document.querySelectorAll("#timeline > li").length === 100 && (window.firstRender ??= performance.now())`)
	})
}
