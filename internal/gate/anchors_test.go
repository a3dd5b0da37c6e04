package gate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

const (
	anchorSes = "SES-20261206-00c0ffee"
	sesRel    = "planes/ho1/sessions/" + anchorSes + "/ledger/session.jsonl"
	ho2Rel    = "planes/ho2/ledger/workorder.jsonl"
	workerRel = "planes/ho1/ledger/worker.jsonl"
	ho3Rel    = "ledger/governance.jsonl"
)

var anchorActor = plane.Actor{Name: "tester"}

// appendLedger appends n entries to the ledger rel of tier planeID as the
// plane's opener writes it (signed checkpoint and all), starting an empty
// one with a GENESIS: what a lower tier holding the plane's key can write.
func appendLedger(t *testing.T, root, planeID, rel string, n int) {
	t.Helper()
	ctx := context.Background()
	dir, err := plane.Dir(root, planeID)
	require.NoError(t, err)
	tier, err := plane.ReadTier(dir)
	require.NoError(t, err)
	s, err := plane.OpenTierLedger(dir, tier, filepath.Join(root, filepath.FromSlash(rel)), plane.ForAppend, anchorActor)
	require.NoError(t, err)
	defer s.Close()
	st, err := s.State(ctx)
	require.NoError(t, err)
	if st.Size == 0 {
		_, err := ledger.Genesis(ctx, s, ledger.Draft{SubmissionID: "x", Decision: "CREATED"})
		require.NoError(t, err)
	}
	for i := 0; i < n; i++ {
		_, err := s.Append(ctx, []ledger.Draft{{EventType: "NOTE", SubmissionID: "x", Decision: "OK"}})
		require.NoError(t, err)
	}
}

// replaceLedger removes the ledger rel and its side files and writes a
// fresh one of 1+n entries in its place: a history cut (or rewritten)
// that verifies on its own, with a checkpoint signed by the plane's key.
func replaceLedger(t *testing.T, root, planeID, rel string, n int) {
	t.Helper()
	base := strings.TrimSuffix(filepath.Join(root, filepath.FromSlash(rel)), ".jsonl")
	for _, side := range append([]string{".jsonl"}, ledger.SideFiles...) {
		require.NoError(t, os.RemoveAll(base+side))
	}
	appendLedger(t, root, planeID, rel, n)
}

func lastAnchorSeq(t *testing.T, root, parent, child string) int64 {
	t.Helper()
	s, err := ledger.OpenFileStore(filepath.Join(root, filepath.FromSlash(parent)))
	require.NoError(t, err)
	defer s.Close()
	a, err := plane.LastAnchor(context.Background(), s, child)
	require.NoError(t, err)
	require.NotNil(t, a)
	return a.Seq
}

func requireFinding(t *testing.T, r *Result, code, path, substr string) {
	t.Helper()
	for _, f := range r.Errors {
		if f.Code == code && f.Path == path && strings.Contains(f.Message, substr) {
			return
		}
	}
	t.Fatalf("no %s finding for %s holding %q in %+v", code, path, substr, r.Errors)
}

