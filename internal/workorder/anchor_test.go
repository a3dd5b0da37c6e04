package workorder

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
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
