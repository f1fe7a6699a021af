package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the schema, one file per version, named
// NNNN_description.sql. A released migration is never edited: later changes
// (conversation bindings, the outbox, webhook destinations, IMAP cursors) are
// new files with higher numbers.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockClass is the first key of the advisory lock taken while
// migrating; the second is a hash of the schema, so that gateways on
// different schemas of one database do not wait for each other.
const migrationLockClass = 0x5342 // "SB"

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations returns the embedded migrations in version order.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	ms := make([]migration, 0, len(names))
	for _, name := range names {
		base := strings.TrimSuffix(path.Base(name), ".sql")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", name)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrate applies the migrations not yet recorded in schema_migrations, each
// in its own transaction, in version order. It first reads the recorded
// versions in one query, so that opening a current database costs no
// transaction. Each migration's transaction takes an advisory lock and
// checks the version again, so gateways starting together apply every
// migration exactly once: the one that waited finds it recorded. A database
// that records a version newer than ms knows is an error.
func migrate(ctx context.Context, pool *pgxpool.Pool, ms []migration, log *slog.Logger) error {
	known := ms[len(ms)-1].version
	applied, err := appliedVersions(ctx, pool)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if err := checkNewest(applied, known); err != nil {
		return err
	}
	pending := false
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		pending = true
		done, err := applyMigration(ctx, pool, m)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if done {
			log.Info("postgres: applied schema migration", "version", m.version, "name", m.name)
		}
	}
	if !pending {
		return nil
	}
	// Another gateway may have migrated meanwhile, perhaps a newer one.
	if applied, err = appliedVersions(ctx, pool); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	return checkNewest(applied, known)
}

// appliedVersions returns the versions recorded in schema_migrations: none
// when the current schema has no such table yet. PostgreSQL resolves the
// table of a query before running it, so its existence is asked first, in
// the current schema (where applyMigration creates it) rather than anywhere
// on the search_path.
func appliedVersions(ctx context.Context, pool *pgxpool.Pool) (map[int]bool, error) {
	var exists bool
	err := pool.QueryRow(ctx, "SELECT to_regclass(format('%I.schema_migrations', current_schema())) IS NOT NULL").Scan(&exists)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, nil
	}
	rows, _ := pool.Query(ctx, "SELECT version FROM schema_migrations")
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, err
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	return applied, nil
}

// checkNewest returns an error when applied holds a version newer than
// known, the newest version of this binary.
func checkNewest(applied map[int]bool, known int) error {
	newest := 0
	for v := range applied {
		newest = max(newest, v)
	}
	if newest > known {
		// A newer gateway migrated this database. Migrations may change
		// what existing statements rely on (0006 changed the outbox's key),
		// so running on would risk wrong deliveries.
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d): run the newer binary", newest, known)
	}
	return nil
}

func applyMigration(ctx context.Context, pool *pgxpool.Pool, m migration) (applied bool, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", migrationLockClass); err != nil {
		return false, fmt.Errorf("lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return false, fmt.Errorf("create schema_migrations: %w", err)
	}
	var done bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", m.version).Scan(&done); err != nil {
		return false, err
	}
	if done {
		return false, tx.Rollback(ctx)
	}
	// No arguments: pgx sends it with the simple protocol, which allows
	// several statements.
	if _, err := tx.Exec(ctx, m.sql); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// currentSchema returns the schema that unqualified names resolve to.
func currentSchema(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var schema *string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return "", err
	}
	if schema == nil {
		return "", errors.New("no schema of the search_path exists")
	}
	return *schema, nil
}
