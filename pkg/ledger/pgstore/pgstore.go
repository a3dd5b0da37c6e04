// Package pgstore is the PostgreSQL driver of ledger.Store (DESIGN.md
// §11): one ledger that agents on many machines append to, with the same
// canonical entries, stored hashes, proofs and checkpoints as the file
// store, because it makes them with pkg/ledger's own code (ledger.Tree).
//
// It lives beside pkg/ledger, not in it, so that the ledger library and
// every binary that only reads files do not link a database client: only
// the plane's one opener (internal/plane.OpenTierLedger) imports it.
//
// In the database (schema.go, created and migrated by the tool, its
// version in cp_schema):
//
//	cp_ledgers  one head row per ledger: size, head entry_hash, the latest
//	            checkpoint. An append locks it (SELECT ... FOR UPDATE): the
//	            database serializes appends from any process or machine.
//	cp_entries  each entry's canonical line bytes, with seq, entry_hash,
//	            event_type, submission_id and metadata.op_id as columns
//	            (indexed: Find is a lookup, not a scan), and its id where it
//	            does not name its seq (ledger.IDSeq; one that does is found
//	            by seq).
//	cp_changed  a row per path an entry's metadata.changed lists (Find by
//	            Query.Changed).
//	cp_hashes   the tree's stored hashes at their tlog.StoredHashIndex.
//
// A batch is one transaction, acknowledged (Append returns) only after
// its commit; with a checkpoint key the new signed checkpoint is in the
// same transaction and, after the commit, also written to a file outside
// the database (Options.CheckpointFile), so that rows cut from the
// database's tail, checkpoint and all, are still caught.
package pgstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/lockfile"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Unavailable is the code of every failure to reach or use the database:
// the caller fails closed (exit 4), never reads it as an empty ledger.
const Unavailable = "LEDGER_UNAVAILABLE"

// Options configure a Store.
type Options struct {
	// Name is the ledger's name in the database (tier.json's
	// ledger_store.name).
	Name string
	// Ledger are the ledger's options: actor, clock, auth stamp and the
	// plane's checkpoint key (LockTimeout bounds the wait for the head
	// row, default 10s).
	Ledger ledger.Options
	// CheckpointFile, when set, is where each checkpoint is also kept
	// outside the database (the plane's ledger/<name>.checkpoint).
	CheckpointFile string
	// Writable opens the ledger for appending: the schema is created or
	// migrated if needed. A reader needs the schema and the ledger to
	// exist (fs.ErrNotExist otherwise), and writes nothing. A reader
	// whose ledger has a checkpoint kept outside (CheckpointFile) reads
	// the schema's version and the head row with its first read, in the
	// same statement when that is a proof: a ledger missing from the
	// database is then that read's fs.ErrNotExist. A reader with a
	// checkpoint key (Ledger.Checkpoint) may sign checkpoints
	// (Checkpoint); one without only reads: its connection is pgx's
	// wire-protocol layer alone (raw.go), and Checkpoint is refused.
	Writable bool
	// ConnectTimeout bounds the connection (default 10s).
	ConnectTimeout time.Duration
}

// Store is a ledger in PostgreSQL. It implements ledger.Store. Its
// methods may be called from several goroutines; they share one
// connection, held only for a query at a time (Lines and Find read pages
// of rows, then call fn).
type Store struct {
	opts Options
	cfg  *pgx.ConnConfig // for a second connection (ReadStoredHashes)
	mu   sync.Mutex
	// pc is the connection; every read goes through it (raw.go). conn is
	// pgx's over it (transactions, COPY FROM), for a store that writes:
	// opened Writable, or with a checkpoint key (Checkpoint signs and
	// stores one). A store that only reads has none, and never builds
	// pgx's type map.
	pc   *pgconn.PgConn
	conn *pgx.Conn
	hint head // the head row as last read (Open, ReadProof)
	// deferred: a reader's opening (the schema's version and the head
	// row) is still to be read, by the first read (settle).
	deferred bool
	// schema is the database's schema version as the opening found it
	// (after migrating, for a writer).
	schema int64
	// advIdle is the connection of the last Advisory released, kept for
	// the next (advisory.go); advClosed: Close closed it, keep none.
	advMu     sync.Mutex
	advIdle   *pgx.Conn
	advClosed bool
}

var _ ledger.Store = (*Store)(nil)

// Open connects to the database named by dsn and opens the ledger
// opts.Name. A database that cannot be reached is LEDGER_UNAVAILABLE.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Name == "" {
		return nil, ledger.Errorf("INVALID_INPUT", "a PostgreSQL ledger needs a name")
	}
	if opts.Ledger.LockTimeout <= 0 {
		opts.Ledger.LockTimeout = ledger.DefaultLockTimeout
	}
	if opts.Ledger.Now == nil {
		opts.Ledger.Now = time.Now
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: never echo it.
		return nil, ledger.Errorf(Unavailable, "the ledger database's DSN does not parse (%s)", redact(err))
	}
	// The connection sets nothing for its session (no start-up
	// parameters, no SET): a pooler (PgBouncer) refuses start-up
	// parameters it does not know, and in transaction pooling a session's
	// settings would go to whichever client gets its server connection
	// next. What the tool's statements need is set for their own
	// transaction (SET LOCAL): plans for the values each runs with (an
	// append's, localSettings; every other statement is unnamed, each in
	// raw.go, so planned for its values), and no JIT compilation for the
	// reads of a whole ledger (Lines, ReadStoredHashes).
	cfg.ConnectTimeout = opts.ConnectTimeout
	if testTracer != nil {
		cfg.Tracer = testTracer
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	s := &Store{opts: opts, cfg: cfg}
	if opts.Writable || opts.Ledger.Checkpoint != nil {
		s.conn, err = pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			s.pc = s.conn.PgConn()
		}
	} else {
		s.pc, err = pgconn.ConnectConfig(ctx, &cfg.Copy().Config)
	}
	if err != nil {
		return nil, ledger.Errorf(Unavailable, "ledger %s: the database is unreachable: %s", opts.Name, redact(err))
	}
	if !opts.Writable {
		// A cp-ledger prove process connects, asks once and exits: with
		// the checkpoint kept outside as the hint of the ledger's size, the
		// opening's questions go with the proof's, in one statement
		// (ReadProof), rather than in a round trip of their own to a
		// backend just started. The ledger has had an append (the copy
		// outside is written after one): its absence from the database is
		// still reported, by the first read.
		if b, err := s.readOutside(); err == nil && size(b) >= 0 {
			s.deferred, s.hint = true, head{size: size(b)}
			return s, nil
		}
	}
	if err := s.init(ctx); err != nil {
		s.pc.Close(context.Background())
		return nil, err
	}
	return s, nil
}

// redact returns err's message without the connection string pgx may
// quote in it.
func redact(err error) string {
	var pe *pgconn.ConnectError
	if errors.As(err, &pe) {
		return pe.Unwrap().Error()
	}
	var perr *pgconn.ParseConfigError
	if errors.As(err, &perr) {
		return "invalid connection string"
	}
	return err.Error()
}

