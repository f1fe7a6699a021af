package api

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 document of the API, served at
// GET /v3/openapi.json. Its paths are exactly the routes that routes()
// registers with every optional part of the server enabled, and its
// responses are those the handlers answer: the api package's tests check
// every request they make against it (see openapi_test.go).
//
//go:embed openapi.json
var openAPI []byte

// serveOpenAPI serves GET /v3/openapi.json: the embedded document, public
// and cacheable for an hour (it changes only with the binary).
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(openAPI)
}
