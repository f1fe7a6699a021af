package envelope

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// testdataFiles returns the channel fixtures under the repository's
// testdata/ (payloads and golden envelopes), the seed corpus of the fuzz
// targets.
func testdataFiles(f *testing.F) map[string][]byte {
	f.Helper()
	names, err := filepath.Glob("../testdata/*/*.json")
	if err != nil || len(names) == 0 {
		f.Fatalf("no fixtures under ../testdata: %v", err)
	}
	files := make(map[string][]byte, len(names))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		files[n] = b
	}
	return files
}

// addGoldenSeeds adds every fixture, and the envelope of every golden file,
// to f's corpus.
func addGoldenSeeds(f *testing.F) {
	f.Helper()
	envelopes := 0
	for _, b := range testdataFiles(f) {
		f.Add(b)
		var golden struct {
			Envelope json.RawMessage `json:"envelope"`
		}
		if json.Unmarshal(b, &golden) == nil && len(golden.Envelope) > 0 {
			f.Add([]byte(golden.Envelope))
			envelopes++
		}
	}
	if envelopes == 0 {
		f.Fatal("no golden envelopes under ../testdata")
	}
}

// FuzzEnvelope decodes arbitrary JSON as an envelope: decoding and Validate
// never panic, and an envelope that validates survives AppendJSON and a
// second decoding unchanged, raw byte for byte.
func FuzzEnvelope(f *testing.F) {
	e := valid()
	b, err := e.AppendJSON(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Envelope
		if err := json.Unmarshal(b, &e); err != nil {
			return
		}
		if err := e.Validate(0); err != nil {
			return
		}
		out, err := e.AppendJSON(nil)
		if err != nil {
			t.Fatalf("a valid envelope does not encode: %v", err)
		}
		var back Envelope
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("AppendJSON wrote what does not decode: %v\n%s", err, out)
		}
		if err := back.Validate(0); err != nil {
			t.Fatalf("a valid envelope is invalid after a round trip: %v\n%s", err, out)
		}
		if back.ID != e.ID || back.Source != e.Source || back.Kind != e.Kind || back.Actor != e.Actor ||
			back.Conversation != e.Conversation || !back.TS.Equal(e.TS) || !Equivalent(&back, &e) ||
			string(back.Raw) != string(e.Raw) {
			t.Fatalf("round trip changed the envelope:\n got %+v\nwant %+v", back, e)
		}
		if _, err := MessageEvent("evt_1", "ses_1", "inbound", &e); err != nil {
			t.Fatalf("MessageEvent: %v", err)
		}
	})
}
