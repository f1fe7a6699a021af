package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboardhq/switchboard/internal/testenv"
	"github.com/switchboardhq/switchboard/store"
)

// ownDatabase creates a database of its own for t, dropped when t ends,
// and returns a connection to the server's maintenance database (for
// ALTER DATABASE) and the DSN of the new database.
func ownDatabase(t *testing.T) (admin *pgx.Conn, dsn string) {
	t.Helper()
	u, err := url.Parse(testenv.Postgres(t))
	if err != nil {
		t.Fatalf("the test DSN is not a URL: %v", err)
	}
	q := u.Query()
	q.Del("search_path") // the new database has only the public schema
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err = pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "sb_unavailable_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		// DROP DATABASE waits for a checkpoint, which a loaded machine can
		// take well over 10 s to finish: the bound is only a guard.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		_ = admin.Close(ctx)
	})
	u.Path = "/" + name
	return admin, u.String()
}

// TestReadOnlyDatabaseIsUnavailable makes the store's database read-only
// for real (default_transaction_read_only, as on a hot standby or a server
// out of disk put in read-only by its operator): writes then fail with
// store.ErrUnavailable, and succeed again once it is writable.
func TestReadOnlyDatabaseIsUnavailable(t *testing.T) {
	admin, dsn := ownDatabase(t)
	ctx := t.Context()
	s := openStore(t, dsn, Options{})
	create(t, s, "s1")
	name := s.pool.Config().ConnConfig.Database
	setReadOnly := func(on bool) {
		t.Helper()
		stmt := "ALTER DATABASE " + name + " RESET default_transaction_read_only"
		if on {
			stmt = "ALTER DATABASE " + name + " SET default_transaction_read_only = on"
		}
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
		s.pool.Reset() // new connections take the setting
	}

	setReadOnly(true)
	if _, err := s.Append(ctx, msg("s1", "read-only", "hi")); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("append to a read-only database: %v, want store.ErrUnavailable", err)
	}
	if _, _, err := s.CreateSession(ctx, "s2", nil); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("create session in a read-only database: %v, want store.ErrUnavailable", err)
	}

	setReadOnly(false)
	if _, err := s.Append(ctx, msg("s1", "read-only", "hi")); err != nil {
		t.Errorf("append once the database is writable: %v", err)
	}
}

// TestCannotWrite classifies real errors: a refused connection is the
// store being unavailable; a statement the server refuses, or a caller
// that gave up, is not.
func TestCannotWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, refused := pgx.Connect(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if refused == nil || !cannotWrite(refused) {
		t.Errorf("connection refused (%v): cannotWrite false, want true", refused)
	}
	conn, err := pgx.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, syntax := conn.Exec(ctx, "SELEC 1")
	if syntax == nil || cannotWrite(syntax) {
		t.Errorf("syntax error (%v): cannotWrite true, want false", syntax)
	}
	canceled, stop := context.WithCancel(ctx)
	stop()
	_, gone := conn.Exec(canceled, "SELECT 1")
	if gone == nil || cannotWrite(gone) {
		t.Errorf("canceled caller (%v): cannotWrite true, want false", gone)
	}
}
