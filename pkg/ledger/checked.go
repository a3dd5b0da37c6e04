package ledger

import (
	"context"
	"encoding/hex"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// FindChecked is Find for a caller that keeps what it reads past the
// reading: a sum sealed with the tree it was summed from (cp-llm's
// tallies), which a later call believes without reading those entries
// again. Find answers from the index when it can, and where the index
// proves wrong from a scan that checks nothing: an index that leaves an
// entry out, or a line edited in place for the length of one call, hides
// that entry from the answer, and a sum sealed from it keeps the lie after
// the files are put back.
//
// FindChecked reads every line from seq q.From up to st.Size instead, not
// only those an index lists, and checks each as Verify does: its seq is
// its position and its entry_hash its content's. Their leaves, added to
// the tree of the first q.From entries (its frontier, from the stored
// hashes: when fromRoot is not nil they must make that root), must make
// st.Root. So what fn was given is exactly the entries of the tree st
// names: an edit of a line shows as LEDGER_INVALID, and an edit of the
// stored hashes to match makes a tree whose root is not the ledger's once
// the files are put back (a sum sealed with it is not believed then).
//
// fn is called with each entry q selects, in seq order; on an error it
// may have been called for some, and the caller discards what it made of
// them. A line that does not parse is LEDGER_INVALID, not skipped. It
// costs a read and a hash of every line of the range, and O(log n) stored
// hashes: O(entries appended since q.From), whatever the index holds.
func FindChecked(ctx context.Context, s Store, q Query, fromRoot *tlog.Hash, st State, fn func(*Entry)) error {
	from := q.From
	if from < 0 || from > st.Size {
		return errorf("LEDGER_INVALID", "a checked read from entry %d of a ledger of %d", from, st.Size)
	}
	var f [64]tlog.Hash
	if err := readFrontier(s, from, &f); err != nil {
		return err
	}
	if fromRoot != nil && frontierRoot(&f, from) != *fromRoot {
		return errorf("LEDGER_INVALID", "the ledger's first %d entries no longer make the tree they made (run cp-ledger verify)", from)
	}
	next := from
	var ferr error
	var hbuf []byte
	err := s.Lines(ctx, from, st.Size, func(seq int64, line []byte) bool {
		if seq != next {
			ferr = errorf("LEDGER_INVALID", "entry %d missing: the next line read is entry %d (run cp-ledger verify)", next, seq)
			return false
		}
		leaf, vals, canonical, err := checkedLeafVals(line, seq)
		if err != nil {
			ferr = err
			return false
		}
		hbuf = appendStoredHashes(hbuf[:0], &f, seq, leaf)
		next++
		if canonical && !q.matchVals(line, &vals) || !canonical && !q.match(line) {
			return true
		}
		e, err := ParseLine(line)
		if err != nil {
			ferr = errorf("LEDGER_INVALID", "entry %d unreadable: %v (run cp-ledger verify)", seq, err)
			return false
		}
		if q.selects(e) {
			fn(e)
		}
		return true
	})
	if err != nil {
		return err
	}
	if ferr != nil {
		return ferr
	}
	if next != st.Size {
		return errorf("LEDGER_INVALID", "the ledger holds %d entries, not the %d its state counts (run cp-ledger verify)", next, st.Size)
	}
	if r := frontierRoot(&f, st.Size); r != st.Root {
		return errorf("LEDGER_INVALID", "entries %d to %d do not make the ledger's tree (root %s, stored %s): a line or a stored hash was changed (run cp-ledger verify)",
			from, st.Size-1, hex.EncodeToString(r[:8]), hex.EncodeToString(st.Root[:8]))
	}
	return nil
}

// readFrontier reads into f the left siblings an append of leaf n needs:
// for each set bit L of n, the last complete level-L node of the first n
// leaves. O(log n) stored hashes.
func readFrontier(r tlog.HashReader, n int64, f *[64]tlog.Hash) error {
	*f = [64]tlog.Hash{}
	var idx []int64
	var levels []int
	for level := 0; n>>level > 0; level++ {
		if n>>level&1 == 1 {
			idx = append(idx, tlog.StoredHashIndex(level, n>>level-1))
			levels = append(levels, level)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	hs, err := r.ReadHashes(idx)
	if err != nil {
		return err
	}
	for i, level := range levels {
		f[level] = hs[i]
	}
	return nil
}

// matchVals is match for a line in canonical form whose values' spans
// scanEntry found: a query by event types and subject only (a tally's)
// compares them as they are, without reading the line again.
func (q Query) matchVals(line []byte, vals *[nFields]span) bool {
	if q.OpID != "" || len(q.Metadata) > 0 || q.ID != "" || q.Changed != "" {
		return q.match(line)
	}
	et, ok1 := rawBytes(line[vals[fEventType].a:vals[fEventType].b])
	sub, ok2 := rawBytes(line[vals[fSubmission].a:vals[fSubmission].b])
	if !ok1 || !ok2 {
		return q.match(line) // escapes: read as JSON
	}
	if len(q.EventTypes) > 0 && !slices.ContainsFunc(q.EventTypes, func(t string) bool { return t == string(et) }) {
		return false
	}
	return q.Subject == "" || q.Subject == string(sub)
}
