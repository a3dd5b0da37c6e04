package llm

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
)

// A work-order tally begun from nothing (its work order's first call, or a
// tally lost or not believed) reads the ledger from the work order's
// first WO_CREATED: none of its entries comes before it. Where that is
// must not be a lookup's answer: the index can leave the first WO_CREATED
// out, a line renamed for one call can make a scan pass it, and a copy of
// it appended later (entries carry no MAC: a process that can write the
// plane's files can append one, and the next append's checkpoint signs
// it) would then be taken for it, and the tally would seal the work
// order's sums without every call before the copy (session 34's attack,
// TestAttack34CreatedHiddenSecondCreated).
//
// So the first WO_CREATED of every work order is carried in a sealed
// file of its own beside the ledger, ledger/llm-created.json, as of the
// ledger's first Size entries and their root, built and caught up only
// through checked reads (ledger.FindChecked), as the tallies are. It is
// read and caught up only when a work-order tally is begun from nothing,
// so its cost (the plane's entries since the last such tally, and a file
// that grows by one work order's id and seq per work order) is paid once
// per work order, not per call. It is believed as the tallies are: its
// MAC (under the work-order tallies' key, with a label of its own), its
// version and the ledger's tree; anything else is rebuilt from the whole
// ledger. recover rebuilds it too.

// createdVersion is the format of llm-created.json; another is rebuilt.
const createdVersion = 1

// createdFile is the first WO_CREATED of each work order, beside the
// budget ledger in dir.
func createdFile(dir string) string { return filepath.Join(dir, "ledger", "llm-created.json") }

// createdMAC is llm-created.json's MAC of the bytes b under the
// work-order tallies' key.
func createdMAC(key, b []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("control-plane llm-created v1\n"))
	m.Write(b)
	return m.Sum(nil)
}

// created is the seq of the first WO_CREATED of each work order among the
// budget ledger's first Size entries.
type created struct {
	Version int              `json:"version"`
	Size    int64            `json:"size"`
	Root    string           `json:"root"`
	First   map[string]int64 `json:"first"`
}

func newCreated() *created { return &created{Version: createdVersion, First: map[string]int64{}} }

// fold takes the ledger's next WO_CREATED entry, in seq order.
func (c *created) fold(e *ledger.Entry) {
	if _, ok := c.First[e.SubmissionID]; !ok && e.EventType == workorder.EventCreated && workorder.ValidID(e.SubmissionID) {
		c.First[e.SubmissionID] = e.Seq
	}
}

// readCreated reads llm-created.json: nil when there is no key, no file,
// not a regular file, a MAC that is not key's, or a file that does not
// parse or is of another version (rebuilt: never an error).
func readCreated(dir string, key []byte) *created {
	b := readSealed(createdFile(dir), key, createdMAC)
	if b == nil {
		return nil
	}
	c := newCreated()
	if decodeNumbers(b, c) != nil || c.Version != createdVersion || c.Size < 0 || c.First == nil {
		return nil
	}
	return c
}

// loadCreated returns the first WO_CREATED of each work order as of the
// ledger state st, for a caller holding the budget lock: the file when
// believed, caught up checked; else rebuilt from a checked read of the
// whole ledger. It writes the file back (a failure is only a warning:
// the next tally begun from nothing catches up from the older one).
func loadCreated(ctx context.Context, dir string, store ledger.Store, st ledger.State, key []byte, warnf func(string, ...any)) (*created, error) {
	c := readCreated(dir, key)
	if c != nil && !holdsTree(store, st, c.Size, c.Root) {
		c = nil
	}
	if c == nil {
		c = newCreated()
	}
	if err := c.catchUp(ctx, store, st); err != nil {
		return nil, err
	}
	if err := writeSealed(createdFile(dir), key, createdMAC, c); err != nil && warnf != nil {
		warnf("%s: %v: the next work order's first tally reads from the older one", createdFile(dir), err)
	}
	return c, nil
}

// catchUp folds the WO_CREATED entries from c.Size up to st.Size, every
// line between read checked (foldSince).
func (c *created) catchUp(ctx context.Context, store ledger.Store, st ledger.State) error {
	if c.Size < st.Size {
		q := ledger.Query{EventTypes: []string{workorder.EventCreated}, From: c.Size}
		if err := foldSince(ctx, store, q, c.Root, st, true, c.fold); err != nil {
			return err
		}
	}
	c.Size, c.Root = st.Size, hex.EncodeToString(st.Root[:])
	return nil
}
