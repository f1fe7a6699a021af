package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/switchboardhq/switchboard/adapters"
	"github.com/switchboardhq/switchboard/config/duration"
)

// contract is the OpenAPI document, loaded and validated once, with a
// router over its operations.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	err    error
}

var (
	contractOnce sync.Once
	theContract  contract
	// validatedPairs counts the request/response pairs checked against the
	// document, reported by TestMain.
	validatedPairs atomic.Int64
	// answered holds the documented responses ("POST /v3/sessions 201")
	// that some test's request was answered with, reported by TestMain.
	answered sync.Map
)

// loadContract returns the embedded document, parsed and validated.
func loadContract(t testing.TB) *contract {
	t.Helper()
	contractOnce.Do(func() {
		c := &theContract
		loader := openapi3.NewLoader()
		if c.doc, c.err = loader.LoadFromData(openAPI); c.err != nil {
			c.err = fmt.Errorf("load openapi.json: %w", c.err)
			return
		}
		if c.err = c.doc.Validate(loader.Context); c.err != nil {
			c.err = fmt.Errorf("validate openapi.json: %w", c.err)
			return
		}
		if c.router, c.err = legacy.NewRouter(c.doc); c.err != nil {
			c.err = fmt.Errorf("route openapi.json: %w", c.err)
		}
	})
	if theContract.err != nil {
		t.Fatal(theContract.err)
	}
	return &theContract
}

func TestMain(m *testing.M) {
	code := m.Run()
	if n := validatedPairs.Load(); n > 0 && testing.Verbose() {
		fmt.Fprintf(os.Stderr, "openapi: %d request/response pairs validated against api/openapi.json\n", n)
		var documented, missed []string
		for path, item := range theContract.doc.Paths.Map() {
			for method, op := range item.Operations() {
				for status := range op.Responses.Map() {
					documented = append(documented, method+" "+path+" "+status)
				}
			}
		}
		slices.Sort(documented)
		for _, d := range documented {
			if _, ok := answered.Load(d); !ok {
				missed = append(missed, d)
			}
		}
		fmt.Fprintf(os.Stderr, "openapi: %d of %d documented responses answered by some test; not answered:\n  %s\n",
			len(documented)-len(missed), len(documented), strings.Join(missed, "\n  "))
	}
	os.Exit(code)
}

// checkContract wraps the server's handler so that every request a test
// makes, through harness.do, ServeHTTP or an httptest.Server, has its
// response validated against the document: the status must be one the
// operation lists, and the headers and body must match it. A request the
// document refuses may be answered only with an error (tests send malformed
// requests on purpose), never with a 2xx. Not validated: the body of an
// event stream (text/event-stream, endless) and of /metrics (the Prometheus
// text format), whose status and headers still are; a response to a client
// that went away (499, never sent).
func checkContract(t testing.TB, next http.Handler) http.Handler {
	c := loadContract(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody := &bytes.Buffer{}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = teeBody{Reader: io.TeeReader(r.Body, reqBody), Closer: r.Body}
		}
		rw := &contractWriter{ResponseWriter: w}
		next.ServeHTTP(rw, r)
		if err := c.check(r, reqBody.Bytes(), rw); err != nil {
			t.Errorf("openapi: %s %s answered %d: %v", r.Method, r.URL.RequestURI(), rw.statusCode(), err)
		}
	})
}

// teeBody is a request body copied as it is read.
type teeBody struct {
	io.Reader
	io.Closer
}

// contractWriter records the status and body of a response as it passes;
// an event stream's body is not recorded.
type contractWriter struct {
	http.ResponseWriter
	status int
	stream bool
	body   bytes.Buffer
}