// openSQL reads a reader's opening: the schema's version (the row whose
// first column is 0) and the ledger's head row (1).
const openSQL = `SELECT 0::bigint, version::bigint, NULL::bytea FROM cp_schema
	UNION ALL SELECT 1, size, checkpoint FROM cp_ledgers WHERE name = $1`

func (s *Store) init(ctx context.Context) error {
	if s.opts.Writable {
		if err := migrate(ctx, s.conn); err != nil {
			return dbErr(s.opts.Name, "creating the schema", err)
		}
		s.schema = int64(SchemaVersion)
		return nil
	}
	// The schema's version and the ledger's head row, in one round trip
	// (a statement of two plain scans: a backend that has just started
	// plans it quickly). The head row is kept as a hint of which stored
	// hashes a proof needs (ReadProof).
	var v int64
	var n *int64
	err := each(ctx, s.pc, openSQL, new(args).text(s.opts.Name), func(vals [][]byte) error {
		k, err := int8Of("kind", vals[0])
		if err != nil {
			return err
		}
		x, err := int8Of("version or size", vals[1])
		if err != nil {
			return err
		}
		if k == 0 {
			v = x
		} else {
			n, s.hint.checkpoint = &x, bytes.Clone(vals[2])
		}
		return nil
	})
	if err := s.opened(v, n, err); err != nil {
		return err
	}
	s.hint.size = *n
	return nil
}

// settle reads a deferred opening (Open), with s.mu held: every read but
// ReadProof's first, which reads it in its own statement, calls it first.
func (s *Store) settle(ctx context.Context) error {
	if !s.deferred {
		return nil
	}
	if err := s.init(ctx); err != nil {
		return err
	}
	s.deferred = false
	return nil
}

// opened judges what a reader's opening read: the schema's version v (0:
// none), the head row's size n (nil: no head row), err the statement's.
func (s *Store) opened(v int64, n *int64, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table: no schema yet
		v, err = 0, nil
	}
	if err != nil {
		return dbErr(s.opts.Name, "reading the schema version", err)
	}
	switch {
	case v == 0:
		return fmt.Errorf("ledger %s: the database holds no ledgers: %w", s.opts.Name, fs.ErrNotExist)
	case v > int64(SchemaVersion):
		return ledger.Errorf("LEDGER_SCHEMA_NEWER", "the ledger database's schema is version %d; this tool knows up to %d: upgrade the tool", v, SchemaVersion)
	case v < int64(readableSince):
		return ledger.Errorf(Unavailable, "the ledger database's schema is version %d, older than this tool reads (%d): a writer migrates it", v, readableSince)
	case n == nil:
		return fmt.Errorf("ledger %s is not in the database: %w", s.opts.Name, fs.ErrNotExist)
	}
	s.schema = v
	return nil
}

// dbErr codes a database failure: a row that breaks a constraint (an
// entry or stored hash already there, planted by hand) is LEDGER_INVALID;
// anything else, a connection lost or refused, LEDGER_UNAVAILABLE.
func dbErr(name, doing string, err error) error {
	if err == nil {
		return nil
	}
	var coded interface{ Code() string }
	if errors.As(err, &coded) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && len(pe.Code) == 5 && pe.Code[:2] == "23" { // integrity_constraint_violation
		return ledger.Errorf("LEDGER_INVALID", "ledger %s: %s: the database refused the rows (%s): it holds rows this ledger's head does not account for (run cp-ledger verify)", name, doing, pe.Message)
	}
	if errors.As(err, &pe) && (pe.Code == "26000" || pe.Code == "42P05") {
		// invalid_sql_statement_name, duplicate_prepared_statement: a
		// prepared statement that is not, or already is, on the server
		// connection: a pooler in transaction mode hands each transaction
		// another one (README "A tier's ledger in PostgreSQL").
		return ledger.Errorf(Unavailable, "ledger %s: %s: %s: the connection is a pooler's in transaction mode? add default_query_exec_mode=exec to the DSN (no prepared statements)", name, doing, redact(err))
	}
	return ledger.Errorf(Unavailable, "ledger %s: %s: %s", name, doing, redact(err))
}

// Name returns the ledger's name in the database.
func (s *Store) Name() string { return s.opts.Name }

// Close closes the connection.
func (s *Store) Close() error {
	s.closeAdvisory()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return s.conn.Close(context.Background())
	}
	return s.pc.Close(context.Background())
}

// oneTrip runs a small query in one round trip (the unnamed statement,
// text format) rather than two (prepare, then execute): a cp-ledger
// process opens a connection, asks a few small questions and exits, so a
// prepared statement is never reused, and each round trip is a wake-up
// of the server's backend.
const oneTrip = pgx.QueryExecModeExec

// localSettings are the settings of a transaction that writes (locked),
// set with its lock timeout in its first statement: plans for the values
// each statement runs with. A generic plan of a prepared statement, made
// before the tables have statistics, scans the stored hashes for idx =
// ANY($2) (4x slower appends of 100 at 30,000 entries, and worse as they
// grow; BenchmarkAppend). Set per transaction, not per session, so that
// the connection can be a pooler's (Open).
const localSettings = `SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off`

// noJIT is said first in the query string of a read of a whole ledger (a
// COPY, one implicit transaction): JIT compilation pays off for long
// analytic queries, and these reads, estimated costly, would compile code
// for tens of milliseconds before their first row.
const noJIT = `SET LOCAL jit = off; `

// hashes reads stored hashes through pc (the store's connection, or a
// writer's in its transaction): a tlog.HashReader.
type hashes struct {
	ctx  context.Context
	pc   *pgconn.PgConn
	name string
}

// txHashes reads stored hashes in tx.
func txHashes(ctx context.Context, tx pgx.Tx, name string) hashes {
	return hashes{ctx, tx.Conn().PgConn(), name}
}

// hashRow decodes a row of (idx, hash).
func hashRow(name string, vals [][]byte) (int64, tlog.Hash, error) {
	idx, err := int8Of("idx", vals[0])
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	if len(vals[1]) != tlog.HashSize {
		return 0, tlog.Hash{}, ledger.Errorf("LEDGER_INVALID", "ledger %s: stored hash %d is %d bytes, not %d (run cp-ledger verify)", name, idx, len(vals[1]), tlog.HashSize)
	}
	return idx, tlog.Hash(vals[1]), nil
}

func (h hashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	if contiguous(indexes) {
		return h.readRange(indexes[0], int64(len(indexes)))
	}
	got := make(map[int64]tlog.Hash, len(indexes))
	err := each(h.ctx, h.pc, `SELECT idx, hash FROM cp_hashes WHERE ledger = $1 AND idx = ANY($2)`, new(args).text(h.name).bigints(indexes), func(vals [][]byte) error {
		idx, hh, err := hashRow(h.name, vals)
		got[idx] = hh
		return err
	})
	if err != nil {
		return nil, dbErr(h.name, "reading stored hashes", err)
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		hh, ok := got[x]
		if !ok {
			return nil, ledger.Errorf(ledger.TornTail, "ledger %s: stored hash %d missing (run cp-ledger verify)", h.name, x)
		}
		out[i] = hh
	}
	return out, nil
}

