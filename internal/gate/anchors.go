package gate

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// anchorFindings is G6's check of the lower tiers against their anchors
// (DESIGN.md §13): every CHECKPOINT_ANCHORED in HO3's ledger and in HO2's
// must parse (plane.ParseAnchor, else ANCHOR_INVALID) and sit in the
// ledger its child's anchors belong in (HO2's in HO3's, a session's and
// HO1's own in HO2's), and the child ledger it names must still hold at least the
// anchored size (LEDGER_TRUNCATED, also when the child is gone) with the
// anchored root at that size (ANCHOR_MISMATCH): a lower tier cannot cut
// or rewrite its history below an anchor unseen, even by re-signing its
// own checkpoint. Each finding names the child ledger (its path) and the
// anchor's parent and seq (its message). The child's own verification is
// G6's per-ledger check; a session ledger no anchor covers is verified
// there all the same. tiers are the tiers as G6 read them, by plane_id.
// It returns the number of anchors checked.
func anchorFindings(ctx context.Context, r *Result, root string, tiers map[string]plane.Tier) (int, error) {
	n := 0
	children := map[string]ledger.Store{} // opened once per child ledger
	missing := map[string]bool{}
	defer func() {
		for _, s := range children {
			s.Close()
		}
	}()
	for _, t := range plane.Layout[:2] {
		parent := path.Join(t.Dir, t.Ledger)
		ps, err := openCanonical(root, t, tiers[t.PlaneID])
		if errors.Is(err, fs.ErrNotExist) {
			continue // G6's own check says it is missing
		} else if err != nil {
			var coded interface{ Code() string }
			if errors.As(err, &coded) {
				continue // reported by the ledger's own check
			}
			return n, err
		}
		var anchors []*ledger.Entry
		err = ps.Find(ctx, ledger.Query{EventTypes: []string{plane.AnchorEvent}}, func(e *ledger.Entry) bool {
			anchors = append(anchors, e)
			return true
		})
		ps.Close()
		if err != nil {
			return n, err
		}
		for _, e := range anchors {
			n++
			a, err := plane.ParseAnchor(e)
			if err != nil {
				r.fail(plane.CodeAnchorInvalid, parent, "%v", err)
				continue
			}
			if want := plane.AnchorParent(a.Path); want != parent {
				r.fail(plane.CodeAnchorInvalid, parent, "seq %d anchors %s, whose anchors belong in %s", e.Seq, a.Path, want)
				continue
			}
			where := parent + " seq " + itoa(e.Seq)
			if missing[a.Path] {
				r.fail(plane.CodeLedgerTruncated, a.Path, "missing, but %s anchored it at size %d", where, a.TreeSize)
				continue
			}
			cs, ok := children[a.Path]
			if !ok {
				cs, err = openChild(root, a.Path, tiers)
				if errors.Is(err, fs.ErrNotExist) {
					missing[a.Path] = true
					r.fail(plane.CodeLedgerTruncated, a.Path, "missing, but %s anchored it at size %d", where, a.TreeSize)
					continue
				} else if err != nil {
					var coded interface{ Code() string }
					if errors.As(err, &coded) {
						r.fail(coded.Code(), a.Path, "anchored by %s: %v", where, unwrapPath(err))
						missing[a.Path] = true
						continue
					}
					return n, err
				}
				children[a.Path] = cs
			}
			if err := plane.CheckAnchor(ctx, cs, a, parent); err != nil {
				var coded interface{ Code() string }
				if !errors.As(err, &coded) {
					return n, err
				}
				r.fail(coded.Code(), a.Path, "%v", err)
			}
		}
	}
	return n, nil
}

// openCanonical opens tier t's own ledger for reading: the file of the
// canonical layout, or the database tier.json names (through the plane's
// opener, as G6's verify does).
func openCanonical(root string, t plane.TierLayout, tier plane.Tier) (ledger.Store, error) {
	tdir := filepath.Join(root, filepath.FromSlash(t.Dir))
	if tier.Postgres() {
		return plane.OpenTierLedger(tdir, tier, plane.LedgerPath(tdir, tier), plane.ForReading, plane.Actor{})
	}
	return ledger.OpenFileStore(filepath.Join(root, filepath.FromSlash(path.Join(t.Dir, t.Ledger))))
}

// openChild opens the anchored ledger p (relative to root) for reading.
func openChild(root, p string, tiers map[string]plane.Tier) (ledger.Store, error) {
	for _, t := range plane.Layout[1:] { // HO2's, HO1's own: where tier.json says they live
		if p == path.Join(t.Dir, t.Ledger) {
			return openCanonical(root, t, tiers[t.PlaneID])
		}
	}
	return ledger.OpenFileStore(filepath.Join(root, filepath.FromSlash(p)))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
