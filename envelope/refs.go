package envelope

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// The blessed refs keys. Any other key is allowed too.
const (
	RefRepo   = "repo"   // "owner/name"
	RefBranch = "branch" // a branch name
	RefCommit = "commit" // a commit sha
	RefRef    = "ref"    // a git ref ("refs/heads/main")
	RefIssue  = "issue"  // an issue number or key ("42", "PROJ-123")
	RefPR     = "pr"     // a pull request number
)

// The refs keys of edits, deletions and streams. They are reserved: the
// gateway sets them (an adapter from its channel's edit event, the API from
// an output request), and an output request may not set RefPartial itself.
const (
	// RefEdits names, on an edit, the envelope id of the message it
	// changes (an edit always names the message, never an earlier edit).
	RefEdits = "edits"
	// RefDeletes names, on a deletion, the envelope id of the message it
	// withdraws.
	RefDeletes = "deletes"
	// RefPartial is "true" on an output that is not finished: a message or
	// edit of a stream, which later edits extend. The stream ends with an
	// edit without it.
	RefPartial = "partial"
)

// Refs is structured context: string keys to string values. In JSON a value
// may be a string or a number (kept as its decimal text, so {"pr": 42} and
// {"pr": "42"} are the same); any other type is a ValidationError.
type Refs map[string]string

// Validate checks the number, keys and values of r.
func (r Refs) Validate() error {
	if len(r) > MaxRefs {
		return invalid("refs", "has %d keys, more than %d", len(r), MaxRefs)
	}
	for _, k := range r.Keys() {
		if err := validRefKey(k); err != nil {
			return err
		}
		if len(r[k]) > MaxRefValLen {
			return invalid("refs."+k, "is longer than %d bytes", MaxRefValLen)
		}
	}
	return nil
}

func validRefKey(k string) error {
	if k == "" || len(k) > MaxRefKeyLen {
		return invalid("refs", "key %q must be 1 to %d bytes", k, MaxRefKeyLen)
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return invalid("refs", "key %q may hold only letters, digits, '_', '-' and '.'", k)
		}
	}
	return nil
}

// Keys returns the keys of r in sorted order.
func (r Refs) Keys() []string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Set sets k to v unless v is empty, allocating r's map as needed by returning
// the (possibly new) Refs.
func (r Refs) Set(k, v string) Refs {
	if v == "" {
		return r
	}
	if r == nil {
		r = Refs{}
	}
	r[k] = v
	return r
}

// UnmarshalJSON accepts an object whose values are strings or numbers.
func (r *Refs) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*r = nil
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return invalid("refs", "must be an object of strings")
	}
	out := make(Refs, len(m))
	for k, v := range m {
		v = bytes.TrimSpace(v)
		switch {
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return invalid("refs."+k, "is not a valid string")
			}
			out[k] = s
		case len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9'):
			if _, err := strconv.ParseFloat(string(v), 64); err != nil {
				return invalid("refs."+k, "is not a valid number")
			}
			out[k] = string(v)
		default:
			return invalid("refs."+k, "must be a string or a number, not %s", jsonType(v))
		}
	}
	*r = out
	return nil
}

func jsonType(v []byte) string {
	if len(v) == 0 {
		return "empty"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return fmt.Sprintf("%q", v)
}