// contiguous reports whether indexes are lo, lo+1, ..., as Verify asks.
func contiguous(indexes []int64) bool {
	for i, x := range indexes {
		if x != indexes[0]+int64(i) {
			return false
		}
	}
	return len(indexes) > 1
}

// readRange reads the n stored hashes from lo on, in one range scan.
func (h hashes) readRange(lo, n int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, 0, n)
	err := each(h.ctx, h.pc, `SELECT idx, hash FROM cp_hashes WHERE ledger = $1 AND idx >= $2 AND idx < $3 ORDER BY idx`, new(args).text(h.name).bigint(lo).bigint(lo+n), func(vals [][]byte) error {
		idx, hh, err := hashRow(h.name, vals)
		if err != nil {
			return err
		}
		if want := lo + int64(len(out)); idx != want {
			return ledger.Errorf(ledger.TornTail, "ledger %s: stored hash %d missing (run cp-ledger verify)", h.name, want)
		}
		out = append(out, hh)
		return nil
	})
	if err != nil {
		return nil, dbErr(h.name, "reading stored hashes", err)
	}
	if int64(len(out)) != n {
		return nil, ledger.Errorf(ledger.TornTail, "ledger %s: stored hash %d missing (run cp-ledger verify)", h.name, lo+int64(len(out)))
	}
	return out, nil
}

// ReadHashes implements ledger.Store.ReadHashes.
func (s *Store) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.settle(context.Background()); err != nil {
		return nil, err
	}
	return hashes{context.Background(), s.pc, s.opts.Name}.ReadHashes(indexes)
}

// State implements ledger.Store.State: the head row's size and head, and
// the root of the stored hashes (committed with them in one transaction).
func (s *Store) State(ctx context.Context) (ledger.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st ledger.State
	if err := s.settle(ctx); err != nil {
		return st, err
	}
	found := false
	err := each(ctx, s.pc, `SELECT size, head FROM cp_ledgers WHERE name = $1`, new(args).text(s.opts.Name), func(vals [][]byte) error {
		var err error
		st.Size, err = int8Of("size", vals[0])
		st.Head, found = string(vals[1]), true
		return err
	})
	if err != nil {
		return st, dbErr(s.opts.Name, "reading its state", err)
	}
	if !found {
		st.Root, _ = tlog.TreeHash(0, nil)
		return st, nil // a writer's ledger before its first append
	}
	st.Root, err = tlog.TreeHash(st.Size, hashes{ctx, s.pc, s.opts.Name})
	return st, err
}

var _ ledger.ProofReader = (*Store)(nil)

// proofSQL reads in one statement ($1: the ledger, $2: stored hash
// indexes) the head row's size and checkpoint (the row whose index is -1)
// and the stored hashes at those indexes: one snapshot, two plain scans.
const proofSQL = `SELECT -1, size, checkpoint FROM cp_ledgers WHERE name = $1
	UNION ALL SELECT idx, NULL, hash FROM cp_hashes WHERE ledger = $1 AND idx = ANY($2)`

// openProofSQL is proofSQL that also reads the schema's version (the row
// whose index is -2): a deferred opening's questions (Open) and a
// proof's, in one statement.
const openProofSQL = `SELECT -2, version::bigint, NULL::bytea FROM cp_schema
	UNION ALL ` + proofSQL

// ReadProof implements ledger.ProofReader in one statement (proofSQL),
// so that a cp-ledger prove process makes one round trip after
// connecting, not eight: a reader whose opening was deferred (Open, with
// the checkpoint kept outside) reads the schema's version in it too
// (openProofSQL). Which stored hashes a proof needs depends on the
// ledger's size and its checkpoint's, which that same statement reads: it
// asks for those of the size and checkpoint Open (or the last ReadProof)
// found, or the size of the checkpoint kept outside, and when the ledger has
// grown meanwhile, reads what the new size needs in a second statement.
// A stored hash, once its entries are committed, never changes: the two
// statements read one tree. The checkpoint kept outside the database is
// read first, so its tree's hashes are asked for too.
func (s *Store) ReadProof(ctx context.Context, seq, treeSize int64) (ledger.ProofView, error) {
	// A copy outside that cannot be read is left out, as ProveInclusion
	// leaves out a ReadCheckpoint that fails: the proof is then against
	// the database's checkpoint, or the current tree, both checked.
	outside, err := s.readOutside()
	if err != nil {
		outside = nil
	}
	var v ledger.ProofView
	var db []byte
	var asked []int64
	var hintSize, hintCkpt int64 // what asked was named from
	got := make(hashMap)
	err = func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
		first := s.deferred
		hintSize, hintCkpt = s.hint.size, size(s.hint.checkpoint)
		asked = proofIndexes(seq, hintSize, treeSize, hintCkpt, size(outside))
		q := proofSQL
		if first {
			q = openProofSQL
		}
		var version int64
		var n *int64 // the head row's size, nil without one
		err := each(ctx, s.pc, q, new(args).text(s.opts.Name).bigints(asked), func(vals [][]byte) error {
			x, err := int8Of("idx", vals[0])
			if err != nil {
				return err
			}
			if x < 0 {
				y, err := int8Of("version or size", vals[1])
				switch {
				case err != nil:
					return err
				case x == -2:
					version = y
				case x == -1:
					v.Size, db = y, bytes.Clone(vals[2])
					n = &v.Size
				default:
					return fmt.Errorf("%w: a row of kind %d", errRowFormat, x)
				}
				return nil
			}
			_, hh, err := hashRow(s.opts.Name, [][]byte{vals[0], vals[2]})
			got[x] = hh
			return err
		})
		if first {
			var coded interface{ Code() string }
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code != "42P01" && !errors.As(err, &coded) {
				// A statement the schema could not answer (a newer one's
				// columns): Open's own questions say why, if they can.
				if err := s.init(ctx); err != nil {
					return err
				}
			}
			if err := s.opened(version, n, err); err != nil {
				return err
			}
			s.deferred = false
		} else if err != nil {
			return dbErr(s.opts.Name, "reading a proof", err)
		} // else no head row: an empty ledger
		s.hint = head{v.Size, db}
		return nil
	}()
	if err != nil {
		return v, err
	}
	v.Checkpoint = later(db, outside)
	// What the size and checkpoint read need that was not asked for (if
	// they are the ones asked was named from, nothing).
	var more []int64
	if dbCkpt := size(db); v.Size != hintSize || dbCkpt != hintCkpt {
		have := make(map[int64]bool, len(asked))
		for _, x := range asked {
			have[x] = true
		}
		for _, x := range proofIndexes(seq, v.Size, treeSize, dbCkpt, size(outside)) {
			if !have[x] {
				more = append(more, x)
			}
		}
	}
	if len(more) > 0 {
		hs, err := s.ReadHashes(more)
		if err != nil {
			return v, err
		}
		for i, x := range more {
			got[x] = hs[i]
		}
	}
	v.Hashes = namedHashes{got, s.opts.Name}
	return v, nil
}

// head is what a reader last read of the ledger's head row: a hint of
// which stored hashes its next proof needs.
type head struct {
	size       int64
	checkpoint []byte
}

