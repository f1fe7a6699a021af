// Package fuzzkit holds what the channels' fuzz targets share: seeds read
// from the fixtures under testdata/, and the properties every envelope an
// adapter makes from a payload must have. Only tests import it.
package fuzzkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboardhq/switchboard/adapters"
)

// MaxInput bounds the inputs fuzz targets try, so that each runs fast; the
// converters' cost on large inputs is measured by benchmarks.
const MaxInput = 64 << 10

// Fixtures returns the contents of the files matching glob, golden files
// left out, and fails tb when there are none.
func Fixtures(tb testing.TB, glob string) [][]byte {
	tb.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		tb.Fatalf("no fixtures match %s: %v", glob, err)
	}
	var out [][]byte
	for _, name := range files {
		if strings.HasSuffix(name, ".golden.json") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// CheckInbound checks what an adapter ingested from payload body: at most
// one envelope, valid, keeping the payload byte for byte as raw, with text
// that is valid UTF-8 and not much larger than the payload.
func CheckInbound(t *testing.T, got []adapters.Inbound, body []byte) {
	t.Helper()
	if len(got) > 1 {
		t.Fatalf("%d envelopes from one payload, want at most 1", len(got))
	}
	for _, in := range got {
		if err := in.Envelope.Validate(0); err != nil {
			t.Fatalf("ingested an invalid envelope: %v", err)
		}
		if string(in.Envelope.Raw) != string(body) {
			t.Fatalf("raw is not the payload byte for byte")
		}
		if !utf8.ValidString(in.Envelope.Text) {
			t.Fatalf("text is not valid UTF-8: %q", in.Envelope.Text)
		}
		if n := len(in.Envelope.Text); n > 8*len(body)+1024 {
			t.Fatalf("%d bytes of text from a %d-byte payload", n, len(body))
		}
	}
}
