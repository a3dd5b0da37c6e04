package llm

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/pkg/ledger"
)

// The caps of providers.json (plane, provider, subject) are summed over
// every LLM_RESERVED and LLM_CALL of the budget ledger. Reading them all
// on every call grows without bound (570-840 ms a call at 12,000
// entries), so the sums are carried in a tally: the settled spend per
// plane, provider and subject, and the reservations not yet settled,
// as of the ledger's first Size entries, kept beside the ledger in
// ledger/llm-tally.json. A call reads the tally and folds in only the
// entries appended since (O(new entries) and O(log n) stored hashes),
// every line of them read and checked against the ledger's tree
// (foldSince).
//
// Fail closed: the tally names the tree it was folded from (Size and the
// Merkle root of those entries). It is believed only when the ledger's
// first Size entries still hash to that root (tlog.TreeHash over the
// stored hashes, the ones verify checks the entries against): a ledger
// that was rolled back, forked or replaced, a tally that does not parse,
// is of another version or names a larger tree than the ledger holds, is
// never believed: the sums are recomputed from the whole ledger and the
// tally rewritten.
//
// Nor is a tally believed that its writer did not authenticate: the file
// carries an HMAC-SHA-256 of the tally's bytes under a key derived from the
// plane's checkpoint key (plane.MACKey), which only the plane's owner
// holds. The tree check alone would let a process that can write the
// plane's files (and not its owner's key directory) keep the size and root
// and lower the sums, and so spend past a cap. A plane without a
// checkpoint key (no plane_name) has no key to authenticate with: its caps
// are summed from the whole ledger at every call, and no tally is kept.
// recover recomputes the tally from the whole ledger every time and says
// when it disagreed.

// tallyVersion is the tally's format; another is recomputed. Version 1
// carried no MAC; version 2 was caught up through the index (Find), which
// a one-call edit of the plane's files could make miss entries.
const tallyVersion = 3

// tallyKey is the key of the tally's MAC on the plane whose budget
// ledger's tier is t: nil when the plane has no checkpoint key.
func tallyKey(t plane.Tier) ([]byte, error) { return plane.MACKey(t, "llm-tally") }

// tallyEnvelope is the tally file: the tally's JSON, and the HMAC of
// exactly those bytes (tallyMAC).
type tallyEnvelope struct {
	MAC   string          `json:"mac"`
	Tally json.RawMessage `json:"tally"`
}

// tallyMAC is the tally file's MAC of the tally's bytes b under key.
func tallyMAC(key, b []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("control-plane llm-tally v2\n"))
	m.Write(b)
	return m.Sum(nil)
}

// tallyFile is the tally beside the budget ledger.
func tallyFile(dir string) string { return filepath.Join(dir, "ledger", "llm-tally.json") }

// tally is the spend of the budget ledger's first Size entries.
type tally struct {
	Version int    `json:"version"`
	Size    int64  `json:"size"`
	Root    string `json:"root"`
	// Plane, ByProvider and BySubject are the settled spend: what the
	// LLM_CALLs charged (an LLM_CALL whose reservation is not open counts
	// too: more spend, never less).
	Plane      Spend            `json:"plane"`
	ByProvider map[string]Spend `json:"providers"`
	BySubject  map[string]Spend `json:"subjects"`
	// Pending are the reservations not settled yet, by reservation id: each
	// counts in full until its LLM_CALL comes.
	Pending map[string]*openRow `json:"open"`
}

// openRow is an unsettled reservation: what the sums and the judge of
// abandoned reservations need of its LLM_RESERVED.
type openRow struct {
	Max      Spend          `json:"max"`
	WO       string         `json:"wo,omitempty"`
	Session  string         `json:"session,omitempty"`
	Provider string         `json:"provider,omitempty"`
	Subject  string         `json:"subject,omitempty"`
	Seq      int64          `json:"seq"`
	Meta     map[string]any `json:"meta"`
	Prompts  []string       `json:"prompts,omitempty"`
}

func newTally() *tally {
	return &tally{Version: tallyVersion, ByProvider: map[string]Spend{}, BySubject: map[string]Spend{}, Pending: map[string]*openRow{}}
}

// fold takes the next LLM_RESERVED or LLM_CALL entry, in seq order. Its
// rules are ledgerSpend.add's: one fold for a tally built from nothing
// and one caught up, so the two always agree.
func (t *tally) fold(e *ledger.Entry) {
	call, actual, o := foldOpen(t.Pending, e)
	if !call {
		return
	}
	provider, subject := str(e.Metadata, "provider_id"), str(e.Metadata, "subject")
	if o != nil {
		provider, subject = o.Provider, o.Subject
	}
	t.Plane = t.Plane.add(actual)
	t.ByProvider[provider] = t.ByProvider[provider].add(actual)
	t.BySubject[subject] = t.BySubject[subject].add(actual)
}

