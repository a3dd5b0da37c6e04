package plane

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/ledger"
)

// AnchorEvent is the event type that anchors a lower tier's ledger in its
// parent's (DESIGN.md §13): an HO1 session's ledger in HO2's, HO2's in
// HO3's. The entry's metadata is Anchor's.
const AnchorEvent = "CHECKPOINT_ANCHORED"

// The codes of a lower-tier ledger that contradicts one of its anchors
// (AnchorChain's refusals, G6's findings), and of an anchor that does not
// say what it must.
const (
	// CodeLedgerTruncated: the ledger holds fewer entries than an anchor
	// of it recorded (cut, or gone entirely).
	CodeLedgerTruncated = "LEDGER_TRUNCATED"
	// CodeAnchorMismatch: the ledger's root at the anchored size is not
	// the anchored root (its history before the anchor was rewritten).
	CodeAnchorMismatch = "ANCHOR_MISMATCH"
	// CodeAnchorInvalid: a CHECKPOINT_ANCHORED entry whose metadata is
	// missing a field, names no lower-tier ledger of its parent, or whose
	// checkpoint note disagrees with it.
	CodeAnchorInvalid = "ANCHOR_INVALID"
)

// Anchor is what a CHECKPOINT_ANCHORED entry states: the child ledger's
// checkpoint at the time, kept whole (the signed note) in the parent's
// ledger, whose own checkpoints cover it. Its JSON is the entry's
// metadata.
type Anchor struct {
	// Path is the child ledger, relative to the HO3 root:
	// planes/ho2/ledger/workorder.jsonl (in HO3's ledger),
	// planes/ho1/sessions/<SES>/ledger/session.jsonl or HO1's own
	// planes/ho1/ledger/worker.jsonl (in HO2's). Under
	// the key "path", which the file store indexes: the last anchor of
	// a ledger is found without reading the parent's others.
	Path string `json:"path"`
	// Origin is the child checkpoint's origin line.
	Origin string `json:"origin"`
	// TreeSize and RootHash (lowercase hex) are the checkpoint's.
	TreeSize int64  `json:"tree_size"`
	RootHash string `json:"root_hash"`
	// Checkpoint is the child's checkpoint note as stored (signed with
	// the plane's key when the plane has a plane_name), and
	// CheckpointHash its "sha256:" hash.
	Checkpoint     string `json:"checkpoint"`
	CheckpointHash string `json:"checkpoint_hash"`
	// WorkOrderID and SessionID are the work-order step that anchored,
	// when known.
	WorkOrderID string `json:"wo_id,omitempty"`
	SessionID   string `json:"session_id,omitempty"`

	// Seq is the anchor entry's seq in its parent's ledger (not in the
	// metadata).
	Seq int64 `json:"-"`
}

// workerLedger is HO1's own ledger, relative to the HO3 root (the
// canonical layout's).
const workerLedger = "planes/ho1/ledger/worker.jsonl"

// sessionLedger is the ledger of HO1 session id, relative to the HO3
// root (DESIGN.md §13).
func sessionLedger(id string) string {
	return "planes/ho1/sessions/" + id + "/ledger/session.jsonl"
}

// AnchorChain anchors the lower tiers' ledgers in their parents', child
// first: with sessionID, the ledger of HO1 session sessionID in HO2's
// ledger, then HO1's own ledger (worker.jsonl) in HO2's, then HO2's
// ledger in HO3's. Every work-order step that writes
// calls it after its own entry, and before it acts (so that a lower tier
// whose ledger contradicts an anchor stops the step): woID and sessionID
// are stamped on the anchors it writes (either may be ""; a sessionID is
// checked before a path is built from it). It is OpenChain, Chain.Anchor
// and Chain.Close: a step that also writes to these ledgers opens the
// chain once and anchors through it before and after.
//
// For each link it takes the child's latest checkpoint (the stored one
// when it states the ledger's current size and root and its signature
// verifies by a key trusted for checkpoints, else a new one signed with
// the plane's key, as cp-ledger checkpoint makes) and appends
// CHECKPOINT_ANCHORED to the parent (Anchor's fields). Before that it
// checks the child against the link's last anchor: a child holding fewer
// entries than anchored is LEDGER_TRUNCATED, one whose root at the
// anchored size differs is ANCHOR_MISMATCH, and nothing is written.
//
// It is idempotent: a child that did not grow since its last anchor (or
// an empty one) is not anchored again. Two processes anchoring at once
// each write a valid anchor (or find the other's): each states a
// checkpoint the child really had, so both verify; only a duplicate anchor
// of the same size can result. It returns the anchors written, oldest
// first.
func AnchorChain(ctx context.Context, root string, actor Actor, woID, sessionID string) ([]ledger.Entry, error) {
	c, err := OpenChain(root, actor, woID, sessionID)
	if err != nil {
		return nil, err
	}
	out, err := c.Anchor(ctx)
	if cerr := c.Close(); err == nil && cerr != nil {
		return out, cerr
	}
	return out, err
}