// TestG6Anchors: G6 holds every lower-tier ledger to every anchor of it.
// Each case damages an anchored plane (a session anchored in HO2 at size
// 3, HO2 anchored in HO3) the way a lower tier would, and G6 names the
// ledger, its code and the anchor's parent and seq.
func TestG6Anchors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, root string)
		code   string
		path   string
		parent string // the anchor's parent, named in the message
		msg    string
	}{
		{"session cut after its anchor, re-signed", func(t *testing.T, root string) {
			replaceLedger(t, root, "ho1", sesRel, 0)
		}, plane.CodeLedgerTruncated, sesRel, ho2Rel, "holds 1 entries"},
		{"session lines cut", func(t *testing.T, root string) {
			p := filepath.Join(root, filepath.FromSlash(sesRel))
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			lines := bytes.SplitAfter(b, []byte("\n"))
			require.NoError(t, os.WriteFile(p, bytes.Join(lines[:1], nil), 0o644))
		}, plane.CodeLedgerTruncated, sesRel, ho2Rel, "its history was cut"},
		{"session rewritten before its anchor", func(t *testing.T, root string) {
			replaceLedger(t, root, "ho1", sesRel, 4)
		}, plane.CodeAnchorMismatch, sesRel, ho2Rel, "its history was rewritten"},
		{"session deleted", func(t *testing.T, root string) {
			require.NoError(t, os.RemoveAll(filepath.Join(root, "planes/ho1/sessions", anchorSes)))
		}, plane.CodeLedgerTruncated, sesRel, ho2Rel, "missing"},
		{"HO1's own ledger cut after its anchor, re-signed", func(t *testing.T, root string) {
			replaceLedger(t, root, "ho1", workerRel, 0)
		}, plane.CodeLedgerTruncated, workerRel, ho2Rel, "its history was cut"},
		{"HO1's own ledger rewritten before its anchor", func(t *testing.T, root string) {
			replaceLedger(t, root, "ho1", workerRel, 5)
		}, plane.CodeAnchorMismatch, workerRel, ho2Rel, "rewritten"},
		{"HO1's own ledger deleted", func(t *testing.T, root string) {
			require.NoError(t, os.Remove(filepath.Join(root, filepath.FromSlash(workerRel))))
		}, plane.CodeLedgerTruncated, workerRel, ho2Rel, "missing"},
		{"HO2 cut after its anchor in HO3, re-signed", func(t *testing.T, root string) {
			replaceLedger(t, root, "ho2", ho2Rel, 0)
		}, plane.CodeLedgerTruncated, ho2Rel, ho3Rel, "its history was cut"},
		{"HO2 rewritten before its anchor", func(t *testing.T, root string) {
			replaceLedger(t, root, "ho2", ho2Rel, 10)
		}, plane.CodeAnchorMismatch, ho2Rel, ho3Rel, "rewritten"},
		{"an anchor whose note was altered", func(t *testing.T, root string) {
			appendLedger(t, root, "ho2", ho2Rel, 0)
			s, _, err := plane.OpenLedger(filepath.Join(root, "planes/ho2"), plane.ForAppend, anchorActor)
			require.NoError(t, err)
			defer s.Close()
			_, err = s.Append(ctx, []ledger.Draft{{EventType: plane.AnchorEvent, SubmissionID: sesRel, Decision: "ANCHORED",
				Metadata: map[string]any{"path": sesRel, "origin": "x/ho1/session", "tree_size": 1, "root_hash": strings.Repeat("0", 64),
					"checkpoint": "x/ho1/session\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "checkpoint_hash": "sha256:00"}}})
			require.NoError(t, err)
		}, plane.CodeAnchorInvalid, ho2Rel, "", "does not hash to checkpoint_hash"},
		{"an anchor in the wrong parent", func(t *testing.T, root string) {
			s, _, err := plane.OpenLedger(root, plane.ForReading, anchorActor)
			require.NoError(t, err)
			a, err := plane.LastAnchor(ctx, s, ho2Rel)
			s.Close()
			require.NoError(t, err)
			a.Path = sesRel // HO2's anchor, relabelled as the session's, in HO3
			_, err = plane.Record(ctx, root, anchorActor, ledger.Draft{EventType: plane.AnchorEvent, SubmissionID: sesRel, Decision: "ANCHORED",
				Metadata: map[string]any{"path": a.Path, "origin": a.Origin, "tree_size": a.TreeSize, "root_hash": a.RootHash,
					"checkpoint": a.Checkpoint, "checkpoint_hash": a.CheckpointHash}})
			require.NoError(t, err)
		}, plane.CodeAnchorInvalid, ho3Rel, "", "belong in " + ho2Rel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "plane")
			_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: anchorActor})
			require.NoError(t, err)
			appendLedger(t, root, "ho1", sesRel, 2)
			_, err = plane.AnchorChain(ctx, root, anchorActor, "", anchorSes)
			require.NoError(t, err)
			r, err := G6(ctx, root)
			require.NoError(t, err)
			require.True(t, r.Passed, "%+v", r.Errors)
			require.Equal(t, 3, r.Details["anchors"], "the session's and HO1's own in HO2, HO2's in HO3")

			msg := tc.msg
			if tc.parent != "" {
				seq := lastAnchorSeq(t, root, tc.parent, tc.path)
				msg = tc.parent + " seq " + strconv.FormatInt(seq, 10)
				tc.damage(t, root)
				r, err = G6(ctx, root)
				require.NoError(t, err)
				requireFinding(t, r, tc.code, tc.path, tc.msg)
			} else {
				tc.damage(t, root)
				r, err = G6(ctx, root)
				require.NoError(t, err)
			}
			require.False(t, r.Passed)
			requireFinding(t, r, tc.code, tc.path, msg)
		})
	}
}

