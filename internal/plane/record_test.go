package plane_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
)

// TestRecordWithoutKeyRefused: a plane that signs its checkpoints refuses
// to record when its key cannot be read (another OS user, another HOME),
// and writes nothing.
func TestRecordWithoutKeyRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plane")
	res, err := bootstrap.Plane(context.Background(), dir, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	before, err := os.ReadFile(filepath.Join(dir, "ledger", "governance.jsonl"))
	require.NoError(t, err)
	plane.ForgetSigner(res.PlaneName) // as a new process would
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	_, err = plane.Record(context.Background(), dir, plane.Actor{Name: "tester"}, ledger.Draft{EventType: "X"})
	require.Equal(t, "CHECKPOINT_KEY_UNAVAILABLE", err.(*plane.Error).Code())
	after, err := os.ReadFile(filepath.Join(dir, "ledger", "governance.jsonl"))
	require.NoError(t, err)
	require.Equal(t, before, after)
}

// TestMACKey: the key that seals a plane's derived files comes from its
// checkpoint key alone: the same after the key is read again (a new
// process), another for another purpose or another plane, none for a
// tier without a plane_name, and refused, not empty, when the checkpoint
// key cannot be read.
func TestMACKey(t *testing.T) {
	ctx := context.Background()
	var planes []string
	var keys [][]byte
	for range 2 {
		dir := filepath.Join(t.TempDir(), "plane")
		res, err := bootstrap.Plane(ctx, dir, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
		require.NoError(t, err)
		tier, err := plane.ReadTier(dir)
		require.NoError(t, err)
		k, err := plane.MACKey(tier, "llm-tally")
		require.NoError(t, err)
		require.Len(t, k, 32)
		plane.ForgetSigner(res.PlaneName) // as a new process would
		again, err := plane.MACKey(tier, "llm-tally")
		require.NoError(t, err)
		require.Equal(t, k, again, "read again from the checkpoint key")
		other, err := plane.MACKey(tier, "another-file")
		require.NoError(t, err)
		require.NotEqual(t, k, other, "one key per purpose")
		planes, keys = append(planes, dir), append(keys, k)
	}
	require.NotEqual(t, keys[0], keys[1], "one key per plane")

	none, err := plane.MACKey(plane.Tier{Tier: "HO3"}, "llm-tally")
	require.NoError(t, err)
	require.Nil(t, none, "no plane_name: no key")

	tier, err := plane.ReadTier(planes[0])
	require.NoError(t, err)
	plane.ForgetSigner(tier.PlaneName)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	k, err := plane.MACKey(tier, "llm-tally")
	require.Nil(t, k)
	require.Equal(t, "CHECKPOINT_KEY_UNAVAILABLE", err.(*plane.Error).Code())
}
