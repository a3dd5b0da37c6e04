package ledger

import (
	"bytes"
	"context"
	"slices"

	"github.com/tidwall/gjson"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Store is where a ledger's entries, stored hashes and latest checkpoint
// live: the seam between the ledger's rules (what an entry is, how it is
// hashed, what a proof or checkpoint says) and its storage. It is what the
// tools that read and write ledgers need, and nothing more: a driver
// (the file store of this package, *Ledger; a database later, DESIGN.md
// §11) implements it, and proofs (ProveInclusion, ProveConsistency),
// Genesis and Verify are functions over it. The checkpoint is the store's
// too: an append with a checkpoint key publishes one in the same step. A
// tier's ledger is opened by the plane's one opener (plane.OpenLedger),
// which reads tier.json; a ledger file named by its path, by
// OpenFileStore.
//
// Contract, for every driver:
//
//   - Ordering: entries are numbered 0, 1, 2, ... in append order with no
//     gaps; each chains to the one before (previous_hash) and is leaf seq of
//     the RFC 6962 tree whose stored hashes ReadHashes serves.
//   - Durability: Append returns only after its entries (and their stored
//     hashes) are durable. A crash loses only unacknowledged entries.
//   - Concurrency: appends from any number of processes or machines are
//     serialized by the store; readers never block appends for longer than
//     a read of the state, and never see a half-written entry.
//   - Bytes: every driver stores and returns the canonical line of each
//     entry as the file store writes it, so hashes, proofs and checkpoints
//     are the same whatever the store.
type Store interface {
	// Append appends drafts in order as one durable batch and returns the
	// entries written, with the actor and clock of the store's Options. If
	// a draft cannot be encoded, the drafts before it are still appended
	// and returned with the error. A batch whose first draft is a GENESIS
	// is appended only to an empty ledger (LEDGER_NOT_EMPTY). An empty
	// batch appends nothing: it reports whether an append could proceed
	// now (the store brought in step, its checkpoint holding), for a caller
	// that must refuse before it changes other state.
	Append(ctx context.Context, drafts []Draft) ([]Entry, error)
	// State returns the size, head and root of the entries whose lines and
	// stored hashes are both complete, as one consistent view.
	State(ctx context.Context) (State, error)
	// Lines calls fn with each stored line from seq from up to, not
	// including, seq to (to < 0: to the end), without its newline, until
	// fn returns false. It reads; it checks nothing (Verify does). The
	// slice is valid only during the call.
	Lines(ctx context.Context, from, to int64, fn func(seq int64, line []byte) bool) error
	// ReadHashes returns the stored hashes at the given
	// tlog.StoredHashIndex indexes (tlog.HashReader).
	ReadHashes(indexes []int64) ([]tlog.Hash, error)
	// Find calls fn with each entry that q selects, in seq order, until
	// fn returns false. Entries that do not parse are skipped (Verify
	// reports them).
	Find(ctx context.Context, q Query, fn func(*Entry) bool) error
	// ReadCheckpoint returns the stored checkpoint, the latest one an
	// append or Checkpoint left, or nil if there is none.
	ReadCheckpoint() ([]byte, error)
	// Checkpoint computes a checkpoint of the current tree with origin,
	// signs it (with the store's checkpoint key first, when it has one,
	// then with signers) and stores it, atomically with respect to
	// appends. It returns the checkpoint and the stored text.
	Checkpoint(ctx context.Context, origin string, signers ...note.Signer) (Checkpoint, []byte, error)
	// Close releases the store.
	Close() error
}

// NewestFinder is a Store that finds the newest entry a query selects
// without reading the older ones (FindNewest).
type NewestFinder interface {
	// FindNewest returns the newest entry q selects, or nil if there is
	// none: the last entry Find would call its function with.
	FindNewest(ctx context.Context, q Query) (*Entry, error)
}

// FindNewest returns the newest entry of s that q selects, or nil:
// through s's own FindNewest when it has one, else the last entry Find
// gives.
func FindNewest(ctx context.Context, s Store, q Query) (*Entry, error) {
	if nf, ok := s.(NewestFinder); ok {
		return nf.FindNewest(ctx, q)
	}
	var last *Entry
	err := s.Find(ctx, q, func(e *Entry) bool { last = e; return true })
	return last, err
}

// Query selects entries for Store.Find. Every condition set must hold.
type Query struct {
	// EventTypes, when set, selects entries of any of these types.
	EventTypes []string
	// Subject, when set, selects entries with this submission_id. With
	// EventTypes all of a work order's lifecycle (WO_*), the file store
	// looks up those types' entries of the subject only, not every entry
	// of it (typedSubjectEvents).
	Subject string
	// OpID, when set, selects entries whose metadata.op_id is this (the
	// events of one install or rollback operation).
	OpID string
	// Metadata, when set, selects entries whose metadata[k] is the string
	// v for every k, v in it. Keys the file store indexes (op_id,
	// package_id, path: indexedMetadata) are looked up through its index;
	// others filter.
	Metadata map[string]string
	// From selects entries with seq >= From.
	From int64
	// ID, when set, selects the entry with this id (LED-...).
	ID string
	// Changed, when set, selects entries whose metadata.changed lists this
	// path (added, modified or removed: ChangedOf).
	Changed string
}

// match reports whether a line may hold an entry q selects, reading only
// the fields q names: a cheap filter before the line is parsed. On a line
// that is not valid JSON its answer means nothing, and does not matter:
// such a line does not parse, and Find skips it either way.
func (q Query) match(line []byte) bool {
	if len(q.EventTypes) == 0 && q.Subject == "" && q.OpID == "" && len(q.Metadata) == 0 && q.ID == "" && q.Changed == "" {
		return true
	}
	if q.Changed != "" && plainASCII(q.Changed) && !bytes.Contains(line, []byte(q.Changed)) {
		return false // written as is in any JSON string: the line does not hold it
	}
	r := gjson.GetManyBytes(line, "event_type", "submission_id", "metadata.op_id", "id")
	if !((len(q.EventTypes) == 0 || slices.Contains(q.EventTypes, r[0].String())) &&
		(q.Subject == "" || r[1].String() == q.Subject) &&
		(q.OpID == "" || r[2].String() == q.OpID) &&
		(q.ID == "" || r[3].String() == q.ID)) {
		return false
	}
	for k, v := range q.Metadata {
		if gjson.GetBytes(line, "metadata."+gjsonEscape(k)).String() != v {
			return false
		}
	}
	return true
}

// selects reports whether the parsed entry e is one q selects.
func (q Query) selects(e *Entry) bool {
	op, _ := e.Metadata["op_id"].(string)
	if !(e.Seq >= q.From &&
		(len(q.EventTypes) == 0 || slices.Contains(q.EventTypes, e.EventType)) &&
		(q.Subject == "" || e.SubmissionID == q.Subject) &&
		(q.OpID == "" || op == q.OpID) &&
		(q.ID == "" || e.ID == q.ID)) {
		return false
	}
	if q.Changed != "" {
		c, ok := ChangedOf(e.Metadata)
		if !ok || c.Change(q.Changed) == "" {
			return false
		}
	}
	for k, v := range q.Metadata {
		if s, ok := e.Metadata[k].(string); !ok || s != v {
			return false
		}
	}
	return true
}

// Genesis appends the GENESIS entry that opens an empty ledger; it refuses
// a ledger that already holds entries (LEDGER_NOT_EMPTY). d's metadata
// should carry parent_hash (the parent ledger's head entry_hash) and
// parent_ledger (its path relative to the plane root) for a lower tier.
func Genesis(ctx context.Context, s Store, d Draft) (Entry, error) {
	d.EventType = "GENESIS"
	es, err := s.Append(ctx, []Draft{d})
	if err != nil {
		return Entry{}, err
	}
	return es[0], nil
}

// The file store is the embedded driver.
var _ Store = (*Ledger)(nil)

// plainASCII reports whether s is printable ASCII without a quote or a
// backslash: text every JSON encoder writes unescaped.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