// foldOpen takes an LLM_RESERVED or LLM_CALL entry into pending, the
// reservations open by id: a reservation opens, a call closes its own.
// For an LLM_CALL (call) it returns what the call charged and the
// reservation it closed (nil when none was open: the call counts under
// its own names).
func foldOpen(pending map[string]*openRow, e *ledger.Entry) (call bool, actual Spend, closed *openRow) {
	rid := str(e.Metadata, "reservation_id")
	if rid == "" {
		return false, Spend{}, nil
	}
	switch e.EventType {
	case EventReserved:
		var row spendRow
		row.fromReserved(e)
		pending[rid] = &openRow{Max: row.max, WO: row.wo, Session: row.session, Provider: row.provider, Subject: row.subject,
			Seq: row.seq, Meta: row.meta, Prompts: row.prompts}
	case EventCall:
		closed = pending[rid]
		delete(pending, rid)
		return true, callSpend(e), closed
	}
	return false, Spend{}, nil
}

// spend is the tally as a capSpend: its settled sums, and its open
// reservations as rows the judge can settle and a batch can add to.
func (t *tally) spend() *capSpend {
	return &capSpend{t: t, open: openRows(t.Pending)}
}

// capSpend is what the caps sum: the tally's settled spend and the rows
// of the reservations open (this batch's included).
type capSpend struct {
	t    *tally
	open *ledgerSpend
}

// ofPlane, ofProvider and ofSubject are the spend under each cap.
func (c *capSpend) ofPlane() Spend { return c.t.Plane.add(c.open.total(nil)) }

func (c *capSpend) ofProvider(id string) Spend {
	return c.t.ByProvider[id].add(c.open.total(func(r *spendRow) bool { return r.provider == id }))
}

func (c *capSpend) ofSubject(s string) Spend {
	return c.t.BySubject[s].add(c.open.total(func(r *spendRow) bool { return r.subject == s }))
}

// readTally reads the tally file; nil when there is no key to check it
// with, there is no file, it is not a regular file (a FIFO would block the
// call, holding the budget lock; a symbolic link would read another file),
// its MAC is not the key's over its bytes, or it does not parse or is of
// another version (recomputed: never an error).
func readTally(dir string, key []byte) *tally {
	b := readSealed(tallyFile(dir), key, tallyMAC)
	if b == nil {
		return nil
	}
	t := newTally()
	if err := decodeNumbers(b, t); err != nil || t.Version != tallyVersion || t.Size < 0 ||
		t.ByProvider == nil || t.BySubject == nil || !wellFormedOpen(t.Pending) {
		return nil
	}
	return t
}

// wellFormedOpen reports whether a tally's reservations open are there
// (null is not an empty set) and none of them is null.
func wellFormedOpen(pending map[string]*openRow) bool {
	if pending == nil {
		return false
	}
	for _, o := range pending {
		if o == nil {
			return false
		}
	}
	return true
}

// maxSealed is the largest tally file read: far above what the sums and
// the reservations open hold (a few hundred bytes each); a larger file is
// not believed, and recomputed.
const maxSealed = 64 << 20

// readSealed returns the tally bytes of the file at path when its MAC is
// mac's under key over them: nil when there is no key, no file, not a
// regular file, or an envelope that does not parse or authenticate.
func readSealed(path string, key []byte, mac func(key, b []byte) []byte) []byte {
	if key == nil {
		return nil
	}
	f, err := regfile.OpenFile(path, os.O_RDONLY|regfile.NoFollow, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	// Never more than maxSealed into memory (a sparse file of terabytes
	// planted there would be read whole while the budget lock is held).
	b, err := io.ReadAll(io.LimitReader(f, maxSealed+1))
	if err != nil || len(b) > maxSealed {
		return nil
	}
	var env tallyEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil
	}
	m, err := hex.DecodeString(env.MAC)
	if err != nil || !hmac.Equal(m, mac(key, env.Tally)) {
		return nil
	}
	return env.Tally
}

// decodeNumbers decodes b into v with numbers kept as json.Number (a
// reservation's metadata, as a parsed entry holds it).
func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// holds reports whether the ledger's first t.Size entries are the ones t
// was folded from: the tree they make has t's root.
func (t *tally) holds(store ledger.Store, st ledger.State) bool {
	return holdsTree(store, st, t.Size, t.Root)
}

// holdsTree reports whether the ledger's first size entries make the tree
// whose root is root (hex).
func holdsTree(store ledger.Store, st ledger.State, size int64, root string) bool {
	if size > st.Size {
		return false
	}
	var r tlog.Hash
	if size == st.Size {
		r = st.Root
	} else {
		h, err := tlog.TreeHash(size, store)
		if err != nil {
			return false
		}
		r = h
	}
	return root == hex.EncodeToString(r[:])
}

// loadTally returns the tally of the budget ledger as it is now, for a
// caller holding the budget lock: the tally file when its MAC is key's and
// the ledger still holds the entries it was folded from, caught up with
// the entries appended since; else (or when rebuild) recomputed from the
// whole ledger. It writes the tally back with its MAC (a failure to write
// is only a warning: the next call catches up from the older one); with
// no key (a plane without a checkpoint key) it neither reads nor writes
// one. disagreed says that a tally file was there and not believed, or
// (rebuild) that its sums were not the ledger's.
func loadTally(ctx context.Context, dir string, store ledger.Store, key []byte, rebuild bool, warnf func(string, ...any)) (t *tally, disagreed bool, err error) {
	st, err := store.State(ctx)
	if err != nil {
		return nil, false, err
	}
	return loadTallyAt(ctx, dir, store, st, key, rebuild, warnf)
}

