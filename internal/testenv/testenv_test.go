package testenv

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestPostgresGivesAnIsolatedSchema(t *testing.T) {
	dsn := Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE probe (x int)"); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := conn.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'probe'").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if schema == "public" || schema == "" {
		t.Fatalf("table landed in schema %q, want the test's own", schema)
	}
}

func TestWithSearchPath(t *testing.T) {
	got := withSearchPath("postgres://u@h:5432/db?sslmode=disable", "s1")
	if got != "postgres://u@h:5432/db?search_path=s1&sslmode=disable" {
		t.Fatalf("url form: %s", got)
	}
	if got := withSearchPath("host=h dbname=db", "s1"); got != "host=h dbname=db search_path=s1" {
		t.Fatalf("kv form: %s", got)
	}
}