// proofIndexes returns the indexes of the stored hashes that
// ledger.ProveInclusion reads to prove seq in a ledger of size n: the
// roots of the trees of size n and of each of sizes that can hold seq,
// seq's leaf, and its proofs in those trees. tlog's own functions name
// them (through a HashReader that records what they ask for).
func proofIndexes(seq, n int64, sizes ...int64) []int64 {
	r := recorder{}
	tlog.TreeHash(n, r)
	if 0 <= seq && seq < n {
		r[tlog.StoredHashIndex(0, seq)] = true
		ts := append(make([]int64, 0, 1+len(sizes)), n)
		for _, t := range sizes {
			if seq < t && t <= n && !slices.Contains(ts, t) {
				ts = append(ts, t) // each size once: they are often all n
			}
		}
		for _, t := range ts {
			if t != n {
				tlog.TreeHash(t, r)
			}
			tlog.ProveRecord(t, seq, r)
		}
	}
	out := make([]int64, 0, len(r))
	for x := range r {
		out = append(out, x)
	}
	slices.Sort(out)
	return out
}

// recorder is a tlog.HashReader that records the indexes it is asked
// for and answers zero hashes.
type recorder map[int64]bool

func (r recorder) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	for _, x := range indexes {
		r[x] = true
	}
	return make([]tlog.Hash, len(indexes)), nil
}

// hashMap holds stored hashes by index.
type hashMap map[int64]tlog.Hash

// namedHashes is a tlog.HashReader over the stored hashes a ReadProof
// read: one it did not read is missing from the database.
type namedHashes struct {
	m    hashMap
	name string
}

func (h namedHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		hh, ok := h.m[x]
		if !ok {
			return nil, ledger.Errorf(ledger.TornTail, "ledger %s: stored hash %d missing (run cp-ledger verify)", h.name, x)
		}
		out[i] = hh
	}
	return out, nil
}

// page is how many rows Find reads per query.
const page = 16384

// newestFirstPage is how many rows FindNewest reads in its first query;
// each next one reads sixteen times more, up to page.
const newestFirstPage = 8

// linesPage and maxLinesPage bound the rows of each COPY of Lines: the
// first reads linesPage, each next one twice as many, up to maxLinesPage.
// Variables for tests.
//
// Each COPY reads the rows in the primary key's order, by its index, as
// they are stored: with sorts and bitmap scans off for its statement
// (SET LOCAL, in the one implicit transaction of the query string). A
// table the planner has no statistics of yet (appended to, not yet
// analyzed) is otherwise thought to hold a few rows, and read by a bitmap
// scan and an external sort: half the speed.
var linesPage, maxLinesPage int64 = page, 1 << 16

// Lines implements ledger.Store.Lines: COPY ... TO STDOUT (FORMAT
// binary) of the rows in seq order, each row handed to fn as it streams
// in, a page of rows per COPY (so that fn stopping early costs the rest of
// one page, and the connection is not broken off). A row missing from the
// middle is not filled in: Verify, which checks each line's seq against
// its position, names it.
func (s *Store) Lines(ctx context.Context, from, to int64, fn func(seq int64, line []byte) bool) error {
	name, err := literal(s.opts.Name)
	if err != nil {
		return err
	}
	for n := linesPage; ; n = min(2*n, maxLinesPage) {
		bound := ""
		if to >= 0 {
			bound = fmt.Sprintf(" AND seq < %d", to)
		}
		sql := fmt.Sprintf(noJIT+`SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off;
			COPY (SELECT seq, line FROM cp_entries WHERE ledger = %s AND seq >= %d%s ORDER BY seq LIMIT %d) TO STDOUT (FORMAT binary)`, name, from, bound, n)
		var rows int64
		stopped := false
		err := s.copy(ctx, "reading entries", sql, 2, func(vals [][]byte) error {
			if len(vals[0]) != 8 || vals[1] == nil {
				return fmt.Errorf("%w: a row of cp_entries with seq %d bytes, line %v", errCopyFormat, len(vals[0]), vals[1] != nil)
			}
			rows++
			seq := int64(binary.BigEndian.Uint64(vals[0]))
			from = seq + 1
			if !stopped && !fn(seq, vals[1]) {
				stopped = true // the rest of the page streams in, unread
			}
			return nil
		})
		if err != nil || stopped || rows < n {
			return err
		}
	}
}

// copy runs copyTo on the store's connection, held.
func (s *Store) copy(ctx context.Context, doing, sql string, fields int, row func([][]byte) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.settle(ctx); err != nil {
		return err
	}
	return dbErr(s.opts.Name, doing, copyTo(ctx, s.pc, sql, fields, row))
}

var _ ledger.StoredHashesReader = (*Store)(nil)

// ReadStoredHashes implements ledger.StoredHashesReader: one COPY of the
// rows, in whatever order the server finds them (each row says its
// index), on a connection of its own, so that Verify reads the stored
// hashes while the lines stream in on the store's connection. An index
// out of range, twice, or missing is refused, never read as a zero hash.
func (s *Store) ReadStoredHashes(ctx context.Context, n int64) ([]byte, error) {
	name, err := literal(s.opts.Name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	err = s.settle(ctx)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]byte, n*tlog.HashSize)
	if n == 0 {
		return out, nil
	}
	conn, err := pgconn.ConnectConfig(ctx, &s.cfg.Copy().Config)
	if err != nil {
		return nil, ledger.Errorf(Unavailable, "ledger %s: the database is unreachable: %s", s.opts.Name, redact(err))
	}
	defer conn.Close(context.Background())
	seen := make([]uint64, (n+63)/64)
	var got int64
	sql := fmt.Sprintf(noJIT+`COPY (SELECT idx, hash FROM cp_hashes WHERE ledger = %s AND idx < %d) TO STDOUT (FORMAT binary)`, name, n)
	err = copyTo(ctx, conn, sql, 2, func(vals [][]byte) error {
		if len(vals[0]) != 8 {
			return fmt.Errorf("%w: a row of cp_hashes with an index of %d bytes", errCopyFormat, len(vals[0]))
		}
		idx := int64(binary.BigEndian.Uint64(vals[0]))
		if idx < 0 || idx >= n || seen[idx/64]&(1<<(idx%64)) != 0 {
			return fmt.Errorf("%w: stored hash %d out of range or twice", errCopyFormat, idx)
		}
		if len(vals[1]) != tlog.HashSize {
			return ledger.Errorf("LEDGER_INVALID", "ledger %s: stored hash %d is %d bytes, not %d (run cp-ledger verify)", s.opts.Name, idx, len(vals[1]), tlog.HashSize)
		}
		seen[idx/64] |= 1 << (idx % 64)
		copy(out[idx*tlog.HashSize:], vals[1])
		got++
		return nil
	})
	if err != nil {
		return nil, dbErr(s.opts.Name, "reading stored hashes", err)
	}
	if got != n {
		for i := range n {
			if seen[i/64]&(1<<(i%64)) == 0 {
				return nil, ledger.Errorf(ledger.TornTail, "ledger %s: stored hash %d missing (run cp-ledger verify)", s.opts.Name, i)
			}
		}
	}
	return out, nil
}

