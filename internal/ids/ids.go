// Package ids makes the gateway's identifiers: a short prefix naming the
// kind ("ses", "dlv") and a time-ordered random part, so ids sort by
// creation time and page well.
package ids

import (
	"encoding/hex"

	"github.com/google/uuid"
)

// New returns prefix + "_" + 32 hex digits of a UUIDv7.
func New(prefix string) string {
	u := uuid.Must(uuid.NewV7())
	return prefix + "_" + hex.EncodeToString(u[:])
}
