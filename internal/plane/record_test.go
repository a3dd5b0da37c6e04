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
