package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCheckJSONText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`{"text": "hi"}`, nil},
		{`{"text": "caf\u00e9 \u00E9"}`, nil},
		{`{"text": "\ud83d\ude00"}`, nil},             // a complete pair: 😀
		{`{"text": "\uD83D\uDE00\ud800\udc00"}`, nil}, // two pairs, either case
		{`{"text": "\\ud800"}`, nil},                  // an escaped backslash, then "ud800"
		{`{"text": "\\\\ud800"}`, nil},
		{`{"text": "\u"}`, nil}, // not JSON, but no surrogate either
		{"{\"text\": \"\xff\"}", ErrInvalidUTF8},
		{`{"text": "\ud800"}`, ErrLoneSurrogate},
		{`{"text": "\uDBFF"}`, ErrLoneSurrogate},
		{`{"text": "\udc00"}`, ErrLoneSurrogate},            // a low half first
		{`{"text": "\ude00\ud83d"}`, ErrLoneSurrogate},      // halves in the wrong order
		{`{"text": "\ud800\ud800"}`, ErrLoneSurrogate},      // two highs
		{`{"text": "\ud800x\udc00"}`, ErrLoneSurrogate},     // not adjacent
		{`{"text": "\ud800\u0041"}`, ErrLoneSurrogate},      // a high, then no low
		{`{"text": "\\\ud800"}`, ErrLoneSurrogate},          // "\\" then a real escape
		{`{"\udfff": "key"}`, ErrLoneSurrogate},             // keys too
		{`{"raw": {"deep": ["\ud800"]}}`, ErrLoneSurrogate}, // anywhere
		{`"\ud800`, ErrLoneSurrogate},                       // at the end
	} {
		err := CheckJSONText([]byte(tc.in))
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("CheckJSONText(%s) = %v, want %v", tc.in, err, tc.want)
		}
	}
	err := CheckJSONText([]byte(`{"text": "ok \ud800"}`))
	if err == nil || !strings.Contains(err.Error(), `byte 13`) || !strings.Contains(err.Error(), `\ud800`) {
		t.Errorf("error %q should name the offset and the escape", err)
	}
}

// FuzzCheckJSONText holds CheckJSONText to encoding/json's own reading: for
// a valid JSON text that spells no U+FFFD itself, a string decodes with a
// U+FFFD exactly when it held a lone surrogate.
func FuzzCheckJSONText(f *testing.F) {
	for _, s := range []string{`"a"`, `"\ud83d\ude00"`, `"\ud800"`, `{"\udc00":1}`, `"\\ud800"`, `["\ud800\u0041"]`, `"\uD800\uDFFF"`} {
		f.Add([]byte(s))
	}
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckJSONText(b)
		if err != nil && !errors.Is(err, ErrInvalidUTF8) && !errors.Is(err, ErrLoneSurrogate) {
			t.Fatalf("unexpected error %v", err)
		}
		if !json.Valid(b) || errors.Is(err, ErrInvalidUTF8) ||
			bytes.Contains(b, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(b), []byte(`\ufffd`)) {
			return
		}
		replaced := false
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // 1e700 is valid JSON, but no float64
		for {
			tok, derr := dec.Token()
			if derr == io.EOF {
				break
			}
			if derr != nil {
				t.Fatalf("valid JSON does not tokenise: %v", derr)
			}
			if s, ok := tok.(string); ok && strings.ContainsRune(s, '\uFFFD') {
				replaced = true
			}
		}
		if replaced != (err != nil) {
			t.Fatalf("CheckJSONText(%q) = %v, but encoding/json replaced a character: %v", b, err, replaced)
		}
	})
}
