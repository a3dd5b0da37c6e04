// Package trace answers the provenance and compliance questions of
// DESIGN.md §14 from what the plane holds: the registries, the receipts and
// manifests of installed packages, the checkpoints under versions/ and the
// tiers' ledgers. It writes nothing.
//
// Every lookup of ledger entries by event type, subject, package or path
// goes through ledger.Store.Find, which the file store serves from its index
// (X.idx) and re-checks against the ledger: a lookup costs what its matches
// cost, not a scan. An entry named by its id (explain LED-...) is read at
// the seq its id names (ledger.IDSeq), or through the index's key of an id
// that names none (an imported entry's).
//
// A file's provenance (File) carries the evidence an auditor checks offline
// (VerifyProvenance, run by cp-ledger verify): the ledger entry that
// installed the owner's version and the latest entry that touched the file,
// each with an RFC 6962 inclusion proof against the ledger's signed
// checkpoint, the installed manifest (whose hash the install entry records)
// and the receipt.
package trace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// Error codes of trace questions and of checking a file's provenance.
const (
	// CodeNotOwned: the path is not a file any installed package owns (a
	// bad argument: exit 2).
	CodeNotOwned = "FILE_NOT_OWNED"
	// CodeIDNotFound: explain of an id nothing on the plane holds (exit 2).
	CodeIDNotFound = "ID_NOT_FOUND"
	// CodeTampered: the file on disk is not what its owner installed
	// (another hash, another mode, missing, or not a regular file).
	CodeTampered = "FILE_TAMPERED"
	// CodeUnrecorded: no ledger entry records the install of the version
	// that owns the file (a receipt the ledger never saw).
	CodeUnrecorded = "PROVENANCE_UNRECORDED"
	// CodeProvenanceInvalid: a provenance document whose evidence does not
	// hold together (an entry, proof, manifest or receipt altered).
	CodeProvenanceInvalid = "PROVENANCE_INVALID"
)

// Kinds of Error: how the request path classes a code it does not know.
const (
	KindArgument = "argument"
	KindRefusal  = "refusal"
)

// Error is a trace answer's refusal or a bad argument, with a stable code.
type Error struct {
	code    string
	kind    string
	msg     string
	hint    string
	details map[string]any
	// Result is the answer that goes with a negative verdict (the
	// provenance of a tampered file), shown under the error.
	Result any
}

func (e *Error) Error() string { return e.msg }

// Code returns the stable code (FILE_TAMPERED, ID_NOT_FOUND, ...).
func (e *Error) Code() string { return e.code }

// Kind returns KindArgument or KindRefusal.
func (e *Error) Kind() string { return e.kind }

// ErrorHint returns what to do about it, or "".
func (e *Error) ErrorHint() string { return e.hint }

// ErrorDetails returns the error's data.
func (e *Error) ErrorDetails() map[string]any { return e.details }

func refuse(code string, format string, args ...any) *Error {
	return &Error{code: code, kind: KindRefusal, msg: fmt.Sprintf(format, args...)}
}

func badArg(code string, format string, args ...any) *Error {
	return &Error{code: code, kind: KindArgument, msg: fmt.Sprintf(format, args...)}
}

func (e *Error) withHint(format string, args ...any) *Error {
	e.hint = fmt.Sprintf(format, args...)
	return e
}

// tier is one tier of the plane, opened for reading.
type tier struct {
	layout plane.TierLayout
	dir    string
	info   plane.Tier
}

// tiers returns the plane's tiers, highest first, or only the one named
// (ho3, ho2, ho1) when only is set.
func tiers(root, only string) ([]tier, error) {
	var out []tier
	for _, l := range plane.Layout {
		if only != "" && l.PlaneID != only {
			continue
		}
		dir, err := plane.Dir(root, l.PlaneID)
		if err != nil {
			return nil, err
		}
		t, err := plane.ReadTier(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && only == "" && l.PlaneID != "ho3" {
				continue // a plane without its lower tiers (an old bootstrap)
			}
			return nil, err
		}
		out = append(out, tier{layout: l, dir: dir, info: t})
	}
	if len(out) == 0 {
		return nil, badArg("USAGE", "unknown plane %q (want ho3, ho2 or ho1)", only)
	}
	return out, nil
}

// open opens the tier's own ledger for reading.
func (t tier) open() (ledger.Store, error) {
	s, _, err := plane.OpenLedger(t.dir, plane.ForReading, plane.Actor{})
	return s, err
}

// origin is the checkpoint origin of the tier's own ledger: how a turn
// header names it ({ledger, seq, entry_hash}).
func (t tier) origin() string { return plane.Origin(t.info, plane.LedgerPath(t.dir, t.info)) }

// find returns the entries q selects in s, in seq order.
func find(ctx context.Context, s ledger.Store, q ledger.Query) ([]ledger.Entry, error) {
	var out []ledger.Entry
	err := s.Find(ctx, q, func(e *ledger.Entry) bool {
		out = append(out, *e)
		return true
	})
	return out, err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