// Chain is the anchor chain of one work-order step, its ledgers opened
// once for the whole step: HO3's and HO2's (for appending) and, with a
// session, the session's. A step anchors through it before it acts and
// after its entry (Anchor), and appends its own entries through the same
// stores (HO2, Session), so that each ledger is opened, and its stored
// checkpoint's signature checked, once per step rather than once per
// anchor: a checkpoint the step itself wrote, or already accepted, is not
// verified again.
type Chain struct {
	root      string
	actor     Actor
	woID, sid string
	t1, t2    Tier
	worker    ledger.Store // HO1's own ledger at its canonical path; nil when missing
	ho3       ledger.Store
	ho2       ledger.Store // HO2's ledger at its canonical path (the child)
	ho2Own    ledger.Store // HO2's ledger where tier.json says (the parent of sessions); ho2 when the same
	ses       ledger.Store // nil: no session, or its ledger is missing
	sesRel    string
	// last holds each child's last anchor as this chain found or wrote
	// it (nil: none), so that the anchors after a step do not look up
	// again what the anchors before it found, under the same lock.
	last map[string]*Anchor
	// states holds each parent ledger's state as one pass of anchors read
	// it (HO2 is the parent of two links), to start the search for its
	// last anchors; dropped when the pass appends to it, and at the next
	// pass. A child's state is always read afresh (link).
	states map[ledger.Store]ledger.State
	// read holds each child's state as the last pass read it (Read).
	read map[ledger.Store]ledger.State
}

