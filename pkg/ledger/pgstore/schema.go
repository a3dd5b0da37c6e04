package pgstore

import (
	"context"
	"errors"
	"slices"
	"strconv"

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
	// 4: the lookups Find answers in SQL beyond those of 1 (issue 14): an
	// entry by its id (the id column holds it only where it does not name
	// the entry's seq, ledger.IDSeq: an id that does is found by the
	// primary key), and the entries whose metadata.changed lists a path
	// (cp_changed, a row per path, deleted with its entry). The rows
	// already there get theirs from backfillLookups, in the same
	// transaction.
	`ALTER TABLE cp_entries ADD COLUMN id text;
	CREATE INDEX cp_entries_id ON cp_entries (ledger, id) WHERE id IS NOT NULL;
	CREATE TABLE cp_changed (
		ledger text   NOT NULL,
		path   text   NOT NULL,
		seq    bigint NOT NULL,
		PRIMARY KEY (ledger, path, seq),
		FOREIGN KEY (ledger, seq) REFERENCES cp_entries (ledger, seq) ON DELETE CASCADE
	);`,
}

// backfills run after the migration step of the same index, in its
// transaction: what a step derives from the stored lines, which SQL
// alone does not parse.
var backfills = map[int]func(context.Context, pgx.Tx) error{3: backfillLookups}

// lookupsSince is the schema version from which the id column and
// cp_changed exist: a reader of an older database scans for those
// conditions.
const lookupsSince = 4

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
		if fill := backfills[v]; fill != nil {
			if err := fill(ctx, tx); err != nil {
				return err
			}
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE cp_schema SET version = $1`, v); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// lookups returns what the entry e adds to the lookups of schema 3: its
// id when it does not name its seq (nil otherwise), and the distinct paths
// its changed set lists.
func lookups(e *ledger.Entry) (id any, paths []string) {
	if s, ok := ledger.IDSeq(e.ID); !ok || s != e.Seq {
		id = e.ID
	}
	if c, ok := ledger.ChangedOf(e.Metadata); ok {
		paths = slices.Compact(slices.Sorted(slices.Values(c.Paths())))
	}
	return id, paths
}

// backfillPage is how many rows backfillLookups reads at a time.
const backfillPage = 5000

// backfillLookups fills the id column and cp_changed for the rows already
// stored when schema 3 arrives: each line parsed as Find parses it (a
// line that does not parse gets nothing; Find skips it either way, and
// Verify reports it), a page of rows at a time.
func backfillLookups(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `CREATE TEMPORARY TABLE cp_backfill_ids (ledger text, seq bigint, id text) ON COMMIT DROP`); err != nil {
		return err
	}
	name, seq := "", int64(-1)
	for {
		rows, err := tx.Query(ctx, `SELECT ledger, seq, line FROM cp_entries WHERE (ledger, seq) > ($1, $2) ORDER BY ledger, seq LIMIT `+strconv.Itoa(backfillPage), name, seq)
		if err != nil {
			return err
		}
		var ids, changed [][]any
		n := 0
		var line []byte
		_, err = pgx.ForEachRow(rows, []any{&name, &seq, &line}, func() error {
			n++
			e, err := ledger.ParseLine(line)
			if err != nil || e.Seq != seq {
				return nil
			}
			id, paths := lookups(e)
			if id != nil {
				ids = append(ids, []any{name, seq, id})
			}
			for _, p := range paths {
				changed = append(changed, []any{name, p, seq})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cp_backfill_ids"}, []string{"ledger", "seq", "id"}, pgx.CopyFromRows(ids)); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cp_changed"}, []string{"ledger", "path", "seq"}, pgx.CopyFromRows(changed)); err != nil {
			return err
		}
		if n < backfillPage {
			break
		}
	}
	_, err := tx.Exec(ctx, `UPDATE cp_entries e SET id = b.id FROM cp_backfill_ids b WHERE e.ledger = b.ledger AND e.seq = b.seq`)
	return err
}
