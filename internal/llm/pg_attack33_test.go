package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/pgstore"
)

// TestAttack33PostgresTwoDirsTallies (session 33's attack): HO2 in
// PostgreSQL, two plane directories over it (two hosts), each keeping
// its own work-order tally files. A directory's tally left behind while
// the other directory's gateways spend is caught up with their entries
// (its tree is still the ledger's prefix): the budget of five allows five
// calls whichever directory makes them, the other directory's tally
// copied over is believed to the same sums, and eight gateways racing
// over both directories reserve five.
func TestAttack33PostgresTwoDirsTallies(t *testing.T) {
	dsn := pgtest.DB(t)
	ctx := context.Background()
	withWOKey(t, tallyTestKey)
	open := func(dir string) *pgstore.Store {
		s, err := pgstore.Open(ctx, dsn, pgstore.Options{Name: "budget", Writable: true,
			CheckpointFile: filepath.Join(dir, "ledger", "budget.checkpoint"),
			Ledger:         ledger.Options{Actor: "test", LockTimeout: 10 * time.Second}})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	dirs := [2]string{t.TempDir(), t.TempDir()}
	var stores [2]*pgstore.Store
	for i, d := range dirs {
		require.NoError(t, os.Mkdir(filepath.Join(d, "ledger"), 0o755))
		stores[i] = open(d)
	}
	g := &Gateway{providers: &config.ProvidersDoc{}, loaded: true, limitsLoaded: true}
	budget := func(id string) *workorder.WorkOrder {
		n := int64(5)
		usd := json.Number("10")
		return &workorder.WorkOrder{ID: id, Budget: workorder.Budget{LLMCalls: &n, LLMTokens: ptr(1_000_000), LLMCostUSD: &usd}}
	}
	// try reserves one call of wo from directory i and, when reserved,
	// settles it: false when the budget refused it.
	try := func(i int, s ledger.Store, wo string) (bool, error) {
		p := &prepared{call: &Call{Subject: "s", WorkOrderID: wo}, max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10},
			approval: &workorder.Approval{ID: wo, WorkOrder: budget(wo)}}
		got, err := g.reserve(ctx, dirs[i], plane.Tier{}, s, []*prepared{p}, nil)
		if _, refused := err.(*BudgetError); refused {
			return false, nil
		}
		if err != nil || len(got) != 1 {
			return false, fmt.Errorf("reserve: %d reserved, %v", len(got), err)
		}
		x := woRes{rid: p.rid, wo: wo, provider: "p", subject: "s", max: p.max}
		_, err = s.Append(ctx, []ledger.Draft{x.call(StatusOK, 10, 10, 5)})
		return err == nil, err
	}
	call := func(i int, s ledger.Store, wo string) bool {
		t.Helper()
		ok, err := try(i, s, wo)
		require.NoError(t, err)
		return ok
	}

	const wo = "WO-20260101-001"
	require.True(t, call(0, stores[0], wo), "A's first call")
	staleA, err := os.ReadFile(woTallyFile(dirs[0], wo))
	require.NoError(t, err)
	for range 3 {
		require.True(t, call(1, stores[1], wo), "B's calls")
	}
	require.True(t, call(0, stores[0], wo), "A's second call, the fifth: A's tally caught up with B's three")
	require.False(t, call(0, stores[0], wo), "a sixth from A")
	require.False(t, call(1, stores[1], wo), "a sixth from B")
	// A's older tally restored, and B's copied over A's: the same sums.
	require.NoError(t, os.WriteFile(woTallyFile(dirs[0], wo), staleA, 0o644))
	require.False(t, call(0, stores[0], wo), "a sixth from A, over its older tally")
	bFile, err := os.ReadFile(woTallyFile(dirs[1], wo))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(woTallyFile(dirs[0], wo), bFile, 0o644))
	require.False(t, call(0, stores[0], wo), "a sixth from A, over B's tally")
	require.Equal(t, Spend{Calls: 5, Tokens: 100, MicroUSD: 25}, woWholeSum(t, stores[0], wo).total(nil))

	// Eight gateways over both directories, a work order of five.
	const wo2 = "WO-20260101-002"
	var opened [8]*pgstore.Store
	for k := range opened {
		opened[k] = open(dirs[k%2])
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := opened[k]
			reserved, err := try(k%2, s, wo2)
			if err != nil {
				t.Error(err)
			}
			if reserved {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int64(5), ok.Load())
	require.Equal(t, Spend{Calls: 5, Tokens: 100, MicroUSD: 25}, woWholeSum(t, stores[1], wo2).total(nil))
}
