// Package testenv gives tests the real services they need (PostgreSQL,
// Dovecot) and decides what happens when one is missing: the test skips
// with a message saying what to start, unless SWITCHBOARD_REQUIRE_SERVICES is
// set (as .ci/run does), where every such skip is a failure.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv is the variable that turns missing-service skips into failures.
const RequireEnv = "SWITCHBOARD_REQUIRE_SERVICES"

// PostgresEnv names the PostgreSQL server tests use.
const PostgresEnv = "SWITCHBOARD_TEST_POSTGRES"

// DefaultPostgres is the server tests use when PostgresEnv is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Required reports whether missing services fail tests instead of skipping them.
func Required() bool {
	v := os.Getenv(RequireEnv)
	return v != "" && v != "0" && v != "false"
}

// Missing skips t because a service is absent, or fails it under Required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (%s is set, so this is a failure, not a skip)", msg, RequireEnv)
	}
	t.Skipf("skipping: %s (set %s=1 to make this a failure)", msg, RequireEnv)
}

// Postgres returns the DSN of a fresh, empty schema on the test PostgreSQL
// server, dropped when t ends. It calls Missing when the server does not
// answer.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		base = DefaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		Missing(t, "PostgreSQL is not reachable at %s: %v; start it or point %s at one", redact(base), err, PostgresEnv)
		return ""
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("testenv: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("testenv: drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("testenv: drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(base, schema)
}

func withSearchPath(dsn, schema string) string {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// key=value form
		return strings.TrimSpace(dsn) + " search_path=" + schema
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxx")
		}
		return u.String()
	}
	return dsn
}
