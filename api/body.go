package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/switchboardhq/switchboard/envelope"
)

// readBody returns the request body, checked to be plausibly JSON by its
// headers and bounded by the body limit: 415 for a content type that is
// clearly not JSON (multipart forms, images, XML…) or a compressed body, 413
// for a body over the limit, 408 for one that does not arrive before the
// server's read deadline. Any other content type is read as JSON, because
// "curl -d" sends application/x-www-form-urlencoded.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia,
			"Content-Encoding %q is not supported; send the body uncompressed", ce)
	}
	tooLarge := errorf(http.StatusRequestEntityTooLarge, codeTooLarge,
		"request body is larger than the limit of %d bytes", s.limits.MaxBody)
	if r.ContentLength > s.limits.MaxBody {
		return nil, tooLarge
	}
	body := http.MaxBytesReader(w, r.Body, s.limits.MaxBody)
	var (
		b   []byte
		err error
	)
	if n := r.ContentLength; n >= 0 {
		// The usual case: the length is known, so read exactly that.
		b = make([]byte, n)
		_, err = io.ReadFull(body, b)
	} else {
		b, err = io.ReadAll(body)
	}
	var (
		mbe *http.MaxBytesError
		ne  net.Error
	)
	if errors.As(err, &mbe) {
		return nil, tooLarge
	}
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, errorf(http.StatusRequestTimeout, codeRequestTimeout,
			"the request body did not arrive within the server's read timeout; send it at once")
	}
	if err != nil {
		return nil, badRequest("cannot read the request body: %v", err)
	}
	return b, nil
}

// checkContentType rejects content types that cannot hold JSON.
func checkContentType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia,
			"cannot parse Content-Type %q; send application/json", ct)
	}
	top, sub, _ := strings.Cut(mt, "/")
	switch {
	case top == "multipart", top == "image", top == "audio", top == "video", top == "font", top == "model",
		sub == "xml", strings.HasSuffix(sub, "+xml"),
		mt == "text/html", mt == "text/csv",
		mt == "application/pdf", mt == "application/zip", mt == "application/gzip":
		return errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia,
			"Content-Type %q is not supported; send a JSON body as application/json", mt)
	}
	return nil
}

// decodeJSON decodes body, which must be exactly one JSON object, into v,
// rejecting unknown fields. Its errors are 400s that say what is wrong;
// allowed lists the fields for the unknown-field message.
func decodeJSON(body []byte, v any, allowed string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			return badRequest("invalid JSON: unexpected data after the top-level object")
		}
		return nil
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		ve  *envelope.ValidationError
	)
	switch {
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; send a JSON object such as {\"text\": \"…\"}")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid JSON: the body ends in the middle of a value")
	case errors.As(err, &syn):
		return badRequest("invalid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ) && typ.Field == "":
		return badRequest("the request body must be a JSON object, not %s", typ.Value)
	case errors.As(err, &typ):
		return badRequest("field %q must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.As(err, &ve):
		return badRequest("%s", ve.Error())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s; allowed fields: %s", strings.TrimPrefix(err.Error(), "json: unknown field "), allowed)
	}
	return badRequest("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names a Go kind the way a JSON user thinks of it.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return "a number"
}
