package install

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/plane"
	"github.com/stretchr/testify/require"
)

// Governed roots are added by the trust-change path: a kernel release on
// every tier, recorded as one operation; refusals write nothing.
func TestAddGovernedRoots(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	opts := TrustOptions{Actor: plane.Actor{Name: "tester"}}

	for _, bad := range []string{"docs", "Docs/", "a/b/", "../x/", "ledger/", "planes/", "installed/", "work_orders/", "blobs/", "/docs/", ""} {
		_, err := AddGovernedRoots(ctx, root, []string{bad}, opts)
		require.Error(t, err, bad)
	}
	// A tier already holding unowned files under the root.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "planes", "ho1", "notes"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "planes", "ho1", "notes", "x.md"), []byte("x"), 0o644))
	before := ledgerSize(t, root)
	_, err := AddGovernedRoots(ctx, root, []string{"notes/"}, opts)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "ORPHAN", e.Code())
	require.Contains(t, e.Msg, "planes/ho1/notes/x.md")
	require.Equal(t, before, ledgerSize(t, root), "a refusal writes nothing")

	res, err := AddGovernedRoots(ctx, root, []string{"docs/", "tests/", "docs/"}, opts)
	require.NoError(t, err)
	require.Equal(t, RootsAdded, res.Change)
	require.Equal(t, []string{"docs/", "tests/"}, res.Roots)
	require.Equal(t, []string{"1.0.1", "1.0.1", "1.0.1"}, kernelRows(t, root))
	for _, tl := range plane.Layout {
		got, err := plane.GovernedRoots(filepath.Join(root, filepath.FromSlash(tl.Dir)))
		require.NoError(t, err)
		require.Equal(t, append(append([]string{}, plane.DefaultGovernedRoots...), "docs/", "tests/"), got, tl.Tier)
	}
	require.Equal(t, []string{"INSTALL_STARTED", "INSTALLED", "TRUST_CHANGED"}, types(events(t, root, opOf(t, root, res.LedgerEntryID))))
	allPass(t, root)

	before = ledgerSize(t, root)
	res, err = AddGovernedRoots(ctx, root, []string{"tests/"}, opts)
	require.NoError(t, err)
	require.Equal(t, "none", res.Change)
	require.Equal(t, before, ledgerSize(t, root))
}