// loadTallyAt is loadTally as of the ledger state st, read by a caller
// holding the budget lock.
func loadTallyAt(ctx context.Context, dir string, store ledger.Store, st ledger.State, key []byte, rebuild bool, warnf func(string, ...any)) (t *tally, disagreed bool, err error) {
	cached := readTally(dir, key)
	if cached == nil && key != nil {
		_, err := os.Lstat(tallyFile(dir))
		disagreed = err == nil // there, and not believed
	}
	if cached != nil && !cached.holds(store, st) {
		cached, disagreed = nil, true
	}
	if cached != nil && !rebuild {
		t = cached
	} else {
		t = newTally()
	}
	if err := t.catchUp(ctx, store, st, key != nil); err != nil {
		return nil, false, err
	}
	if rebuild && cached != nil {
		if err := cached.catchUp(ctx, store, st, key != nil); err != nil {
			return nil, false, err
		}
		disagreed = !sameSums(cached, t)
	}
	if key == nil {
		return t, disagreed, nil
	}
	if err := writeTally(dir, t, key); err != nil && warnf != nil {
		warnf("%s: %v: the next call sums from the older tally", tallyFile(dir), err)
	}
	return t, disagreed, nil
}

// catchUp folds the entries from t.Size up to st.Size (entries appended
// after the state was read wait for the next call); sealed, for a tally
// that will be sealed, reads every one of them checked (foldSince).
func (t *tally) catchUp(ctx context.Context, store ledger.Store, st ledger.State, sealed bool) error {
	if t.Size < st.Size {
		q := ledger.Query{EventTypes: []string{EventReserved, EventCall}, From: t.Size}
		if err := foldSince(ctx, store, q, t.Root, st, sealed, t.fold); err != nil {
			return err
		}
	}
	t.Size, t.Root = st.Size, hex.EncodeToString(st.Root[:])
	return nil
}

// foldSince calls fold with each entry q selects from q.From up to
// st.Size, in seq order. For a tally that will be sealed (sealed: the
// plane has a key), through ledger.FindChecked: every line of the range
// read and checked, and the tree they make with the first q.From entries
// (whose root is root, hex, when the tally was believed) st's tree. Find
// would let an index that leaves an entry out, or a line edited for the
// length of the call, hide spend from the sums, and the seal would keep
// the lie after the files were put back (README, cp-llm's limits).
// Without a key nothing is sealed, and the next call sums again: Find.
func foldSince(ctx context.Context, store ledger.Store, q ledger.Query, root string, st ledger.State, sealed bool, fold func(*ledger.Entry)) error {
	if !sealed {
		return foldFrom(ctx, store, q, st.Size, fold)
	}
	var from *tlog.Hash
	if root != "" {
		var h tlog.Hash
		if len(root) != 2*len(h) {
			return fmt.Errorf("a tally's root %q is not a hash", root)
		}
		if _, err := hex.Decode(h[:], []byte(root)); err != nil {
			return fmt.Errorf("a tally's root %q is not a hash", root)
		}
		// (Never met: a tally whose root does not parse is not believed
		// by holdsTree, and is begun from nothing.)
		from = &h
	}
	return ledger.FindChecked(ctx, store, q, from, st, fold)
}

// foldFrom calls fold with each entry q finds below seq end, in seq
// order, from q.From: an entry before q.From is an error (an index that
// returned what was not asked).
func foldFrom(ctx context.Context, store ledger.Store, q ledger.Query, end int64, fold func(*ledger.Entry)) error {
	var ferr error
	err := store.Find(ctx, q, func(e *ledger.Entry) bool {
		if e.Seq >= end {
			return false
		}
		if e.Seq < q.From {
			ferr = fmt.Errorf("the budget ledger's index returned entry %d before %d", e.Seq, q.From)
			return false
		}
		fold(e)
		return true
	})
	if err != nil {
		return err
	}
	return ferr
}

// writeTally replaces the tally file with t and its MAC under key.
func writeTally(dir string, t *tally, key []byte) error {
	return writeSealed(tallyFile(dir), key, tallyMAC, t)
}

// writeSealed replaces the file at path with v and mac's MAC of it under
// key, atomically (a temporary file renamed over it, which replaces a
// planted link rather than following it). Not atomicfile.Write: its two
// fsyncs would be on every call, and a tally lost or torn by a crash is
// only recomputed (it names the tree it was folded from, and an older one
// is caught up).
func writeSealed(path string, key []byte, mac func(key, b []byte) []byte, v any) error {
	tb, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b, err := json.Marshal(tallyEnvelope{MAC: hex.EncodeToString(mac(key, tb)), Tally: tb})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// sameSums reports whether two tallies of the same entries agree.
func sameSums(a, b *tally) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