// TestG6UnanchoredSession: a session ledger no anchor covers is still
// verified by G6 (DESIGN.md §13: every session ledger is covered).
func TestG6UnanchoredSession(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: anchorActor})
	require.NoError(t, err)
	appendLedger(t, root, "ho1", sesRel, 2)
	r, err := G6(ctx, root)
	require.NoError(t, err)
	require.True(t, r.Passed, "%+v", r.Errors)
	require.Equal(t, 0, r.Details["anchors"])

	p := filepath.Join(root, filepath.FromSlash(sesRel))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, bytes.Replace(b, []byte(`"decision":"OK"`), []byte(`"decision":"KO"`), 1), 0o644))
	r, err = G6(ctx, root)
	require.NoError(t, err)
	require.False(t, r.Passed)
	requireFinding(t, r, "LEDGER_INVALID", sesRel, "HASH_MISMATCH")
}

// TestG6WorkOrderTallies: G6 accepts the LLM gateway's work-order tallies
// in HO2's ledger directory (regular files named llm-wo.<WO-ID>.json) and
// nothing like them elsewhere: a name that is not a work order's, a
// link or a directory by such a name, or one in HO3's ledger directory.
func TestG6WorkOrderTallies(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: anchorActor})
	require.NoError(t, err)
	ho2 := filepath.Join(root, "planes", "ho2", "ledger")
	require.NoError(t, os.WriteFile(filepath.Join(ho2, "llm-wo.WO-20260101-001.json"), []byte("{}"), 0o600))
	r, err := G6(ctx, root)
	require.NoError(t, err)
	require.True(t, r.Passed, "%+v", r.Errors)

	for name, make := range map[string]func() (string, error){
		"not a work order's id": func() (string, error) {
			p := filepath.Join(ho2, "llm-wo.WO-x.json")
			return "planes/ho2/ledger/llm-wo.WO-x.json", os.WriteFile(p, []byte("{}"), 0o600)
		},
		"a link": func() (string, error) {
			return "planes/ho2/ledger/llm-wo.WO-20260101-002.json", os.Symlink("llm-wo.WO-20260101-001.json", filepath.Join(ho2, "llm-wo.WO-20260101-002.json"))
		},
		"a directory": func() (string, error) {
			return "planes/ho2/ledger/llm-wo.WO-20260101-003.json", os.Mkdir(filepath.Join(ho2, "llm-wo.WO-20260101-003.json"), 0o755)
		},
		"in HO3's ledger directory": func() (string, error) {
			return "ledger/llm-wo.WO-20260101-001.json", os.WriteFile(filepath.Join(root, "ledger", "llm-wo.WO-20260101-001.json"), []byte("{}"), 0o600)
		},
	} {
		rel, err := make()
		require.NoError(t, err, name)
		r, err := G6(ctx, root)
		require.NoError(t, err)
		require.False(t, r.Passed, name)
		found := false
		for _, f := range r.Errors {
			found = found || f.Path == rel
		}
		require.True(t, found, "%s: a finding on %s: %+v", name, rel, r.Errors)
		require.NoError(t, os.RemoveAll(filepath.Join(root, filepath.FromSlash(rel))))
	}
}