// copyTo runs the COPY TO STDOUT (FORMAT binary) statement sql on conn,
// calling row with each row of fields fields. The statement holds its
// values as literals (COPY takes no parameters): it is refused by a
// server that does not read them as literal() writes them.
func copyTo(ctx context.Context, conn *pgconn.PgConn, sql string, fields int, row func([][]byte) error) error {
	if testTracer != nil {
		ctx = testTracer.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: sql})
	}
	if conn.ParameterStatus("standard_conforming_strings") != "on" {
		return ledger.Errorf(Unavailable, "the database server has standard_conforming_strings off: this tool needs it on (the default since PostgreSQL 9.1)")
	}
	w := &copyRows{fields: fields, row: row}
	if _, err := conn.CopyTo(ctx, w, sql); err != nil {
		return err
	}
	return w.finish()
}

// query runs fn with the connection held.
func (s *Store) query(ctx context.Context, doing string, fn func(*pgconn.PgConn) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.settle(ctx); err != nil {
		return err
	}
	return dbErr(s.opts.Name, doing, fn(s.pc))
}

// Find implements ledger.Store.Find: the event type, subject, op_id, id
// and changed-path conditions are SQL lookups through their indexes (the
// last two from schema 3: a reader of an older database scans for them);
// each row is then parsed and held to the whole query
// (ledger.Query.Selects), so the answer is a scan's.
func (s *Store) Find(ctx context.Context, q ledger.Query, fn func(*ledger.Entry) bool) error {
	return s.find(ctx, q, false, fn)
}

// FindNewest implements ledger.NewestFinder: Find's statement, newest
// first, read a page at a time until a row is selected.
func (s *Store) FindNewest(ctx context.Context, q ledger.Query) (*ledger.Entry, error) {
	var found *ledger.Entry
	err := s.find(ctx, q, true, func(e *ledger.Entry) bool { found = e; return false })
	return found, err
}

// find is Find, in seq order or (newest) the reverse.
func (s *Store) find(ctx context.Context, q ledger.Query, newest bool, fn func(*ledger.Entry) bool) error {
	// A deferred opening is read first: the statement depends on the
	// schema's version (s.schema), which it reads.
	s.mu.Lock()
	err := s.settle(ctx)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	sql := `SELECT seq, line FROM cp_entries WHERE ledger = $1 AND seq >= $2`
	a := new(args).text(s.opts.Name).bigint(q.From)
	if len(q.EventTypes) > 0 {
		a.texts(q.EventTypes)
		sql += fmt.Sprintf(` AND event_type = ANY($%d)`, len(a.vals))
	}
	if q.Subject != "" {
		a.text(q.Subject)
		sql += fmt.Sprintf(` AND submission_id = $%d`, len(a.vals))
	}
	if op := q.OpID; op != "" || q.Metadata["op_id"] != "" {
		if op == "" {
			op = q.Metadata["op_id"]
		}
		a.text(op)
		sql += fmt.Sprintf(` AND op_id = $%d`, len(a.vals))
	}
	if s.schema >= lookupsSince {
		if q.ID != "" {
			// The entry at the seq the id names (the primary key), and
			// those whose id names none (the id column).
			a.text(q.ID)
			cond := fmt.Sprintf(`id = $%d`, len(a.vals))
			if seq, ok := ledger.IDSeq(q.ID); ok {
				a.bigint(seq)
				cond = fmt.Sprintf(`(seq = $%d OR %s)`, len(a.vals), cond)
			}
			sql += ` AND ` + cond
		}
		if q.Changed != "" {
			a.text(q.Changed)
			sql += fmt.Sprintf(` AND seq IN (SELECT seq FROM cp_changed WHERE ledger = $1 AND path = $%d)`, len(a.vals))
		}
	}
	order, before := "", 0
	if newest {
		// Newest first: the pages go down from the end, each below the
		// last seq read (the argument before names).
		a.bigint(math.MaxInt64)
		before = len(a.vals)
		sql += fmt.Sprintf(` AND seq < $%d`, before)
		order = " DESC"
	}
	sql += fmt.Sprintf(` ORDER BY seq%s LIMIT `, order)
	// Newest first, the answer is most often the first row: the first
	// page is a few rows, and the pages grow to page as they go down (a
	// page of a long session's lines for one row was most of the time a
	// FindNewest took).
	lim := page
	if newest {
		lim = newestFirstPage
	}
	var lines [][]byte
	for {
		lines = lines[:0]
		last := int64(-1)
		stmt := sql + strconv.Itoa(lim)
		err := s.query(ctx, "finding entries", func(pc *pgconn.PgConn) error {
			// Unnamed (each): planned for its values each time, in one
			// round trip, whatever the connection's settings (Open sets
			// none).
			return each(ctx, pc, stmt, a, func(vals [][]byte) error {
				seq, err := int8Of("seq", vals[0])
				if err != nil {
					return err
				}
				if vals[1] == nil {
					return fmt.Errorf("%w: entry %d's line is NULL", errRowFormat, seq)
				}
				lines = append(lines, bytes.Clone(vals[1]))
				last = seq
				return nil
			})
		})
		if err != nil {
			return err
		}
		for _, line := range lines {
			e, err := ledger.ParseLine(line)
			if err != nil || !q.Selects(e) {
				continue // Verify reports what does not parse
			}
			if !fn(e) {
				return nil
			}
		}
		if len(lines) < lim {
			return nil
		}
		if newest {
			a.vals[before-1] = binary.BigEndian.AppendUint64(nil, uint64(last))
			lim = min(lim*16, page)
		} else {
			a.vals[1] = binary.BigEndian.AppendUint64(nil, uint64(last+1))
		}
	}
}

