package plane

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
)

func TestBootstrap(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plane")
	res, err := Bootstrap(context.Background(), dir, BootstrapOptions{Actor: "tester"})
	require.NoError(t, err)
	require.Len(t, res.Tiers, 3)

	// Each lower tier's GENESIS records its parent's head at creation.
	for i, tr := range res.Tiers {
		tier, err := ReadTier(filepath.Join(dir, filepath.FromSlash(tr.Dir)))
		require.NoError(t, err)
		require.Equal(t, Layout[i].Tier, tier.Tier)
		lpath := filepath.Join(dir, filepath.FromSlash(tr.Dir), filepath.FromSlash(tier.LedgerPath))
		rep, err := ledger.Verify(context.Background(), lpath, ledger.VerifyOptions{})
		require.NoError(t, err)
		require.True(t, rep.Valid, "%s: %+v", tr.PlaneID, rep.Issues)
		b, err := os.ReadFile(lpath)
		require.NoError(t, err)
		genesis, err := ledger.ParseLine([]byte(strings.SplitN(string(b), "\n", 2)[0]))
		require.NoError(t, err)
		require.Equal(t, "GENESIS", genesis.EventType)
		if i > 0 {
			require.Equal(t, res.Tiers[i-1].Head, genesis.Metadata["parent_hash"])
			require.Equal(t, Layout[i].Parent, genesis.Metadata["parent_ledger"])
		}
	}

	// The kernel manifest is the same bytes on every tier.
	var manifests []string
	for _, tr := range res.Tiers {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tr.Dir), "installed", KernelID, "manifest.json"))
		require.NoError(t, err)
		manifests = append(manifests, string(b))
		var r Receipt
		rb, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tr.Dir), "installed", KernelID, "receipt.json"))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(rb, &r))
		require.Equal(t, res.ManifestHash, r.ManifestHash)
	}
	require.Equal(t, manifests[0], manifests[1])
	require.Equal(t, manifests[0], manifests[2])

	// No absolute path anywhere.
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tlog") {
			return err
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NotContains(t, string(b), dir, p)
		return nil
	}))

	// Twice: refused, and nothing changed.
	_, err = Bootstrap(context.Background(), dir, BootstrapOptions{})
	require.Error(t, err)
	require.Equal(t, "PLANE_EXISTS", err.(*Error).Code())
	_, err = Bootstrap(context.Background(), filepath.Join(dir, "planes", "ho2", "x"), BootstrapOptions{})
	require.Equal(t, "PLANE_NESTED", err.(*Error).Code())
}
