package adaptertest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Update is the -update flag of the tests that use the golden helpers:
// with it they rewrite their golden files instead of comparing with them
// (go test -update ./adapters/slack, then review the diff).
var Update = flag.Bool("update", false, "rewrite the golden files instead of comparing with them")

// GoldenJSON encodes v as indented JSON, with <, > and & kept as they are,
// and checks it against the golden file at path (Golden).
func GoldenJSON(t testing.TB, path string, v any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	Golden(t, path, buf.Bytes())
}

// Golden fails the test when got differs from the golden file at path,
// byte for byte, showing got; under -update it writes got there instead.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *Update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("result differs from %s (run go test -update and review the diff):\n%s", path, got)
	}
}

// CheckTidy keeps a channel's testdata tidy: every "<name>.golden.json" in
// dir is the golden file of one of cases, and every other file of dir that
// matches the glob fixtures (a payload, a message) is covered by a case
// named after it: its name without its extension, alone or followed by
// ".<variant>". It fails when dir holds fewer than three fixtures, so that
// a wrong dir cannot pass.
func CheckTidy(t testing.TB, dir, fixtures string, cases []string) {
	t.Helper()
	names := map[string]bool{}
	for _, c := range cases {
		names[c] = true
	}
	goldens, _ := filepath.Glob(filepath.Join(dir, "*.golden.json"))
	for _, g := range goldens {
		if !names[strings.TrimSuffix(filepath.Base(g), ".golden.json")] {
			t.Errorf("%s has no case", g)
		}
	}
	all, _ := filepath.Glob(filepath.Join(dir, fixtures))
	n := 0
	for _, f := range all {
		base := filepath.Base(f)
		if strings.HasSuffix(base, ".golden.json") {
			continue
		}
		n++
		base = strings.TrimSuffix(base, filepath.Ext(base))
		covered := false
		for c := range names {
			covered = covered || c == base || strings.HasPrefix(c, base+".")
		}
		if !covered {
			t.Errorf("fixture %s has no golden case", f)
		}
	}
	if n < 3 {
		t.Errorf("only %d fixtures match %s in %s", n, fixtures, dir)
	}
}