// Append implements ledger.Store.Append: one transaction per batch, the
// head row locked for it, acknowledged only after the commit.
func (s *Store) Append(ctx context.Context, drafts []ledger.Draft) ([]ledger.Entry, error) {
	if !s.opts.Writable {
		return nil, ledger.Errorf("INTERNAL", "ledger %s opened read-only", s.opts.Name)
	}
	genesis := len(drafts) > 0 && drafts[0].EventType == "GENESIS"
	var entries []ledger.Entry
	var encErr error
	var ckpt []byte
	err := s.locked(ctx, func(tx pgx.Tx, tree *ledger.Tree, stored []byte) error {
		if genesis && tree.Size != 0 {
			return ledger.Errorf("LEDGER_NOT_EMPTY", "ledger %s already holds %d entries; GENESIS opens an empty ledger", s.opts.Name, tree.Size)
		}
		hr := txHashes(ctx, tx, s.opts.Name)
		if k := s.opts.Ledger.Checkpoint; k != nil {
			// An empty ledger has no checkpoint to keep: its first append
			// makes the first one.
			if err := k.CheckStored(stored, s.where(), s.opts.Name, tree.Size, genesis || tree.Size == 0, rootAt(tree, hr)); err != nil {
				return err
			}
		}
		if len(drafts) == 0 {
			return errReady // an empty batch: it could proceed; nothing to write
		}
		old := tlog.StoredHashCount(tree.Size)
		b, err := tree.Build(drafts, s.opts.Ledger)
		if len(b.Entries) == 0 {
			return err
		}
		entries, encErr = b.Entries, err
		rows := make([][]any, len(b.Entries))
		var changed [][]any
		for i := range b.Entries {
			e := &b.Entries[i]
			rows[i], changed = s.entryRow(e, b.Lines[i], changed)
		}
		if err := copyEntries(ctx, tx, rows, changed); err != nil {
			return err
		}
		hrows := make([][]any, len(b.Hashes))
		for i, h := range b.Hashes {
			hrows[i] = []any{s.opts.Name, old + int64(i), h[:]}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cp_hashes"}, []string{"ledger", "idx", "hash"}, pgx.CopyFromRows(hrows)); err != nil {
			return err
		}
		if k := s.opts.Ledger.Checkpoint; k != nil {
			if ckpt, err = (ledger.Checkpoint{Origin: k.Origin, Size: tree.Size, Root: tree.Root()}).Sign(k.Signer); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE cp_ledgers SET size = $2, head = $3, checkpoint = COALESCE($4, checkpoint) WHERE name = $1`, s.opts.Name, tree.Size, tree.Head, ckpt)
		return err
	})
	if errors.Is(err, errReady) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if ckpt != nil {
		if err := s.keepOutside(ckpt); err != nil {
			return entries, err
		}
	}
	return entries, encErr
}

// testTracer, when set (by tests), traces the connection and its queries.
var testTracer pgx.QueryTracer

// beforeCommit, when set (by tests), runs just before a commit.
var beforeCommit func()

// errReady ends the transaction of an empty batch: rolled back, not an
// error.
var errReady = errors.New("ready")

// rootAt returns the tree's root at a size up to tree.Size.
func rootAt(tree *ledger.Tree, hr tlog.HashReader) func(int64) (tlog.Hash, error) {
	return func(size int64) (tlog.Hash, error) {
		if size == tree.Size {
			return tree.Root(), nil
		}
		return tlog.TreeHash(size, hr)
	}
}

// locked runs fn in a transaction holding the ledger's head row (created
// if missing): the database serializes every writer of the ledger, on any
// machine, here. fn gets the tree as the head row and stored hashes say,
// its last entry re-hashed and checked against both, and the latest stored
// checkpoint. The transaction commits when fn returns nil.
func (s *Store) locked(ctx context.Context, fn func(tx pgx.Tx, tree *ledger.Tree, stored []byte) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.settle(ctx); err != nil {
		return err
	}
	name := s.opts.Name
	if s.conn == nil {
		return ledger.Errorf("INTERNAL", "ledger %s opened to read only (neither Writable nor with a checkpoint key): it writes nothing", name)
	}
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		return dbErr(name, "beginning a transaction", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d; %s`, s.opts.Ledger.LockTimeout.Milliseconds(), localSettings)); err != nil {
		return dbErr(name, "setting the lock timeout", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO cp_ledgers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return lockErr(name, s.opts.Ledger.LockTimeout, err)
	}
	var size int64
	var head string
	var dbCkpt []byte
	var moved *string
	if err := tx.QueryRow(ctx, `SELECT size, head, checkpoint, moved FROM cp_ledgers WHERE name = $1 FOR UPDATE`, name).Scan(&size, &head, &dbCkpt, &moved); err != nil {
		return lockErr(name, s.opts.Ledger.LockTimeout, err)
	}
	if moved != nil {
		return ledger.Errorf("LEDGER_MOVED", "ledger %s was moved to the %s store (cp-ledger migrate): nothing written; run again (tier.json names where the ledger is now)", name, *moved)
	}
	hr := txHashes(ctx, tx, name)
	if size > 0 {
		// The new entries chain to the last one: re-hash it rather than
		// trust the head row, and check the tree agrees.
		var line []byte
		err := tx.QueryRow(ctx, `SELECT line FROM cp_entries WHERE ledger = $1 AND seq = $2`, name, size-1).Scan(&line)
		if errors.Is(err, pgx.ErrNoRows) {
			return ledger.Errorf("LEDGER_INVALID", "ledger %s: entry %d, its head, is missing: rows were deleted; refusing to append (run cp-ledger verify)", name, size-1)
		} else if err != nil {
			return dbErr(name, "reading its head", err)
		}
		leaf, err := ledger.LeafOf(line, size-1)
		if err != nil {
			return err
		}
		hs, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, size-1)})
		if err != nil {
			return err
		}
		if hs[0] != leaf || hex.EncodeToString(leaf[:]) != head {
			return ledger.Errorf("LEDGER_INVALID", "ledger %s: entry %d's hash differs from its stored leaf hash or the head row; refusing to append (run cp-ledger verify)", name, size-1)
		}
	}
	tree, err := ledger.LoadTree(size, head, hr)
	if err != nil {
		return err
	}
	stored, err := s.latest(dbCkpt)
	if err != nil {
		return err
	}
	if err := fn(tx, &tree, stored); errors.Is(err, errReady) {
		return err
	} else if err != nil {
		return dbErr(name, "appending", err)
	}
	if beforeCommit != nil {
		beforeCommit()
	}
	if err := tx.Commit(ctx); err != nil {
		// A commit whose answer was lost may or may not have happened:
		// it is not acknowledged; State and verify say which.
		return ledger.Errorf(Unavailable, "ledger %s: the commit was not acknowledged (%s): the batch is not acknowledged (check with cp-ledger state)", name, redact(err))
	}
	return nil
}

// lockErr codes a failure to take the head row: a lock timeout is
// LOCK_TIMEOUT, as with files.
func lockErr(name string, timeout time.Duration, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" { // lock_not_available
		return ledger.Errorf("LOCK_TIMEOUT", "ledger %s: its head row still locked by another writer after %s", name, timeout)
	}
	return dbErr(name, "locking its head row", err)
}

