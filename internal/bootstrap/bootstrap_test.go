package bootstrap

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
)

func TestPlane(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plane")
	res, err := Plane(context.Background(), dir, Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	require.Len(t, res.Tiers, 3)

	// Each lower tier's GENESIS records its parent's head at creation.
	for i, tr := range res.Tiers {
		tier, err := plane.ReadTier(filepath.Join(dir, filepath.FromSlash(tr.Dir)))
		require.NoError(t, err)
		require.Equal(t, plane.Layout[i].Tier, tier.Tier)
		lpath := filepath.Join(dir, filepath.FromSlash(tr.Dir), filepath.FromSlash(tier.LedgerPath))
		require.Equal(t, res.PlaneName, tier.PlaneName)
		// Every tier ledger carries a checkpoint signed by the plane's own
		// key, trusted for checkpoints, covering every entry.
		trusted, err := trust.Load(filepath.Join(dir, filepath.FromSlash(tr.Dir)))
		require.NoError(t, err)
		vs, err := trust.Verifiers(trusted, trust.PurposeCheckpoint, "")
		require.NoError(t, err)
		s, _, err := plane.OpenLedger(filepath.Join(dir, filepath.FromSlash(tr.Dir)), plane.ForReading, plane.Actor{Name: ""})
		require.NoError(t, err)
		rep, err := ledger.Verify(context.Background(), s, ledger.VerifyOptions{Verifiers: vs, Expect: true})
		s.Close()
		require.NoError(t, err)
		require.True(t, rep.Valid, "%s: %+v", tr.PlaneID, rep.Issues)
		require.True(t, rep.Checkpoint.Valid && rep.Checkpoint.Signed)
		require.Equal(t, rep.Entries, rep.Checkpoint.TreeSize)
		b, err := os.ReadFile(lpath)
		require.NoError(t, err)
		genesis, err := ledger.ParseLine([]byte(strings.SplitN(string(b), "\n", 2)[0]))
		require.NoError(t, err)
		require.Equal(t, "GENESIS", genesis.EventType)
		if i > 0 {
			require.Equal(t, res.Tiers[i-1].Head, genesis.Metadata["parent_hash"])
			require.Equal(t, plane.Layout[i].Parent, genesis.Metadata["parent_ledger"])
		}
	}

	// The key is outside the plane, in the plane's key directory: 0700, 0600.
	keyDir, err := plane.KeyDir(res.PlaneName)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(keyDir, plane.CheckpointKeyFile), res.CheckpointKeyFile)
	st, err := os.Stat(keyDir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	st, err = os.Stat(res.CheckpointKeyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// The kernel manifest is the same bytes on every tier.
	var manifests []string
	for _, tr := range res.Tiers {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tr.Dir), "installed", plane.KernelID, "manifest.json"))
		require.NoError(t, err)
		manifests = append(manifests, string(b))
		var r plane.Receipt
		rb, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tr.Dir), "installed", plane.KernelID, "receipt.json"))
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
	_, err = Plane(context.Background(), dir, Options{})
	require.Error(t, err)
	require.Equal(t, "PLANE_EXISTS", err.(*plane.Error).Code())
	_, err = Plane(context.Background(), filepath.Join(dir, "planes", "ho2", "x"), Options{})
	require.Equal(t, "PLANE_NESTED", err.(*plane.Error).Code())

	// A plane name whose key directory holds a key is taken; an invalid
	// one is refused; neither leaves a plane behind.
	other := filepath.Join(t.TempDir(), "other")
	_, err = Plane(context.Background(), other, Options{PlaneName: res.PlaneName})
	require.Equal(t, "PLANE_NAME_TAKEN", err.(*plane.Error).Code())
	_, err = Plane(context.Background(), other, Options{PlaneName: "Bad/Name"})
	require.Equal(t, "PLANE_NAME_INVALID", err.(*plane.Error).Code())
	require.NoDirExists(t, other)
}

// TestKeyDirInsidePlaneRefused: a checkpoint key kept inside the plane
// would protect nothing.
func TestKeyDirInsidePlaneRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plane")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	_, err := Plane(context.Background(), dir, Options{})
	require.Equal(t, "KEY_DIR_INSIDE_PLANE", err.(*plane.Error).Code())
	require.NoDirExists(t, dir)
}
