package workorder

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

const ho2Rel = "planes/ho2/ledger/workorder.jsonl"

// lastHO2Anchor returns HO3's last anchor of HO2's ledger, and HO2's size
// and hex root now.
func lastHO2Anchor(t *testing.T, root string) (*plane.Anchor, int64, string) {
	t.Helper()
	ctx := context.Background()
	s3, _, err := plane.OpenLedger(root, plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	defer s3.Close()
	a, err := plane.LastAnchor(ctx, s3, ho2Rel)
	require.NoError(t, err)
	s2, _, err := plane.OpenLedger(ho2Dir(root), plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	defer s2.Close()
	st, err := s2.State(ctx)
	require.NoError(t, err)
	return a, st.Size, hex.EncodeToString(st.Root[:])
}

// requireAnchored: HO3's last anchor of HO2 states HO2's ledger as it is.
func requireAnchored(t *testing.T, root, step string) *plane.Anchor {
	t.Helper()
	a, size, rootHash := lastHO2Anchor(t, root)
	require.NotNil(t, a, step)
	require.Equal(t, size, a.TreeSize, step)
	require.Equal(t, rootHash, a.RootHash, step)
	return a
}

// TestStepsAnchor: every step that writes leaves HO2's latest checkpoint
// anchored in HO3 (a step that wrote only HO3 finds it anchored already),
// and the anchors name the work order.
func TestStepsAnchor(t *testing.T) {
	ctx := context.Background()
	root, signer := newPlane(t)
	c := create(t, root, draft())
	a := requireAnchored(t, root, "create")
	require.Equal(t, c.WorkOrder.ID, a.WorkOrderID)
	require.Greater(t, a.TreeSize, c.Entry.Seq, "the anchor covers WO_CREATED")

	_, err := Approve(ctx, root, c.WorkOrder.ID, signer, bob)
	require.NoError(t, err)
	require.Equal(t, a.Seq, requireAnchored(t, root, "approve").Seq, "approve writes HO3 only: HO2's anchor holds")

	_, err = Cancel(ctx, root, c.WorkOrder.ID, "", alice)
	require.NoError(t, err)
	a2 := requireAnchored(t, root, "cancel")
	require.Greater(t, a2.TreeSize, a.TreeSize)

	c2 := create(t, root, draft())
	_, err = Reject(ctx, root, c2.WorkOrder.ID, "no", bob)
	require.NoError(t, err)
	requireAnchored(t, root, "reject")
}

// TestStepRefusedBelowAnchor: a step meets HO2's ledger cut below its
// anchor in HO3 (re-made with a checkpoint of its own): it is refused
// before it acts (no work-order file, no entry).
func TestStepRefusedBelowAnchor(t *testing.T) {
	ctx := context.Background()
	root, _ := newPlane(t)
	create(t, root, draft())
	base := filepath.Join(root, "planes", "ho2", "ledger", "workorder")
	for _, side := range append([]string{".jsonl"}, ledger.SideFiles...) {
		require.NoError(t, os.RemoveAll(base+side))
	}
	dir := ho2Dir(root)
	s, _, err := plane.OpenLedger(dir, plane.ForAppend, alice.Actor)
	require.NoError(t, err)
	_, err = ledger.Genesis(ctx, s, ledger.Draft{SubmissionID: "x", Decision: "CREATED"})
	require.NoError(t, err)
	s.Close()

	_, err = Create(ctx, root, draft(), alice)
	require.Equal(t, plane.CodeLedgerTruncated, code(t, err))
	ents, err := os.ReadDir(filepath.Join(root, Dir))
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		if filepath.Ext(e.Name()) == ".json" {
			n++
		}
	}
	require.Equal(t, 1, n, "no second work order written")
}

// TestTurnAnchors: a turn leaves its session anchored in HO2 at the size
// its TURN made, and HO2 (holding that anchor) in HO3; a session cut below
// its anchor (re-made with a checkpoint of its own), or HO1's own ledger
// cut below its anchor, stops the next turn before it writes anything.
func TestTurnAnchors(t *testing.T) {
	ctx := context.Background()
	root, s := started(t, 20)
	r, err := Turn(ctx, root, s.SessionID, &Header{TurnNumber: 1, WorkOrderID: s.ID, DeclaredInputs: []Input{}}, alice)
	require.NoError(t, err)
	rel := "planes/ho1/sessions/" + s.SessionID + "/ledger/session.jsonl"
	ho2, _, err := plane.OpenLedger(ho2Dir(root), plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	a, err := plane.LastAnchor(ctx, ho2, rel)
	require.NoError(t, err)
	require.NotNil(t, a)
	require.Equal(t, r.Seq+1, a.TreeSize, "the session is anchored with its TURN")
	ho2State, err := ho2.State(ctx)
	require.NoError(t, err)
	require.NoError(t, ho2.Close())
	a2 := requireAnchored(t, root, "turn")
	require.Equal(t, ho2State.Size, a2.TreeSize, "HO2 is anchored with the session's anchor")
	require.Greater(t, a2.TreeSize, a.Seq)

	// the session re-made below its anchor: refused, nothing written
	p := plane.SessionLedgerPath(root, s.SessionID)
	for _, side := range append([]string{".jsonl"}, ledger.SideFiles...) {
		require.NoError(t, os.RemoveAll(strings.TrimSuffix(p, ".jsonl")+side))
	}
	l, _, err := plane.OpenSessionLedger(root, s.SessionID, plane.ForAppend, alice.Actor)
	require.NoError(t, err)
	_, err = ledger.Genesis(ctx, l, ledger.Draft{SubmissionID: s.SessionID, Decision: "CREATED"})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	_, err = Turn(ctx, root, s.SessionID, &Header{TurnNumber: 2, WorkOrderID: s.ID, DeclaredInputs: []Input{}}, alice)
	require.Equal(t, plane.CodeLedgerTruncated, code(t, err))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, 1, bytes.Count(b, []byte("\n")), "no TURN, no TURN_REFUSED written")

	// another session of the same work order, HO1's own ledger cut below
	// its anchor: the turn stops too
	s2, err := Start(ctx, root, s.ID, alice)
	require.NoError(t, err)
	wp := filepath.Join(root, "planes", "ho1", "ledger", "worker.jsonl")
	for _, side := range append([]string{".jsonl"}, ledger.SideFiles...) {
		require.NoError(t, os.RemoveAll(strings.TrimSuffix(wp, ".jsonl")+side))
	}
	_, err = Turn(ctx, root, s2.SessionID, &Header{TurnNumber: 1, WorkOrderID: s.ID, DeclaredInputs: []Input{}}, alice)
	require.Equal(t, plane.CodeLedgerTruncated, code(t, err))
}
