package ledger

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// This file is what a Store driver of another package (a database,
// DESIGN.md §11) needs of the ledger's rules, so that it stores the very
// entries, stored hashes and checkpoints the file store does: the code
// that makes them is this package's, never a copy.

// Errorf returns an *Error with a stable code, for a driver's failures
// (for example LEDGER_UNAVAILABLE, LEDGER_INVALID).
func Errorf(code, format string, args ...any) *Error {
	return &Error{code: code, msg: fmt.Sprintf(format, args...)}
}

// Tree is the right edge of a ledger's Merkle tree: its size, its head
// entry_hash and the left siblings the next leaf needs. It is what an
// append builds on.
type Tree struct {
	Size     int64
	Head     string
	frontier [64]tlog.Hash
}

// LoadTree returns the tree of size entries whose last entry_hash is
// head, reading the O(log size) stored hashes of its right edge from r.
func LoadTree(size int64, head string, r tlog.HashReader) (Tree, error) {
	t := Tree{Size: size, Head: head}
	var idx []int64
	var levels []int
	for level := 0; size>>level > 0; level++ {
		if size>>level&1 == 1 {
			idx = append(idx, tlog.StoredHashIndex(level, size>>level-1))
			levels = append(levels, level)
		}
	}
	if len(idx) == 0 {
		return t, nil
	}
	hs, err := r.ReadHashes(idx)
	if err != nil {
		return t, err
	}
	if len(hs) != len(idx) {
		return t, Errorf("LEDGER_INVALID", "stored hashes: asked for %d, got %d", len(idx), len(hs))
	}
	for i, level := range levels {
		t.frontier[level] = hs[i]
	}
	return t, nil
}

// Root returns the tree's root hash.
func (t *Tree) Root() tlog.Hash { return frontierRoot(&t.frontier, t.Size) }

// Batch is what appending drafts to a tree adds: the entries, their
// canonical lines (each without its newline) and the stored hashes, the
// first at tlog.StoredHashCount of the tree's old size, in
// tlog.StoredHashIndex order.
type Batch struct {
	Entries []Entry
	Lines   [][]byte
	Hashes  []tlog.Hash
}

// Build makes the entries drafts append to t, as the file store's Append
// does (seq, id, timestamp, actor and auth stamp from opts, the chain and
// the hashes), and advances t past them. If a draft cannot be encoded,
// the entries before it are returned with the error.
func (t *Tree) Build(drafts []Draft, opts Options) (Batch, error) {
	buf, hbuf, entries, ends, err := build(nil, nil, &t.frontier, t.Size, t.Head, 0, drafts, opts)
	b := Batch{Entries: entries, Lines: make([][]byte, len(entries)), Hashes: make([]tlog.Hash, len(hbuf)/tlog.HashSize)}
	start := int64(0)
	for i, end := range ends {
		b.Lines[i] = buf[start : end-1 : end-1]
		start = end
	}
	for i := range b.Hashes {
		copy(b.Hashes[i][:], hbuf[i*tlog.HashSize:])
	}
	if len(entries) > 0 {
		t.Size += int64(len(entries))
		t.Head = entries[len(entries)-1].EntryHash
	}
	return b, err
}

// LeafOf parses line, the entry at position seq, and returns its leaf
// hash, refusing (LEDGER_INVALID) a line whose seq or entry_hash is not
// what it must be: how a driver re-checks the head it chains to.
func LeafOf(line []byte, seq int64) (tlog.Hash, error) { return checkedLeaf(line, seq) }

// Selects reports whether the parsed entry e is one q selects: a driver
// that narrows Find with its own indexes applies it to what they return.
func (q Query) Selects(e *Entry) bool { return q.selects(e) }
