package llm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/pkg/ledger"
)

// storeWithoutHold stands for a tier's ledger in PostgreSQL: a store with
// no Hold of its own, which holdLedger serialises through a lock file.
type storeWithoutHold struct{ ledger.Store }

// TestBudgetLockSpansGateways: two gateways over one budget ledger must
// not both sum and reserve at once, or both see room for the last call
// and a budget of N allows N+1. For a tier in PostgreSQL the lock is a
// flock on ledger/llm-budget.lock in the gateway's own plane directory:
// a gateway on another host, or in another container with its own copy
// of the plane directory (README: "a PostgreSQL tier shared by several
// machines"), takes another file, and nothing excludes them.
//
// KNOWN HOLE, not fixed here (the lock must live where the ledger is: a
// transaction- or session-level advisory lock in the database, held from
// the sum to the reservation's commit; see the review's report). Skipped
// unless CP_REVIEW_KNOWN_HOLES=1, when it fails.
func TestBudgetLockSpansGateways(t *testing.T) {
	if os.Getenv("CP_REVIEW_KNOWN_HOLES") != "1" {
		t.Skip("known hole (budget lock of a PostgreSQL tier is per directory): CP_REVIEW_KNOWN_HOLES=1 runs it")
	}
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		require.NoError(t, os.Mkdir(filepath.Join(d, "ledger"), 0o755))
	}
	release, err := holdLedger(context.Background(), a, storeWithoutHold{})
	require.NoError(t, err)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r2, err := holdLedger(ctx, b, storeWithoutHold{})
	if err == nil {
		r2()
	}
	require.Error(t, err, "a second gateway over the same ledger took the budget lock while the first held it")
}