// ReadCheckpoint implements ledger.Store.ReadCheckpoint: the latest of the
// checkpoint in the database and its copy outside (CheckpointFile), the
// one of the larger tree; on a tie, the copy outside. So a tail cut from
// the database with its checkpoint rolled back is still held to the
// checkpoint outside.
func (s *Store) ReadCheckpoint() ([]byte, error) {
	var db []byte
	ctx := context.Background()
	err := s.query(ctx, "reading its checkpoint", func(pc *pgconn.PgConn) error {
		return each(ctx, pc, `SELECT checkpoint FROM cp_ledgers WHERE name = $1`, new(args).text(s.opts.Name), func(vals [][]byte) error {
			db = bytes.Clone(vals[0])
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return s.latest(db)
}

// latest returns the later of the database's checkpoint db and the copy
// outside.
func (s *Store) latest(db []byte) ([]byte, error) {
	file, err := s.readOutside()
	if err != nil {
		return db, err
	}
	return later(db, file), nil
}

// later returns the checkpoint of the larger tree of the database's db
// and the copy outside file (either nil if none); on a tie, file.
func later(db, file []byte) []byte {
	switch {
	case file == nil:
		return db
	case db == nil:
		return file
	case size(db) > size(file):
		return db
	}
	return file
}

// size is the tree size a checkpoint states, -1 if it does not parse (so
// that the other one is read, and Verify reports this one by its absence
// from the tree it names only if it is the one kept).
func size(b []byte) int64 {
	text := b
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		text = b[:i+1]
	}
	c, err := ledger.ParseCheckpoint(string(text))
	if err != nil {
		return -1
	}
	return c.Size
}

// where names the checkpoint in messages.
func (s *Store) where() string {
	if s.opts.CheckpointFile != "" {
		return s.opts.CheckpointFile
	}
	return "the checkpoint of ledger " + s.opts.Name
}

func (s *Store) readOutside() ([]byte, error) {
	if s.opts.CheckpointFile == "" {
		return nil, nil
	}
	b, err := regfile.ReadNoFollow(s.opts.CheckpointFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// keepOutside writes ckpt to CheckpointFile unless the file already
// holds a checkpoint of a larger tree (a writer that committed after
// this one and wrote first): under a lock file beside it, so two writers
// of one machine do not replace a newer checkpoint with an older one.
func (s *Store) keepOutside(ckpt []byte) error {
	path := s.opts.CheckpointFile
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return ledger.Errorf("IO_ERROR", "keeping the checkpoint in %s: %v", path, err)
	}
	lf, err := lockfile.Open(path + ".lock")
	if err != nil {
		return ledger.Errorf("IO_ERROR", "keeping the checkpoint in %s: %v", path, err)
	}
	defer lf.Close()
	if err := lockfile.Lock(context.Background(), lf, true, s.opts.Ledger.LockTimeout); err != nil {
		return ledger.Errorf("LOCK_TIMEOUT", "keeping the checkpoint in %s: %v", path, err)
	}
	defer lockfile.Unlock(lf)
	old, err := s.readOutside()
	if err != nil {
		return err
	}
	if old != nil && size(old) > size(ckpt) {
		return nil
	}
	if err := atomicfile.Write(path, ckpt, 0o644); err != nil {
		return ledger.Errorf("IO_ERROR", "keeping the checkpoint in %s: %v", path, err)
	}
	return nil
}

// Checkpoint implements ledger.Store.Checkpoint, under the head row's
// lock: stored in the database and kept outside it.
func (s *Store) Checkpoint(ctx context.Context, origin string, signers ...note.Signer) (ledger.Checkpoint, []byte, error) {
	var c ledger.Checkpoint
	var text []byte
	err := s.locked(ctx, func(tx pgx.Tx, tree *ledger.Tree, stored []byte) error {
		if k := s.opts.Ledger.Checkpoint; k != nil {
			// Never sign over a stored checkpoint the ledger contradicts;
			// a missing one may be re-anchored on request.
			if err := k.CheckStored(stored, s.where(), s.opts.Name, tree.Size, true, rootAt(tree, txHashes(ctx, tx, s.opts.Name))); err != nil {
				return err
			}
			signers = append([]note.Signer{k.Signer}, signers...)
		}
		c = ledger.Checkpoint{Origin: origin, Size: tree.Size, Root: tree.Root()}
		text = []byte(c.Text())
		if len(signers) > 0 {
			var err error
			if text, err = c.Sign(signers...); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE cp_ledgers SET checkpoint = $2 WHERE name = $1`, s.opts.Name, text)
		return err
	})
	if err != nil {
		return c, nil, err
	}
	return c, text, s.keepOutside(text)
}

// importChunk is how many rows Import copies into the database at once.
const importChunk = 8192

// Import loads the entries of src, with their stored hashes, into this
// ledger, which must be empty (no head row size, and no entry or stored
// hash row of this name) or hold a prefix of src (the tree of its entries
// is src's at that size: an import that stopped, resumed). It is one
// transaction: a failure or a crash leaves the ledger as it was. The
// entries are src's canonical lines, byte for byte, each checked on the
// way (it parses, its seq is its position, its entry_hash is its leaf
// hash), and the tree they make must have src's root. The checkpoint the
// ledger keeps (in the database or outside it) must hold for the loaded
// tree: a ledger whose rows were all deleted is a cut ledger, and a
// history that is not the one its checkpoint signed is refused
// (CHECKPOINT_INCONSISTENT). With a checkpoint key, the import signs the
// checkpoint of the loaded tree in the same transaction and keeps it
// outside the database too.
//
// The caller verifies src first (cp-ledger import and migrate do, and
// verify this ledger after): Import refuses what it meets on the way, but
// a chain it does not walk whole is Verify's to judge.
func (s *Store) Import(ctx context.Context, src ledger.Store) (ledger.State, error) {
	if !s.opts.Writable {
		return ledger.State{}, ledger.Errorf("INTERNAL", "ledger %s opened read-only", s.opts.Name)
	}
	want, err := src.State(ctx)
	if err != nil {
		return ledger.State{}, err
	}
	var got ledger.State
	var ckpt []byte
	err = s.locked(ctx, func(tx pgx.Tx, tree *ledger.Tree, stored []byte) error {
		from := tree.Size
		if from == 0 {
			var rows bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM cp_entries WHERE ledger = $1) OR EXISTS (SELECT 1 FROM cp_hashes WHERE ledger = $1)`, s.opts.Name).Scan(&rows); err != nil {
				return err
			}
			if rows {
				return ledger.Errorf("LEDGER_NOT_EMPTY", "ledger %s holds rows its head row does not account for: import loads only into an empty ledger (run cp-ledger verify)", s.opts.Name)
			}
		} else if from > want.Size {
			return ledger.Errorf("LEDGER_NOT_EMPTY", "ledger %s already holds %d entries, more than the source's %d: import loads only into an empty ledger", s.opts.Name, from, want.Size)
		} else if r, err := tlog.TreeHash(from, src); err != nil {
			return err
		} else if r != tree.Root() {
			return ledger.Errorf("LEDGER_NOT_EMPTY", "ledger %s already holds %d entries that are not the source's first %d: import loads only into an empty ledger", s.opts.Name, from, from)
		}
		head, err := s.copyLines(ctx, tx, src, from, want.Size)
		if err != nil {
			return err
		}
		if head == "" {
			head = tree.Head
		}
		if err := s.copyHashes(ctx, tx, src, from, want.Size); err != nil {
			return err
		}
		hr := txHashes(ctx, tx, s.opts.Name)
		t, err := ledger.LoadTree(want.Size, head, hr)
		if err != nil {
			return err
		}
		got = ledger.State{Size: t.Size, Head: t.Head, Root: t.Root()}
		if got.Size != want.Size || got.Head != want.Head || got.Root != want.Root {
			return ledger.Errorf("LEDGER_INVALID", "ledger %s: the imported entries make a tree of %d entries with root %x, not the source's %d with root %x: refused (run cp-ledger verify on the source)", s.opts.Name, got.Size, got.Root[:], want.Size, want.Root[:])
		}
		if err := s.holds(stored, &t, hr); err != nil {
			return err
		}
		if k := s.opts.Ledger.Checkpoint; k != nil {
			if ckpt, err = (ledger.Checkpoint{Origin: k.Origin, Size: got.Size, Root: got.Root}).Sign(k.Signer); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE cp_ledgers SET size = $2, head = $3, checkpoint = COALESCE($4, checkpoint) WHERE name = $1`, s.opts.Name, got.Size, got.Head, ckpt)
		return err
	})
	if err != nil {
		return ledger.State{}, err
	}
	s.vacuum(ctx)
	if ckpt != nil {
		if err := s.keepOutside(ckpt); err != nil {
			return got, err
		}
	}
	return got, nil
}

// vacuum runs VACUUM (ANALYZE) on the tables a bulk load (Import) filled,
// so that the first read does not have to set each new row's hint bits
// (writing every page it reads: verify at a half or a third of its
// speed), and the planner knows their size. Only what the load added is
// scanned (the visibility map skips the rest). It is an optimisation: a
// failure (a role that does not own the tables is only warned) changes
// nothing that was committed, and is not reported.
func (s *Store) vacuum(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conn.Exec(ctx, `VACUUM (ANALYZE) cp_entries, cp_hashes`, pgx.QueryExecModeSimpleProtocol)
}

// holds checks that the stored checkpoint (nil: none) holds for tree:
// with the store's key, as an append checks it (signature included);
// without one, its size and root.
func (s *Store) holds(stored []byte, tree *ledger.Tree, hr tlog.HashReader) error {
	if k := s.opts.Ledger.Checkpoint; k != nil {
		return k.CheckStored(stored, s.where(), s.opts.Name, tree.Size, true, rootAt(tree, hr))
	}
	if stored == nil {
		return nil
	}
	text := stored
	if i := bytes.Index(stored, []byte("\n\n")); i >= 0 {
		text = stored[:i+1]
	}
	c, err := ledger.ParseCheckpoint(string(text))
	if err != nil {
		return ledger.Errorf(ledger.CheckpointInvalid, "%s: %v", s.where(), err)
	}
	if c.Size > tree.Size {
		return ledger.Errorf(ledger.CheckpointInconsistent, "%s covers %d entries, the ledger %d: its rows were cut", s.where(), c.Size, tree.Size)
	}
	r, err := rootAt(tree, hr)(c.Size)
	if err != nil {
		return err
	}
	if r != c.Root {
		return ledger.Errorf(ledger.CheckpointInconsistent, "%s: the ledger's root at size %d differs from the checkpoint's: another history", s.where(), c.Size)
	}
	return nil
}

// entryCols are the columns of cp_entries an append or import writes.
var entryCols = []string{"ledger", "seq", "line", "entry_hash", "event_type", "submission_id", "op_id", "id"}

// entryRow returns the row of cp_entries for e (whose line is line) and
// appends its rows of cp_changed to changed.
func (s *Store) entryRow(e *ledger.Entry, line []byte, changed [][]any) ([]any, [][]any) {
	var op any
	if v, ok := e.Metadata["op_id"].(string); ok {
		op = v
	}
	id, paths := lookups(e)
	for _, p := range paths {
		changed = append(changed, []any{s.opts.Name, p, e.Seq})
	}
	return []any{s.opts.Name, e.Seq, line, e.EntryHash, e.EventType, e.SubmissionID, op, id}, changed
}

// copyEntries writes rows of cp_entries and their rows of cp_changed.
func copyEntries(ctx context.Context, tx pgx.Tx, rows, changed [][]any) error {
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cp_entries"}, entryCols, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	if len(changed) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"cp_changed"}, []string{"ledger", "path", "seq"}, pgx.CopyFromRows(changed))
	return err
}

// copyLines copies src's lines from seq from up to n into cp_entries
// through tx, in chunks, checking each, and returns the last one's
// entry_hash ("" when there is none).
func (s *Store) copyLines(ctx context.Context, tx pgx.Tx, src ledger.Store, from, n int64) (string, error) {
	var head string
	rows := make([][]any, 0, importChunk)
	var changed [][]any
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		err := copyEntries(ctx, tx, rows, changed)
		rows, changed = rows[:0], changed[:0]
		return err
	}
	next := from
	var lerr error
	err := src.Lines(ctx, from, n, func(seq int64, line []byte) bool {
		if seq != next {
			lerr = ledger.Errorf("LEDGER_INVALID", "the source has no entry %d (its next line is %d): refused", next, seq)
			return false
		}
		if _, err := ledger.LeafOf(line, seq); err != nil {
			lerr = err
			return false
		}
		e, err := ledger.ParseLine(line)
		if err != nil {
			lerr = ledger.Errorf("LEDGER_INVALID", "the source's entry %d does not parse: %v", seq, err)
			return false
		}
		var row []any
		row, changed = s.entryRow(e, append([]byte(nil), line...), changed)
		rows = append(rows, row)
		head = e.EntryHash
		next++
		if len(rows) == importChunk {
			lerr = flush()
		}
		return lerr == nil
	})
	if err = errors.Join(err, lerr); err != nil {
		return "", err
	}
	if next != n {
		return "", ledger.Errorf("LEDGER_INVALID", "the source holds %d entries, not the %d its state says: refused", next, n)
	}
	return head, flush()
}

// copyHashes copies src's stored hashes that a tree of n entries adds to
// one of from entries into cp_hashes through tx, in chunks.
func (s *Store) copyHashes(ctx context.Context, tx pgx.Tx, src ledger.Store, from, n int64) error {
	total := tlog.StoredHashCount(n)
	idx := make([]int64, 0, importChunk)
	rows := make([][]any, 0, importChunk)
	for lo := tlog.StoredHashCount(from); lo < total; lo += importChunk {
		idx, rows = idx[:0], rows[:0]
		for i := lo; i < min(lo+importChunk, total); i++ {
			idx = append(idx, i)
		}
		hs, err := src.ReadHashes(idx)
		if err != nil {
			return err
		}
		for i, h := range hs {
			rows = append(rows, []any{s.opts.Name, idx[i], h[:]})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"cp_hashes"}, []string{"ledger", "idx", "hash"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
	}
	return nil
}

// MoveOut closes the ledger to appends for good, as cp-ledger migrate
// --to moves it to another store: in one transaction holding the head row
// (so no append commits meanwhile), it calls fn with the ledger's state,
// and, if fn succeeds, records in the head row that the ledger moved to
// the store named to. From the commit on, every append, checkpoint and
// import is refused (LEDGER_MOVED), also by writers that were waiting for
// the row; reads go on. fn copies the ledger elsewhere through another
// connection (another Store): plain reads are not blocked by the lock.
func (s *Store) MoveOut(ctx context.Context, to string, fn func(ledger.State) error) error {
	if !s.opts.Writable {
		return ledger.Errorf("INTERNAL", "ledger %s opened read-only", s.opts.Name)
	}
	return s.locked(ctx, func(tx pgx.Tx, tree *ledger.Tree, _ []byte) error {
		if err := fn(ledger.State{Size: tree.Size, Head: tree.Head, Root: tree.Root()}); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE cp_ledgers SET moved = $2 WHERE name = $1`, s.opts.Name, to)
		return err
	})
}

// Moved returns the store the ledger moved to (MoveOut), "" if it has not.
func (s *Store) Moved(ctx context.Context) (string, error) {
	var moved string
	err := s.query(ctx, "reading its head row", func(pc *pgconn.PgConn) error {
		return each(ctx, pc, `SELECT moved FROM cp_ledgers WHERE name = $1`, new(args).text(s.opts.Name), func(vals [][]byte) error {
			moved = string(vals[0]) // NULL: not moved
			return nil
		})
	})
	return moved, err
}
