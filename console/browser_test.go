package console_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/switchboardhq/switchboard/internal/testenv"
)

// UpdateScreenshotsEnv, set to 1, makes the browser tests write their
// screenshots to docs/console/ (the README shows them).
const UpdateScreenshotsEnv = "SWITCHBOARD_UPDATE_SCREENSHOTS"

// tab is one headless Chromium tab on a harness's gateway. Uncaught
// exceptions and security (Content-Security-Policy) messages of the page
// fail the test when it ends.
type tab struct {
	t   testing.TB
	h   *harness
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

func newTab(t testing.TB, h *harness) *tab {
	t.Helper()
	exe := testenv.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1280, 860))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	b := &tab{t: t, h: h, ctx: ctx}
	// Start the browser, then watch the page's errors until the tab closes.
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("log.enable: %v", err)
	}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	entries := chromedp.Events(ctx, cdplog.EntryAdded)
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problem("uncaught exception: " + msg)
		}
	})
	wg.Go(func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if e := ev.Entry; e.Source == "security" || e.Source == "javascript" {
				b.problem(fmt.Sprintf("%s %s: %s", e.Source, e.Level, e.Text))
			}
		}
	})
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		wg.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Errorf("page: %s", p)
		}
	})
	return b
}

func (b *tab) problem(s string) {
	b.mu.Lock()
	b.problems = append(b.problems, s)
	b.mu.Unlock()
}

// do runs steps, failing the test with what when one fails.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// until waits for the JavaScript expression to be truthy.
func (b *tab) until(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second)))
	for try := 0; try < 3 && err != nil && strings.Contains(err.Error(), "Cannot find context"); try++ {
		// The poll began in the document a navigation was replacing.
		time.Sleep(50 * time.Millisecond)
		_, err = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second)))
	}
	if err != nil {
		page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		b.t.Fatalf("%s: %v; the page shows:\n%s", what, err, page)
	}
}

// eval returns the value of a JavaScript expression (awaited when a promise).
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// open shows a console page (a "#/…" route).
func (b *tab) open(route string) {
	b.t.Helper()
	b.do("open "+route, chromedp.Navigate(b.h.url+"/console/"+route))
}

