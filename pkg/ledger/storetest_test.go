package ledger_test

import (
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/storetest"
	"github.com/stretchr/testify/require"
)

// TestFileStoreContract runs the drivers' shared table against the file
// store (pkg/ledger/pgstore runs it against PostgreSQL).
func TestFileStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts ledger.Options) ledger.Store {
		l, err := ledger.OpenWriter(filepath.Join(t.TempDir(), "s.jsonl"), opts)
		require.NoError(t, err)
		t.Cleanup(func() { l.Close() })
		return l
	})
}
