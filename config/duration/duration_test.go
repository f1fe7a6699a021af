package duration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationReadsAndWritesGoDurations(t *testing.T) {
	var v struct{ D Duration }
	if err := json.Unmarshal([]byte(`{"D": "1h30m"}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.D.D() != 90*time.Minute {
		t.Errorf("D() = %v, want 1h30m", v.D.D())
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"D":"1h30m0s"}` {
		t.Errorf("Marshal = %s, %v", b, err)
	}
	err = json.Unmarshal([]byte(`{"D": "soon"}`), &v)
	if err == nil || !strings.Contains(err.Error(), `want a duration like 30s or 5m, got "soon"`) {
		t.Errorf("Unmarshal(soon) = %v", err)
	}
	if v.D.D() != 90*time.Minute {
		t.Errorf("a refused value changed D to %v", v.D.D())
	}
}