func (w *contractWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
		w.stream = strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream")
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *contractWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.stream {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *contractWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *contractWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *contractWriter) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// check validates one request/response pair against the document.
func (c *contract) check(r *http.Request, reqBody []byte, w *contractWriter) error {
	status := w.statusCode()
	if status == statusClientClosed {
		return nil
	}
	validatedPairs.Add(1)
	probe := r.Clone(context.Background())
	probe.Body = io.NopCloser(bytes.NewReader(reqBody))
	head := r.Method == http.MethodHead
	if head {
		probe.Method = http.MethodGet
	}
	if checkContentType(probe.Header.Get("Content-Type")) == nil {
		// The server reads any content type that can hold JSON as JSON
		// ("curl -d" sends application/x-www-form-urlencoded), as the
		// document says; its request bodies are all application/json.
		probe.Header.Set("Content-Type", "application/json")
	}
	route, pathParams, err := c.router.FindRoute(probe)
	var re *routers.RouteError
	switch {
	case errors.As(err, &re):
		return c.checkUnrouted(status, w)
	case err != nil:
		return fmt.Errorf("find the route: %w", err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: probe, PathParams: pathParams, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr != nil && status < 300 {
		return fmt.Errorf("route %s %s accepted a request the document refuses: %v", route.Method, route.Path, reqErr)
	}
	answered.Store(route.Method+" "+route.Path+" "+strconv.Itoa(status), true)
	respOpts := *opts
	respOpts.ExcludeResponseBody = head || w.stream || route.Path == "/metrics"
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 w.Header(),
		Options:                &respOpts,
	}
	out.SetBodyBytes(w.body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("route %s %s: response does not match the document: %v", route.Method, route.Path, err)
	}
	return nil
}

// checkUnrouted validates a response to a request that no operation of the
// document matches: as the document's description says, 404, or 405 with
// Allow, with the Error body.
func (c *contract) checkUnrouted(status int, w *contractWriter) error {
	switch {
	case status != http.StatusNotFound && status != http.StatusMethodNotAllowed:
		return errors.New("no operation of the document matches, so the answer must be 404 or 405")
	case status == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "":
		return errors.New("a 405 without Allow")
	}
	var v any
	if err := json.Unmarshal(w.body.Bytes(), &v); err != nil {
		return fmt.Errorf("decode the error body: %w", err)
	}
	return c.doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

// fullServer is a harness with every optional part of the server enabled,
// so that routes() registers every route.
func fullServer(t *testing.T, cu CatchUps) *harness {
	return newHarness(t, func(o *Options) {
		o.Bindings, o.Outbox = o.Store, o.Store
		o.Webhooks = &WebhookOptions{Store: o.Store, Replay: func(context.Context, string, time.Time) (int, error) { return 0, nil }}
		o.CatchUps = cu
	})
}

// TestOpenAPIServed checks that GET /v3/openapi.json serves the embedded
// document, without a token, as cacheable JSON.
func TestOpenAPIServed(t *testing.T) {
	h := newHarness(t, nil)
	w := h.do(req{method: "GET", path: "/v3/openapi.json"})
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v3/openapi.json: %d %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("Cache-Control %q, want a max-age", cc)
	}
	if !bytes.Equal(w.Body.Bytes(), openAPI) {
		t.Errorf("served document differs from the embedded api/openapi.json")
	}
	disk, err := os.ReadFile("openapi.json")
	if err != nil || !bytes.Equal(disk, openAPI) {
		t.Errorf("embedded document differs from api/openapi.json on disk (%v)", err)
	}
}

// TestOpenAPIRoutes checks that the document's operations are exactly the
// routes routes() registers with every optional part enabled.
func TestOpenAPIRoutes(t *testing.T) {
	c := loadContract(t)
	h := fullServer(t, &fakeCatchUps{})
	var routes, ops []string
	for _, p := range h.srv.patterns {
		method, path, _ := strings.Cut(p, " ")
		routes = append(routes, method+" "+path)
	}
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	slices.Sort(routes)
	slices.Sort(ops)
	for _, r := range routes {
		if !slices.Contains(ops, r) {
			t.Errorf("route %s is not in api/openapi.json", r)
		}
	}
	for _, o := range ops {
		if !slices.Contains(routes, o) {
			t.Errorf("api/openapi.json has %s, which no route serves", o)
		}
	}
	if len(routes) < 20 {
		t.Errorf("only %d routes registered: %v", len(routes), routes)
	}
}

// fakeCatchUps is a CatchUps whose channel "ok" catches up, "busy" is
// running and "broken" fails part way; others have no catch-up.
type fakeCatchUps struct{}

func (fakeCatchUps) CatchUp(_ context.Context, channel string) (adapters.CatchUpReport, error) {
	switch channel {
	case "ok":
		return adapters.CatchUpReport{Since: t0, Scopes: 2, Found: 3, New: 1}, nil
	case "busy":
		return adapters.CatchUpReport{}, ErrCatchUpRunning
	case "broken":
		return adapters.CatchUpReport{Scopes: 1, Found: 1}, errors.New("channel answered 500")
	}
	return adapters.CatchUpReport{}, ErrNoCatchUp
}

func (fakeCatchUps) CatchUpStatus() map[string]CatchUpStatus {
	return map[string]CatchUpStatus{"ok": {CatchUpReport: adapters.CatchUpReport{Scopes: 2}, At: t0, Took: duration.Duration(time.Second), Trigger: "api"}}
}

// TestCatchUpEndpoint checks POST /v3/channels/{name}/catch-up's answers
// (and, through the harness, that they match the document).
func TestCatchUpEndpoint(t *testing.T) {
	h := fullServer(t, fakeCatchUps{})
	for _, tc := range []struct {
		channel, token string
		want           int
	}{
		{"ok", adminSecret, http.StatusOK},
		{"busy", adminSecret, http.StatusConflict},
		{"broken", adminSecret, http.StatusBadGateway},
		{"nope", adminSecret, http.StatusNotFound},
		{"ok", steerSecret, http.StatusForbidden},
		{"ok", "", http.StatusUnauthorized},
	} {
		// Not harness.do, which wants every error in the Error shape: the
		// 502 of a failed catch-up reports how far it got instead.
		r := httptest.NewRequest("POST", "/v3/channels/"+tc.channel+"/catch-up", nil)
		if tc.token != "" {
			r.Header.Set("Authorization", "Bearer "+tc.token)
		}
		w := httptest.NewRecorder()
		h.srv.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("catch-up %s as %q: %d %s, want %d", tc.channel, tc.token, w.Code, w.Body, tc.want)
		}
		if tc.want == http.StatusConflict && w.Header().Get("Retry-After") == "" {
			t.Errorf("catch-up %s: 409 without Retry-After", tc.channel)
		}
	}
	if w := h.do(req{method: "GET", path: "/readyz"}); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"catch_up"`) {
		t.Errorf("readyz: %d %s, want 200 with catch_up", w.Code, w.Body)
	}
}

// TestOpenAPIErrorCodes checks that the Error schema's codes are exactly
// the code* constants of errors.go.
func TestOpenAPIErrorCodes(t *testing.T) {
	c := loadContract(t)
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatalf("parse errors.go: %v", err)
	}
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 || !strings.HasPrefix(vs.Names[0].Name, "code") {
			return true
		}
		if lit, ok := vs.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			v, _ := strconv.Unquote(lit.Value)
			codes = append(codes, v)
		}
		return true
	})
	var documented []string
	for _, v := range c.doc.Components.Schemas["Error"].Value.Properties["error"].Value.Properties["code"].Value.Enum {
		documented = append(documented, v.(string))
	}
	slices.Sort(codes)
	slices.Sort(documented)
	if len(codes) < 10 || !slices.Equal(codes, documented) {
		t.Errorf("error codes of errors.go %v, of api/openapi.json %v", codes, documented)
	}
}
