package sqlite

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/switchboardhq/switchboard/store"
)

// TestFullDatabaseIsUnavailable makes the database full for real (the
// writer connection may not grow the file past its size) and checks that
// writes then fail with store.ErrUnavailable, and succeed again once there
// is room.
func TestFullDatabaseIsUnavailable(t *testing.T) {
	s := newTestStore(t)
	ctx := t.Context()
	if _, _, err := s.CreateSession(ctx, "s1", nil); err != nil {
		t.Fatal(err)
	}
	var pages int64
	if err := s.wconn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wconn.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 64<<10) // needs pages the file may not have
	_, err := s.Append(ctx, appendReq("s1", "client:full", big))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("append to a full database: %v, want store.ErrUnavailable", err)
	}
	if _, err := s.wconn.ExecContext(ctx, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, appendReq("s1", "client:full", big)); err != nil {
		t.Fatalf("append once there is room: %v", err)
	}
}