// screenshot saves the viewport as docs/console/<name>.png when
// UpdateScreenshotsEnv is 1, and only when it changed.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	if os.Getenv(UpdateScreenshotsEnv) != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	// Let the page settle (fonts, a chart's first samples).
	time.Sleep(300 * time.Millisecond)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join("..", "docs", "console", name+".png")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, png) {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// login types secret into the login form and submits it.
func (b *tab) login(secret string) {
	b.t.Helper()
	b.do("log in",
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#token").value = ""`),
		chromedp.SendKeys(chromedp.CSS("#token"), secret),
		chromedp.Click(chromedp.CSS("#login-submit")))
}

// jsString quotes s for JavaScript.
func jsString(s string) string { return fmt.Sprintf("%q", s) }

// TestBrowserLoginIsRefusedForBadAndAgentTokens: the login form reports
// an unknown token and an agent token, and stays.
func TestBrowserLoginIsRefusedForBadAndAgentTokens(t *testing.T) {
	h := newHarness(t, "")
	b := newTab(t, h)
	b.open("")
	b.login("sb_not-a-token-0123456789abcdef0123")
	b.until("bad token refused", `document.querySelector("#login-error").textContent.includes("not valid")`)
	b.screenshot("login")
	b.login(agentSecret)
	b.until("agent token refused", `document.querySelector("#login-error").textContent.includes("cannot log in")`)
	if eval[bool](b, `document.querySelector("#nav").hidden`) != true {
		t.Fatal("the navigation shows after a refused login")
	}
}

// TestBrowserConsole walks the console as an operator: log in, see a
// session made through the API, watch steers arrive live, steer from the
// page, resume a paused conversation, retry dead deliveries until a
// receiver takes them, rotate a webhook secret, look at channels and
// numbers, see a request without the CSRF token refused, and log out.
func TestBrowserConsole(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	for i, team := range []string{"red", "green", "ops", "docs", "infra", "support"} {
		h.must(201, "POST", "/v3/sessions", map[string]any{"metadata": map[string]string{"team": team, "ticket": fmt.Sprint(4100 + i)}})
	}
	sess := h.must(201, "POST", "/v3/sessions", map[string]any{"metadata": map[string]string{"team": "blue"}})
	id := str(sess, "id")

	b := newTab(t, h)
	b.open("")
	b.login(adminSecret)
	b.do("logged in", chromedp.WaitVisible(chromedp.CSS("#nav")))

	// The session made through the API is listed.
	b.until("session listed", `document.querySelector('tr[data-id="`+id+`"]') !== null`)
	b.screenshot("sessions")

	// Its timeline follows the log live.
	b.do("open the session", chromedp.Click(chromedp.CSS(`tr[data-id="`+id+`"] a`)))
	b.until("stream open", `document.querySelector("#live") && document.querySelector("#live").textContent === "live"`)
	h.must(202, "POST", "/v3/sessions/"+id+"/messages", map[string]any{"text": "Please **stop** and run `go test`"})
	b.until("steer arrives live", `[...document.querySelectorAll("#timeline li strong")].some((e) => e.textContent === "stop")`)
	h.must(202, "POST", "/v3/sessions/"+id+"/messages", map[string]any{"text": `<img src=x onerror="window.pwned=1"> [x](javascript:alert(1))`})
	b.until("second steer", `document.querySelector("#timeline").textContent.includes("onerror")`)
	if n := eval[int](b, `document.querySelectorAll('#timeline img, #timeline a[href^="javascript"]').length`); n != 0 {
		t.Fatalf("markup from a message became %d elements", n)
	}
	// Steer from the page.
	b.do("steer from the page",
		chromedp.SendKeys(chromedp.CSS("#steer-text"), "from the _console_"),
		chromedp.Click(chromedp.CSS(`#steer button[type="submit"]`)))
	b.until("own steer arrives", `[...document.querySelectorAll("#timeline li em")].some((e) => e.textContent === "console")`)
	recs := h.must(200, "GET", "/v3/sessions/"+id+"/messages", nil)["messages"].([]any)
	var env map[string]any
	for _, r := range recs {
		if e := r.(map[string]any)["envelope"].(map[string]any); e["text"] == "from the _console_" {
			env = e
		}
	}
	if env == nil {
		t.Fatalf("the console's steer is not in the log: %v", recs)
	}
	if a := env["actor"].(map[string]any)["id"]; a != "client:admin" || !strings.HasPrefix(str(env, "id"), "client:console-") {
		t.Fatalf("console steer: actor %v, id %v", a, env["id"])
	}
	h.must(202, "POST", "/v3/sessions/"+id+"/outputs", map[string]any{"text": "Stopped. `go test ./...` now passes:\n\n```\nok  \tgithub.com/acme/app\t0.412s\n```\n\n- fixed the flaky **retry** test\n- see [the run](https://ci.example.com/runs/42)"})
	b.until("output arrives live", `document.querySelector("#timeline > li.outbound pre") !== null`)
	h.must(202, "POST", "/v3/sessions/"+id+"/outputs", map[string]any{"text": "Done for now.", "state": "idle"})
	b.until("state follows", `document.querySelector("#session-state").textContent === "idle"`)
	b.do("raw toggle", chromedp.Click(chromedp.CSS("#raw-toggle")))
	b.until("raw shown", `document.querySelectorAll("#timeline pre.raw").length === document.querySelectorAll("#timeline > li").length`)
	b.do("raw toggle off", chromedp.Click(chromedp.CSS("#raw-toggle")))
	b.screenshot("timeline")

	// A paused conversation is resumed from its panel.
	bind := h.must(201, "POST", "/v3/sessions/"+id+"/conversations", map[string]string{"source": "github", "ref": "acme/app#7"})
	bid := str(bind, "id")
	if _, err := h.gw.Store().PauseBinding(ctx, bid, time.Now().Add(time.Hour), "loop breaker: 20 outputs in a minute"); err != nil {
		t.Fatal(err)
	}
	b.do("reload", chromedp.Reload())
	b.until("paused conversation", `document.querySelector('.conversation[data-id="`+bid+`"] .resume') !== null`)
	if href := eval[string](b, `document.querySelector('.conversation[data-id="`+bid+`"] a').href`); href != "https://github.com/acme/app/issues/7" {
		t.Fatalf("conversation link %q", href)
	}
	b.screenshot("conversation-paused")
	b.do("resume", chromedp.Click(chromedp.CSS(`.conversation[data-id="`+bid+`"] .resume`)))
	b.until("resumed", `document.querySelector('.conversation[data-id="`+bid+`"]') !== null && document.querySelector('.conversation[data-id="`+bid+`"] .paused') === null`)
	for _, c := range h.must(200, "GET", "/v3/sessions/"+id+"/conversations", nil)["conversations"].([]any) {
		if p := str(c.(map[string]any), "paused_until"); p != "" {
			t.Fatalf("still paused until %s", p)
		}
	}

	// The session is found by its conversation.
	b.open("#/sessions")
	b.do("find by conversation",
		chromedp.WaitVisible(chromedp.CSS("#find-ref")),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#find-source").value = "github"`),
		chromedp.SendKeys(chromedp.CSS("#find-ref"), "acme/app#7"),
		chromedp.Click(chromedp.CSS(`#find-conversation button`)))
	b.until("found", `location.hash === "#/sessions/`+id+`"`)

	// The list is filtered on the server by channel.
	b.open("#/sessions")
	pick := func(source string) {
		b.do("channel "+source, chromedp.Evaluate[chromedp.Void](
			`(() => { const s = document.querySelector("#source-filter"); s.value = "`+source+`"; s.dispatchEvent(new Event("change")); })()`))
	}
	pick("github")
	b.until("the github session listed with its conversation", `(document.querySelector('tr[data-id="`+id+`"] td.conversations')?.textContent || "").includes("github acme/app#7")`)
	pick("slack")
	b.until("not among slack sessions", `document.querySelector('tr[data-id="`+id+`"]') === null && /page 1/.test(document.querySelector("#sessions-status").textContent)`)

	// Dead deliveries are retried until the receiver takes them: a
	// destination that fails (and the outbox gives up at once, with
	// max_attempts 1) gets the events of a new session.
	rc := &receiver{}
	recvSrv := httptest.NewServer(rc)
	t.Cleanup(recvSrv.Close)
	hook := h.must(201, "POST", "/v3/webhooks", map[string]any{"url": recvSrv.URL + "/hook", "description": "test receiver"})
	hookID, firstSecret := str(hook, "id"), str(hook, "secret")
	hooked := str(h.must(201, "POST", "/v3/sessions", map[string]any{"metadata": map[string]string{"team": "hooks"}}), "id")
	count := func(status string) int {
		_, m := h.call("GET", "/v3/deliveries?status="+status, adminSecret, nil)
		l, _ := m["deliveries"].([]any)
		return len(l)
	}
	// The session.created event dies, then the delivery.failed notice it
	// appends to the log: wait until nothing is in flight.
	waitFor(t, 15*time.Second, "dead deliveries, none pending", func() bool {
		if count("dead") == 0 || count("pending") != 0 {
			return false
		}
		time.Sleep(300 * time.Millisecond)
		return count("pending") == 0
	})
	b.open("#/deliveries")
	b.until("dead deliveries listed", `document.querySelectorAll("#deliveries-body button.retry").length > 0`)
	b.screenshot("deliveries")
	rc.ok.Store(true)
	b.do("retry all dead", chromedp.Click(chromedp.CSS("#retry-all")))
	waitFor(t, 15*time.Second, "every retried delivery delivered", func() bool {
		return count("dead") == 0 && count("pending") == 0 && count("delivered") > 0 && rc.got.Load() > 0
	})
	b.do("show delivered", chromedp.Steps(chromedp.Evaluate[chromedp.Void](
		`(() => { const s = document.querySelector("#delivery-status"); s.value = "delivered"; s.dispatchEvent(new Event("change")); })()`)))
	b.until("delivered shown", `document.querySelector("#deliveries-body .status-delivered") !== null`)
	// A retried delivery shows both its attempts: the failure, then the
	// one that delivered it.
	b.do("attempts of a retried delivery", chromedp.Evaluate[chromedp.Void](
		`document.querySelector("#deliveries-body tr:has(.status-delivered) button.show-attempts").click()`))
	b.until("two attempts listed, the older failed", `(() => {
		const rows = [...document.querySelectorAll(".attempt-list tr[data-attempt]")];
		return rows.length >= 2 && rows[rows.length - 1].textContent.includes("failed");
	})()`)
	b.screenshot("delivery-attempts")
	// One session's deliveries, as the session page links them.
	b.open("#/deliveries?session=" + hooked + "&status=any")
	b.until("only the session's deliveries", `(() => {
		const cells = [...document.querySelectorAll("#deliveries-body tr[data-id] td:nth-child(2) a")];
		return cells.length > 0 && cells.every((a) => a.textContent === "`+hooked+`");
	})()`)

	// A webhook's secret is rotated and shown once.
	b.open("#/webhooks")
	b.until("webhook listed", `document.querySelector('tr[data-id="`+hookID+`"] button.rotate') !== null`)
	b.do("rotate", chromedp.Click(chromedp.CSS(`tr[data-id="`+hookID+`"] button.rotate`)))
	b.until("new secret shown", `(document.querySelector("#secret")?.textContent || "").startsWith("whsec_")`)
	if s := eval[string](b, `document.querySelector("#secret").textContent`); s == firstSecret {
		t.Fatal("rotation showed the old secret")
	}
	// Disabled and enabled again.
	b.do("disable", chromedp.Click(chromedp.CSS(`tr[data-id="`+hookID+`"] button.toggle`)))
	b.until("disabled", `document.querySelector('tr[data-id="`+hookID+`"] button.toggle')?.textContent === "Enable"`)
	if d, _ := h.must(200, "GET", "/v3/webhooks/"+hookID, nil)["disabled"].(bool); !d {
		t.Fatal("the destination is not disabled")
	}
	b.do("enable", chromedp.Click(chromedp.CSS(`tr[data-id="`+hookID+`"] button.toggle`)))
	b.until("enabled", `document.querySelector('tr[data-id="`+hookID+`"] button.toggle')?.textContent === "Disable"`)
	// A destination added from the page shows its secret once.
	b.do("add a destination",
		chromedp.SendKeys(chromedp.CSS("#webhook-url"), recvSrv.URL+"/second"),
		chromedp.SendKeys(chromedp.CSS("#webhook-description"), "second"),
		chromedp.Click(chromedp.CSS(`#webhook-create button[type="submit"]`)))
	b.until("second destination", `document.querySelectorAll("#webhooks-body tr").length === 2 && (document.querySelector("#secret")?.textContent || "").startsWith("whsec_")`)
	b.do("deliveries of the destination", chromedp.Click(chromedp.CSS(`tr[data-id="`+hookID+`"] button.attempts`)))
	b.do("replay since 2020",
		chromedp.WaitVisible(chromedp.CSS("#replay-since")),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#replay-since").value = "2020-01-01T00:00"`),
		chromedp.Click(chromedp.CSS(`#webhook-detail form button[type="submit"]`)))
	b.until("replayed", `/^Enqueued [1-9]/.test(document.querySelector("#flash").textContent)`)
	b.until("attempts listed", `document.querySelectorAll("#webhook-detail tbody tr").length > 0`)
	b.screenshot("webhooks")

	b.open("#/channels")
	b.until("readiness shown", `document.querySelector("#ready-status")?.textContent === "ready"`)

	b.open("#/numbers")
	b.until("charts drawn", `document.querySelectorAll("#charts polyline").length >= 9`)
	// Some traffic over a few samples (every 2s) gives the rates a shape.
	for i := range 50 {
		h.must(202, "POST", "/v3/sessions/"+id+"/messages", map[string]any{"text": fmt.Sprintf("load %d", i)})
		time.Sleep(time.Duration(20+i*3) * time.Millisecond)
	}
	b.until("a request rate", `Number(document.querySelector('.chart[data-title="HTTP requests /s"] .value').textContent) > 0`)
	b.screenshot("numbers")

	// The page's cookie without the CSRF header is refused.
	status := eval[string](b, `fetch("/v3/sessions", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"})
		.then(async (r) => r.status + " " + (await r.json()).error.code)`)
	if status != "403 csrf_token_invalid" {
		t.Fatalf("POST without CSRF from the page: %s", status)
	}
	if eval[bool](b, `document.cookie.includes("switchboard_console")`) {
		t.Fatal("the session cookie is readable from JavaScript")
	}

	b.do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.do("reload", chromedp.Reload())
	b.do("still logged out", chromedp.WaitVisible(chromedp.CSS("#token")))
}

// TestBrowserModules checks the console's small parsers in the browser:
// Markdown renders only its subset and never turns text into markup,
// Prometheus text parses, and conversation refs link where they live.
func TestBrowserModules(t *testing.T) {
	h := newHarness(t, "")
	b := newTab(t, h)
	b.open("")
	b.do("page loaded", chromedp.WaitVisible(chromedp.CSS("#token")))
	for _, tc := range []struct{ in, want string }{
		{"**b** and *e* and ~~s~~", `<p><strong>b</strong> and <em>e</em> and <del>s</del></p>`},
		{"<script>alert(1)</script>", `<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>`},
		{`<img src=x onerror="alert(1)">`, `<p>&lt;img src=x onerror="alert(1)"&gt;</p>`},
		{"[x](javascript:alert(1))", `<p>[x](javascript:alert(1))</p>`},
		{"[ok](https://example.com/a?b=1&c=2)", `<p><a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow" target="_blank">ok</a></p>`},
		{"see https://example.com/x.", `<p>see <a href="https://example.com/x" rel="noopener noreferrer nofollow" target="_blank">https://example.com/x</a>.</p>`},
		{"[https://a.example](https://b.example)", `<p><a href="https://b.example" rel="noopener noreferrer nofollow" target="_blank">https://a.example</a></p>`},
		{"```\n<b>x</b>\n```", `<pre><code>&lt;b&gt;x&lt;/b&gt;</code></pre>`},
		{"- a\n- **b**", `<ul><li>a</li><li><strong>b</strong></li></ul>`},
		{"1. one\n2. two", `<ol><li>one</li><li>two</li></ol>`},
		{"snake_case_name", `<p>snake_case_name</p>`},
		{"`<i>`", `<p><code>&lt;i&gt;</code></p>`},
		{"# Title", `<h3>Title</h3>`},
		{"> quoted", `<blockquote><div class="md"><p>quoted</p></div></blockquote>`},
		{"line one\nline two\n\nnext", `<p>line one<br>line two</p><p>next</p>`},
	} {
		got := eval[string](b, `import("/console/markdown.js").then((m) => m.render(`+jsString(tc.in)+`).innerHTML)`)
		if got != tc.want {
			t.Errorf("markdown %q:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}

	if got := eval[string](b, `import("/console/sessions.js").then((m) => m.sinceCursor(0x01a249c8ad1b))`); got != "ses_01a249c8ad1b" {
		t.Errorf("sinceCursor = %q", got)
	}

	got := eval[string](b, `import("/console/numbers.js").then((m) => JSON.stringify(m.parse(
		"# HELP foo_total Foo.\n# TYPE foo_total counter\nfoo_total{a=\"1\",b=\"x\\\"y\"} 3\nbar 2.5e3\n\n")))`)
	if want := `[{"name":"foo_total","labels":{"a":"1","b":"x\"y"},"value":3},{"name":"bar","labels":{},"value":2500}]`; got != want {
		t.Errorf("metrics parse:\n got %s\nwant %s", got, want)
	}

	for _, tc := range []struct{ source, ref, want string }{
		{"slack", "T01/C02/1700000000.000100", "https://app.slack.com/client/T01/C02/thread/C02-1700000000.000100"},
		{"github", "acme/app#7", "https://github.com/acme/app/issues/7"},
		{"github", "acme/app#7/review-thread/99", "https://github.com/acme/app/pull/7#discussion_r99"},
		{"jira", "acme.atlassian.net/OPS-12", "https://acme.atlassian.net/browse/OPS-12"},
		{"email", "<abc@example.com>", ""},
		{"github", "javascript:alert(1)#1", ""},
	} {
		got := eval[string](b, `import("/console/links.js").then((m) => m.conversationURL({source: `+jsString(tc.source)+`, ref: `+jsString(tc.ref)+`}))`)
		if got != tc.want {
			t.Errorf("link %s %s: %q, want %q", tc.source, tc.ref, got, tc.want)
		}
	}
}

// TestBrowserSteerViewAndTimelinePages: a steer token is offered no admin
// pages; a long timeline shows its newest page and loads earlier ones on
// request; when the session ends elsewhere the page goes back to the login
// form.
func TestBrowserSteerViewAndTimelinePages(t *testing.T) {
	h := newHarness(t, "")
	id := str(h.must(201, "POST", "/v3/sessions", nil), "id")
	if err := fill(context.Background(), h.gw.Store(), id, 150); err != nil {
		t.Fatal(err)
	}
	b := newTab(t, h)
	b.open("")
	b.login(steerSecret)
	b.do("logged in", chromedp.WaitVisible(chromedp.CSS("#nav")))
	if v := eval[string](b, `[...document.querySelectorAll("nav a")].filter((a) => !a.hidden).map((a) => a.textContent).join(",")`); v != "Sessions,Channels,Numbers" {
		t.Fatalf("a steer token is offered %s", v)
	}
	// A session created in 2020 is listed last newest first, first oldest
	// first, and not among those created in the last hour.
	old := fmt.Sprintf("ses_%012x70008000000000000000", time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	if _, _, err := h.gw.Store().CreateSession(context.Background(), old, map[string]string{"age": "old"}); err != nil {
		t.Fatal(err)
	}
	b.open("#/sessions")
	b.until("old session listed last", `document.querySelector("#sessions-body tr:last-child")?.dataset.id === "`+old+`" &&
		document.querySelector("#sessions-body tr")?.dataset.id === "`+id+`"`)
	b.do("oldest first", chromedp.Evaluate[chromedp.Void](
		`(() => { const s = document.querySelector("#since"); s.value = ""; s.dispatchEvent(new Event("change")); })()`))
	b.until("old session listed first", `document.querySelector("#sessions-body tr")?.dataset.id === "`+old+`"`)
	b.do("since an hour ago", chromedp.Evaluate[chromedp.Void](
		`(() => { const s = document.querySelector("#since"); s.value = "3600"; s.dispatchEvent(new Event("change")); })()`))
	b.until("recent sessions only", `document.querySelector('tr[data-id="`+old+`"]') === null && document.querySelector('tr[data-id="`+id+`"]') !== null`)

	b.open("#/sessions/" + id)
	b.until("newest page", `document.querySelectorAll("#timeline > li").length === 100 && document.querySelector("#timeline > li").dataset.seq === "51"`)
	b.do("load earlier", chromedp.Click(chromedp.CSS("#earlier")))
	b.until("earlier page", `document.querySelectorAll("#timeline > li").length === 150 && document.querySelector("#timeline > li").dataset.seq === "1"`)
	if !eval[bool](b, `document.querySelector("#earlier").hidden`) {
		t.Fatal("Load earlier is still offered at the start of the log")
	}
	// Log out behind the page's back; its next request sends it to the
	// login form.
	eval[int](b, `fetch("/console/session").then((r) => r.json()).then((s) =>
		fetch("/console/logout", {method: "POST", headers: {"X-CSRF-Token": s.csrf}})).then((r) => r.status)`)
	b.do("to the sessions list", chromedp.Evaluate[chromedp.Void](`location.hash = "#/sessions"`))
	b.do("back to login", chromedp.WaitVisible(chromedp.CSS("#token")))
}

// TestBrowserChannels: the channels page shows each channel's health and
// last catch-up from /readyz, and runs a catch-up on request (here of a
// GitHub channel with no conversation to look at).
func TestBrowserChannels(t *testing.T) {
	h := newHarnessWith(t, "", `
adapters:
  github:
    webhook_secret: github-secret-0123456789abcdef0123
    token: ghp_test
    login: switchboard-bot
    api_url: http://127.0.0.1:1/
`)
	b := newTab(t, h)
	b.open("")
	b.login(adminSecret)
	b.open("#/channels")
	b.until("github listed", `document.querySelector('tr[data-channel="github"]') !== null`)
	b.do("catch up", chromedp.Click(chromedp.CSS(`button.catch-up[data-channel="github"]`)))
	b.until("catch-up reported", `document.querySelector("#flash").textContent.startsWith("github: ")`)
	b.until("last catch-up shown", `document.querySelector('tr[data-channel="github"]').textContent.includes("request")`)
	b.screenshot("channels")
}