// OpenChain opens the anchor chain of a step under work order woID (may
// be "") within session sessionID (may be ""): HO3's and HO2's ledgers
// for appending and, with a session whose ledger exists, the session's
// (a missing one is AnchorChain's to judge: LEDGER_TRUNCATED when an
// anchor names it, SESSION_NOT_FOUND otherwise). Close it.
func OpenChain(root string, actor Actor, woID, sessionID string) (_ *Chain, err error) {
	c := &Chain{root: root, actor: actor, woID: woID, sid: sessionID, last: map[string]*Anchor{}, read: map[ledger.Store]ledger.State{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	ho1, ho2 := filepath.Join(root, "planes", "ho1"), filepath.Join(root, "planes", "ho2")
	if sessionID != "" && !ValidSessionID(sessionID) {
		return nil, BadArg("USAGE", "session id %q: want SES-YYYYMMDD-<8 hex>", sessionID)
	}
	if c.t1, err = ReadTier(ho1); err != nil {
		return nil, err
	}
	// HO1's own ledger, as HO2's below: at the canonical layout's path.
	// Only read (and a checkpoint signed when its stored one does not
	// state it): the step does not append to it.
	wp := filepath.Join(root, filepath.FromSlash(workerLedger))
	if c.t1.Postgres() && filepath.Clean(wp) == filepath.Clean(LedgerPath(ho1, c.t1)) {
		if c.worker, err = OpenTierLedger(ho1, c.t1, wp, ForCheckpoint, actor); err != nil {
			return nil, err
		}
	} else if _, werr := os.Lstat(wp); werr == nil {
		if c.worker, err = OpenTierLedger(ho1, c.t1, wp, ForCheckpoint, actor); err != nil {
			return nil, err
		}
	} else if !errors.Is(werr, fs.ErrNotExist) {
		return nil, werr
	}
	if sessionID != "" {
		c.sesRel = sessionLedger(sessionID)
		p := filepath.Join(root, filepath.FromSlash(c.sesRel))
		if _, serr := os.Lstat(p); serr == nil {
			if c.ses, err = OpenTierLedger(ho1, c.t1, p, ForAppend, actor); err != nil {
				return nil, err
			}
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return nil, serr
		}
	}
	if c.t2, err = ReadTier(ho2); err != nil {
		return nil, err
	}
	// The canonical layout's path, as G6 judges it, whatever tier.json
	// says (a ledger_path moved elsewhere is G6's TIER_MISMATCH).
	canon := filepath.Join(root, filepath.FromSlash(Layout[1].Dir+"/"+Layout[1].Ledger))
	if c.ho2, err = OpenTierLedger(ho2, c.t2, canon, ForAppend, actor); err != nil {
		return nil, err
	}
	c.ho2Own = c.ho2
	if own := LedgerPath(ho2, c.t2); filepath.Clean(own) != filepath.Clean(canon) {
		if c.ho2Own, err = OpenTierLedger(ho2, c.t2, own, ForAppend, actor); err != nil {
			return nil, err
		}
	}
	if c.ho3, _, err = OpenLedger(root, ForAppend, actor); err != nil {
		return nil, err
	}
	return c, nil
}

// Session returns the session's ledger, opened for appending (nil
// without a session, or when its ledger did not exist at OpenChain).
func (c *Chain) Session() ledger.Store { return c.ses }

// SessionRead returns the session ledger's state as the last anchor
// pass read it (ok false: not read). It may be older than the ledger
// (an append outside the work-order lock since): a place to start a
// search from, not what the ledger holds.
func (c *Chain) SessionRead() (st ledger.State, ok bool) {
	if c.ses == nil {
		return ledger.State{}, false
	}
	st, ok = c.read[c.ses]
	return st, ok
}

// HO2 returns HO2's ledger where its tier.json says, opened for
// appending.
func (c *Chain) HO2() ledger.Store { return c.ho2Own }

// HO3 returns HO3's ledger, opened for appending.
func (c *Chain) HO3() ledger.Store { return c.ho3 }

// Anchor anchors the session (if any) in HO2's ledger, then HO1's own
// ledger in HO2's, then HO2's in HO3's, as AnchorChain describes: what a
// step runs before it acts.
func (c *Chain) Anchor(ctx context.Context) ([]ledger.Entry, error) {
	return c.anchor(ctx, true)
}

// AnchorSteps anchors what a step within the session changed, after it:
// the session's ledger in HO2's, then HO2's (which now holds that anchor)
// in HO3's, each checked against its last anchor first. HO1's own ledger,
// which such a step does not write, was checked by Anchor before the step,
// and what was appended to it meanwhile is anchored by the next step.
func (c *Chain) AnchorSteps(ctx context.Context) ([]ledger.Entry, error) {
	return c.anchor(ctx, false)
}

func (c *Chain) anchor(ctx context.Context, worker bool) ([]ledger.Entry, error) {
	c.states = map[ledger.Store]ledger.State{}
	var out []ledger.Entry
	add := func(e *ledger.Entry, err error) error {
		if e != nil {
			out = append(out, *e)
		}
		return err
	}
	ho1, ho2 := filepath.Join(c.root, "planes", "ho1"), filepath.Join(c.root, "planes", "ho2")
	a := Anchor{WorkOrderID: c.woID, SessionID: c.sid}
	if c.sid != "" {
		if err := add(c.link(ctx, c.ho2Own, c.t2, c.ses, ho1, c.t1, c.sesRel, a)); err != nil {
			return out, err
		}
	}
	// HO1's own ledger: anchored when it grew (a worker's appends to
	// it, within a work order or not), checked against its last anchor
	// at every step. A plane without one (never bootstrapped so) has
	// nothing to anchor, unless an anchor says it had.
	if worker {
		if err := add(c.link(ctx, c.ho2Own, c.t2, c.worker, ho1, c.t1, workerLedger, Anchor{WorkOrderID: c.woID})); err != nil {
			return out, err
		}
	}
	rel := Layout[1].Dir + "/" + Layout[1].Ledger
	err := add(c.link(ctx, c.ho3, Tier{Tier: "HO3"}, c.ho2, ho2, c.t2, rel, a))
	return out, err
}

// link is anchor with the chain's caches of last anchors and states.
func (c *Chain) link(ctx context.Context, ps ledger.Store, pt Tier, cs ledger.Store, dir string, t Tier, rel string, a Anchor) (*ledger.Entry, error) {
	last, ok := c.last[rel]
	if !ok {
		pst, err := c.state(ctx, ps)
		if err != nil {
			return nil, err
		}
		if last, err = lastAnchorBelow(ctx, ps, rel, pst.Size); err != nil {
			return nil, err
		}
		c.last[rel] = last
	}
	// The child's state is read now, after its last anchor was found,
	// never from the pass's cache: another process may have grown the
	// child and anchored it since the cache read it, and a size older
	// than the anchor would read as a cut history.
	var state func(context.Context) (ledger.State, error)
	if cs != nil {
		state = func(ctx context.Context) (ledger.State, error) {
			st, err := cs.State(ctx)
			if err == nil {
				c.read[cs] = st
			}
			return st, err
		}
	}
	e, wrote, err := anchor(ctx, ps, pt, last, cs, state, dir, t, rel, filepath.Join(c.root, filepath.FromSlash(rel)), a)
	if wrote != nil {
		c.last[rel] = wrote
		delete(c.states, ps)
	}
	return e, err
}

// state is s.State, read once a pass.
func (c *Chain) state(ctx context.Context, s ledger.Store) (ledger.State, error) {
	if st, ok := c.states[s]; ok {
		return st, nil
	}
	st, err := s.State(ctx)
	if err == nil {
		c.states[s] = st
	}
	return st, err
}

// Close closes the chain's ledgers.
func (c *Chain) Close() error {
	var errs []error
	for _, s := range []ledger.Store{c.ses, c.worker, c.ho3} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	if c.ho2Own != nil && c.ho2Own != c.ho2 {
		errs = append(errs, c.ho2Own.Close())
	}
	if c.ho2 != nil {
		errs = append(errs, c.ho2.Close())
	}
	return errors.Join(errs...)
}

// anchor anchors the child ledger cs (nil: missing) at rel (relative to
// the HO3 root; childPath on disk), of the tier t whose directory is dir,
// in the parent ledger ps of tier pt, whose last anchor of it is last
// (nil: none). It returns the entry and the anchor it wrote, nil when
// nothing needed anchoring.
func anchor(ctx context.Context, ps ledger.Store, pt Tier, last *Anchor, cs ledger.Store, state func(context.Context) (ledger.State, error), dir string, t Tier, rel, childPath string, a Anchor) (*ledger.Entry, *Anchor, error) {
	if cs == nil {
		if last != nil {
			return nil, nil, refuse(CodeLedgerTruncated, "%s is missing, but %s seq %d anchored it at size %d: a lower tier's history was cut",
				rel, parentName(pt), last.Seq, last.TreeSize)
		}
		if rel == workerLedger {
			return nil, nil, nil // a plane made without HO1's own ledger: nothing to anchor
		}
		return nil, nil, refuse("SESSION_NOT_FOUND", "session %s has no ledger (%s): nothing to anchor", a.SessionID, rel)
	}
	st, err := state(ctx)
	if err != nil {
		return nil, nil, err
	}
	if last != nil {
		if err := checkAnchor(cs, st, *last, parentName(pt)); err != nil {
			return nil, nil, err
		}
	}
	if st.Size == 0 || last != nil && last.TreeSize >= st.Size {
		// Empty, or anchored already at this size (the check above held:
		// the same tree); nothing to sign or verify.
		return nil, nil, nil
	}
	c, note, err := latestCheckpoint(ctx, cs, st, dir, t, childPath)
	if err != nil {
		return nil, nil, err
	}
	if last != nil && last.TreeSize >= c.Size {
		return nil, nil, nil // anchored already, at this size or a later one
	}
	a.Path, a.Origin, a.TreeSize = rel, c.Origin, c.Size
	a.RootHash = hex.EncodeToString(c.Root[:])
	a.Checkpoint, a.CheckpointHash = string(note), SHA256(note)
	meta, err := a.metadata()
	if err != nil {
		return nil, nil, err
	}
	meta["_tier"] = pt.Tier
	es, err := ps.Append(ctx, []ledger.Draft{{EventType: AnchorEvent, SubmissionID: rel, Decision: "ANCHORED",
		Reason: fmt.Sprintf("%s at size %d", rel, c.Size), Metadata: meta}})
	if err != nil {
		return nil, nil, err
	}
	a.Seq = es[0].Seq
	return &es[0], &a, nil
}

func parentName(t Tier) string { return t.Tier + "'s ledger" }

// latestCheckpoint returns the child's checkpoint at its current state st:
// the stored one when it states st and is signed as the plane signs (by a
// key trusted for checkpoints; unsigned on a plane without a plane_name),
// else a new one (Store.Checkpoint, which refuses a child that contradicts
// its stored checkpoint).
func latestCheckpoint(ctx context.Context, cs ledger.Store, st ledger.State, dir string, t Tier, childPath string) (ledger.Checkpoint, []byte, error) {
	if b, err := cs.ReadCheckpoint(); err == nil && b != nil {
		// One this process wrote or accepted (the step's own append) is
		// authentic: only what it states is read.
		if w, ok := cs.(interface{ Accepted([]byte) bool }); ok && w.Accepted(b) {
			if c, err := ledger.ParseCheckpoint(noteBody(b)); err == nil && c.Size == st.Size && c.Root == st.Root {
				return c, b, nil
			}
		}
		if c, ok := storedCheckpoint(b, dir, t); ok && c.Size == st.Size && c.Root == st.Root {
			return c, b, nil
		}
	}
	return cs.Checkpoint(ctx, Origin(t, childPath))
}

// storedCheckpoint opens a stored checkpoint as G6 would accept it.
func storedCheckpoint(b []byte, dir string, t Tier) (ledger.Checkpoint, bool) {
	if t.PlaneName == "" {
		c, signed, err := ledger.OpenCheckpoint(b, nil)
		return c, err == nil && !signed
	}
	ks, err := trust.Load(dir)
	if err != nil {
		return ledger.Checkpoint{}, false
	}
	vs, err := trust.Verifiers(ks, trust.PurposeCheckpoint, "")
	if err != nil {
		return ledger.Checkpoint{}, false
	}
	c, _, err := ledger.OpenCheckpoint(b, vs)
	return c, err == nil
}

// LastAnchor returns the last anchor of the ledger rel (relative to the
// HO3 root) in the parent ledger s, or nil when it has none. An anchor of
// rel that does not parse is ANCHOR_INVALID. It looks back from the
// parent's head in widening windows (the file store's index walks an
// anchor's postings from the newest down to the window's start), so that
// its cost is that of the anchors since the window's start, not of all the
// anchors the parent ever took: a step's anchor finds its predecessor
// among the last few entries, most often the very last (each anchor found
// in the window is read, parsed and re-hashed, so the first window is one
// entry).
func LastAnchor(ctx context.Context, s ledger.Store, rel string) (*Anchor, error) {
	st, err := s.State(ctx)
	if err != nil {
		return nil, err
	}
	return lastAnchorBelow(ctx, s, rel, st.Size)
}

// lastAnchorBelow is LastAnchor with the windows counted back from size
// (the parent's size as its caller read it: entries appended since are
// found too, the windows reaching to the end).
func lastAnchorBelow(ctx context.Context, s ledger.Store, rel string, size int64) (*Anchor, error) {
	for window := int64(1); ; window *= 16 {
		from := max(size-window, 0)
		a, err := lastAnchorFrom(ctx, s, rel, from)
		if a != nil || err != nil || from == 0 {
			return a, err
		}
	}
}

func lastAnchorFrom(ctx context.Context, s ledger.Store, rel string, from int64) (*Anchor, error) {
	var last *ledger.Entry
	err := s.Find(ctx, ledger.Query{EventTypes: []string{AnchorEvent}, Metadata: map[string]string{"path": rel}, From: from}, func(e *ledger.Entry) bool {
		last = e
		return true
	})
	if err != nil || last == nil {
		return nil, err
	}
	a, err := ParseAnchor(last)
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// metadata returns a as an entry's metadata: the fields its JSON names
// (as ParseAnchor reads them back), tree_size a json.Number as a decoded
// entry holds it.
func (a Anchor) metadata() (map[string]any, error) {
	m := map[string]any{"path": a.Path, "origin": a.Origin, "tree_size": json.Number(strconv.FormatInt(a.TreeSize, 10)),
		"root_hash": a.RootHash, "checkpoint": a.Checkpoint, "checkpoint_hash": a.CheckpointHash}
	if a.WorkOrderID != "" {
		m["wo_id"] = a.WorkOrderID
	}
	if a.SessionID != "" {
		m["session_id"] = a.SessionID
	}
	return m, nil
}

// ParseAnchor reads the anchor a CHECKPOINT_ANCHORED entry states, and
// checks that it holds together: every field present, a path that is a
// lower tier's ledger (HO2's, or an HO1 session's), and a checkpoint note
// that hashes to checkpoint_hash and states origin, tree_size and
// root_hash (its signature is the child's business: G6 verifies the child
// against its own checkpoints). ANCHOR_INVALID otherwise.
func ParseAnchor(e *ledger.Entry) (Anchor, error) {
	a := Anchor{Seq: e.Seq}
	bad := func(format string, args ...any) (Anchor, error) {
		return a, refuse(CodeAnchorInvalid, "%s seq %d: %s", AnchorEvent, e.Seq, fmt.Sprintf(format, args...))
	}
	str := func(k string) string { s, _ := e.Metadata[k].(string); return s }
	a.Path, a.Origin, a.RootHash = str("path"), str("origin"), str("root_hash")
	a.Checkpoint, a.CheckpointHash = str("checkpoint"), str("checkpoint_hash")
	a.WorkOrderID, a.SessionID = str("wo_id"), str("session_id")
	size, ok := int64Of(e.Metadata["tree_size"])
	if !ok || size < 1 {
		return bad("tree_size %v is not a positive integer", e.Metadata["tree_size"])
	}
	a.TreeSize = size
	if !anchorablePath(a.Path) {
		return bad("path %q is not a lower tier's ledger (planes/ho2/ledger/workorder.jsonl, planes/ho1/ledger/worker.jsonl or planes/ho1/sessions/<SES>/ledger/session.jsonl)", a.Path)
	}
	if a.Checkpoint == "" || SHA256([]byte(a.Checkpoint)) != a.CheckpointHash {
		return bad("the checkpoint note does not hash to checkpoint_hash %q", a.CheckpointHash)
	}
	c, err := ledger.ParseCheckpoint(noteBody([]byte(a.Checkpoint)))
	if err != nil {
		return bad("checkpoint note: %v", err)
	}
	if c.Origin != a.Origin || c.Size != a.TreeSize || hex.EncodeToString(c.Root[:]) != a.RootHash {
		return bad("the checkpoint note states %s at size %d, root %x; the entry says %s at size %d, root %s",
			c.Origin, c.Size, c.Root[:], a.Origin, a.TreeSize, a.RootHash)
	}
	return a, nil
}

// noteBody returns the text of a signed note (up to its blank line).
func noteBody(b []byte) string {
	body := string(b)
	if i := strings.Index(body, "\n\n"); i >= 0 {
		body = body[:i+1]
	}
	return body
}

// anchorablePath reports whether p names a ledger AnchorChain anchors.
func anchorablePath(p string) bool {
	if p == Layout[1].Dir+"/"+Layout[1].Ledger || p == workerLedger {
		return true
	}
	id, ok := strings.CutPrefix(p, "planes/ho1/sessions/")
	if !ok {
		return false
	}
	id, ok = strings.CutSuffix(id, "/ledger/session.jsonl")
	return ok && ValidSessionID(id) && path.Clean(p) == p
}

// AnchorParent returns the ledger (relative to the HO3 root) in which an
// anchor of the ledger p belongs: HO3's for HO2's, HO2's for a session's.
func AnchorParent(p string) string {
	if strings.HasPrefix(p, "planes/ho1/") {
		return Layout[1].Dir + "/" + Layout[1].Ledger
	}
	return Layout[0].Ledger
}

// CheckAnchor checks the child ledger s against its anchor a (by parent,
// named in messages): it must hold at least a.TreeSize entries
// (LEDGER_TRUNCATED) and its root at that size must be a.RootHash
// (ANCHOR_MISMATCH): what the child holds now extends what was anchored.
// G6 asks it of every anchor; AnchorChain of the last one before it
// anchors again.
func CheckAnchor(ctx context.Context, s ledger.Store, a Anchor, parent string) error {
	st, err := s.State(ctx)
	if err != nil {
		return err
	}
	return checkAnchor(s, st, a, parent)
}

// checkAnchor is CheckAnchor against the child's state st. At the
// anchored size itself (a child that did not grow since: most checks a
// step makes) the root is st's, read with it; below it, the stored hashes
// give it.
func checkAnchor(s ledger.Store, st ledger.State, a Anchor, parent string) error {
	if st.Size < a.TreeSize {
		return refuse(CodeLedgerTruncated, "%s holds %d entries, but %s seq %d anchored it at size %d: its history was cut",
			a.Path, st.Size, parent, a.Seq, a.TreeSize)
	}
	root := st.Root
	if a.TreeSize != st.Size {
		var err error
		if root, err = tlog.TreeHash(a.TreeSize, s); err != nil {
			return refuse(CodeAnchorMismatch, "%s: its root at size %d, anchored by %s seq %d, cannot be computed: %v", a.Path, a.TreeSize, parent, a.Seq, err)
		}
	}
	if got := hex.EncodeToString(root[:]); got != a.RootHash {
		return refuse(CodeAnchorMismatch, "%s: its root at size %d is %s, but %s seq %d anchored %s: its history was rewritten",
			a.Path, a.TreeSize, got, parent, a.Seq, a.RootHash)
	}
	return nil
}

func int64Of(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 64)
		return i, err == nil
	case float64:
		return int64(n), n == float64(int64(n))
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}
