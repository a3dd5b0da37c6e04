package pgstore

import (
	"context"
	"errors"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/jackc/pgx/v5"
)

// migrations are the schema's steps, in order: after step i the schema
// is at version i+1 (SchemaVersion: their count). A step is never
// edited once released; a change is a new step.
var migrations = []string{
	// 1: the ledgers (one head row each: the row appends lock), their
	// entries as canonical line bytes with the columns Find looks up, and
	// the stored hashes of their trees.
	`CREATE TABLE cp_ledgers (
		name       text   PRIMARY KEY,
		size       bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
		head       text   NOT NULL DEFAULT '',
		checkpoint bytea
	);
	CREATE TABLE cp_entries (
		ledger        text   NOT NULL,
		seq           bigint NOT NULL CHECK (seq >= 0),
		line          bytea  NOT NULL,
		entry_hash    text   NOT NULL,
		event_type    text   NOT NULL,
		submission_id text   NOT NULL,
		op_id         text,
		PRIMARY KEY (ledger, seq)
	);
	CREATE INDEX cp_entries_event_type ON cp_entries (ledger, event_type, seq);
	CREATE INDEX cp_entries_submission_id ON cp_entries (ledger, submission_id, seq);
	CREATE INDEX cp_entries_op_id ON cp_entries (ledger, op_id, seq) WHERE op_id IS NOT NULL;
	CREATE TABLE cp_hashes (
		ledger text   NOT NULL,
		idx    bigint NOT NULL CHECK (idx >= 0),
		hash   bytea  NOT NULL CHECK (length(hash) = 32),
		PRIMARY KEY (ledger, idx)
	);`,
	// 2: a ledger moved to another store (cp-ledger migrate --to file):
	// its head row says where, and no append commits on it any more.
	`ALTER TABLE cp_ledgers ADD COLUMN moved text;`,
	// 3: the stored hashes' primary key covers the hash (INCLUDE, from
	// PostgreSQL 11): the stored hashes a proof reads, scattered over the
	// tree, and a verify's read of one ledger's hashes among others' are
	// index-only scans, with no heap fetch per hash. The index is rebuilt
	// once, in the migrating transaction (seconds per million entries).
	`ALTER TABLE cp_hashes DROP CONSTRAINT cp_hashes_pkey,
		ADD CONSTRAINT cp_hashes_pkey PRIMARY KEY (ledger, idx) INCLUDE (hash);`,
}

// SchemaVersion is the version of the schema this driver reads and writes.
var SchemaVersion = len(migrations)

// readableSince is the oldest schema a reader reads: the steps since
// change nothing a reader asks (a writer migrates before it writes).
const readableSince = 1

// migrateLock is the advisory lock key that serializes migrations: two
// tools opening a new database at once create its tables once.
const migrateLock = 0x63705f6c6564676572 & 0x7fffffffffffffff // "cp_ledger"

// migrate brings the schema to SchemaVersion, in one transaction under the
// advisory lock; a schema newer than this driver knows is refused
// (LEDGER_SCHEMA_NEWER): an older tool must not write what it does not
// understand.
//
// A schema already current costs one round trip: its version is read
// first, without a transaction or the lock (a version, once written, only
// grows); only a missing or older schema takes the locked path.
func migrate(ctx context.Context, conn *pgx.Conn) error {
	var cur int
	err := conn.QueryRow(ctx, `SELECT version FROM cp_schema`, oneTrip).Scan(&cur)
	switch {
	case err == nil && cur == SchemaVersion:
		return nil
	case err == nil && cur > SchemaVersion:
		return ledger.Errorf("LEDGER_SCHEMA_NEWER", "the ledger database's schema is version %d; this tool knows up to %d: upgrade the tool", cur, SchemaVersion)
	}
	// No schema yet (undefined_table), an older one, or an answer that
	// is not one version: the locked path decides.
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS cp_schema (version integer NOT NULL)`); err != nil {
		return err
	}
	var v int
	switch err := tx.QueryRow(ctx, `SELECT version FROM cp_schema`).Scan(&v); {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `INSERT INTO cp_schema (version) VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if v > SchemaVersion {
		return ledger.Errorf("LEDGER_SCHEMA_NEWER", "the ledger database's schema is version %d; this tool knows up to %d: upgrade the tool", v, SchemaVersion)
	}
	if v == SchemaVersion {
		return nil // nothing to write: the transaction is rolled back
	}
	for ; v < SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE cp_schema SET version = $1`, v); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
