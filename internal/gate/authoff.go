package gate

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/tidwall/gjson"

	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/ledger"
)

// authInit finds when auth was initialized on the plane at root: the
// first TRUST_CHANGED in HO3's ledger that added a key for purpose auth
// (cp-auth init). It returns that entry's seq, timestamp and op_id (the
// operation's other entries belong to the init), and ok false
// when auth was never initialized.
func authInit(ctx context.Context, root, ho3Ledger string) (seq int64, at, opID string, ok bool, err error) {
	s, err := ledger.OpenFileStore(filepath.Join(root, filepath.FromSlash(ho3Ledger)))
	if err != nil {
		return 0, "", "", false, err
	}
	defer s.Close()
	needle := []byte(`"event_type":"TRUST_CHANGED"`)
	err = s.Lines(ctx, 0, -1, func(pos int64, line []byte) bool {
		if !bytes.Contains(line, needle) {
			return true
		}
		g := gjson.ParseBytes(line)
		if g.Get("event_type").String() != "TRUST_CHANGED" || g.Get("metadata.change").String() != "added" {
			return true
		}
		for _, p := range g.Get("metadata.purposes").Array() {
			if p.String() == trust.PurposeAuth {
				seq, at, opID, ok = pos, g.Get("timestamp").String(), g.Get("metadata.op_id").String(), true
				return false
			}
		}
		return true
	})
	return seq, at, opID, ok, err
}

// authOffFindings warns (G6) about each entry stamped metadata._auth "off"
// written after auth was initialized: evidence of a bypass by the plane's
// owner (CONTROL_PLANE_AUTH=off, DESIGN.md §8), named by ledger and seq.
// Never an error: the bypass is allowed, and kept in view forever. In
// HO3's ledger "after" is by seq; in the other ledgers, by timestamp. The
// init's own entries (its op_id) and AUTHZ_DENIED entries (the refusal of
// a caller without a valid token, written by the tool) are no bypass.
func authOffFindings(ctx context.Context, r *Result, root, ho3Ledger string, ledgers []string) error {
	initSeq, initAt, initOp, ok, err := authInit(ctx, root, ho3Ledger)
	if errors.Is(err, fs.ErrNotExist) || !ok {
		return nil // no HO3 ledger (a finding already) or no auth: nothing is a bypass
	} else if err != nil {
		return err
	}
	stamp := []byte(`"_auth":"off"`)
	for _, p := range slices.Sorted(slices.Values(ledgers)) {
		s, err := ledger.OpenFileStore(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			continue // G6 reported it
		}
		err = s.Lines(ctx, 0, -1, func(pos int64, line []byte) bool {
			if !bytes.Contains(line, stamp) {
				return true
			}
			g := gjson.ParseBytes(line)
			if g.Get("metadata._auth").String() != "off" {
				return true
			}
			if g.Get("event_type").String() == "AUTHZ_DENIED" {
				return true // a refusal the tool recorded, of a caller it could not admit: no bypass
			}
			after := g.Get("timestamp").String() > initAt
			if p == ho3Ledger {
				after = pos > initSeq
			}
			// A refusal recorded before anyone was admitted (AUTH_*,
			// AUTH_OFF_REFUSED) has no verified token either, but it is the
			// firewall saying no, never a bypass.
			refusal := g.Get("event_type").String() == "AUTHZ_DENIED"
			if after && !refusal && (initOp == "" || g.Get("metadata.op_id").String() != initOp) {
				r.warn("AUTH_OFF", p, "seq %d (%s, by %s) was written with auth off after auth was initialized (HO3 seq %d): a bypass by the plane's owner",
					pos, g.Get("event_type").String(), g.Get("actor").String(), initSeq)
			}
			return true
		})
		s.Close()
		if err != nil && ctx.Err() != nil {
			return err
		}
	}
	return nil
}
