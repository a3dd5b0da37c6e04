package ledgercmd

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"
)

// TestWhereBounds: a --where expression cannot run without end or grow
// without bound (issue 10, item 18): one entry, all entries of a show, and
// the heap each have a limit, and show stops with a clear code (exit 3).
func TestWhereBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.jsonl")
	var reqs strings.Builder
	for i := range 200 {
		fmt.Fprintf(&reqs, "{\"event_type\":\"E\",\"metadata\":{\"k\":%d}}\n", i)
	}
	var out, errb bytes.Buffer
	require.Equal(t, 0, Run(context.Background(), []string{"append", "--ledger", path}, strings.NewReader(reqs.String()), &out, &errb), errb.String())

	show := func(where string) (int, string, time.Duration) {
		var out, errb bytes.Buffer
		start := time.Now()
		code := Run(context.Background(), []string{"show", "--ledger", path, "--where", where}, strings.NewReader(""), &out, &errb)
		return code, out.String(), time.Since(start)
	}
	set := func(timeout, budget time.Duration, memory uint64) {
		oldT, oldB, oldM := whereTimeout, whereBudget, whereMemory
		whereTimeout, whereBudget, whereMemory = timeout, budget, memory
		t.Cleanup(func() { whereTimeout, whereBudget, whereMemory = oldT, oldB, oldM })
	}

	t.Run("one entry", func(t *testing.T) {
		set(100*time.Millisecond, time.Hour, 1<<40)
		code, out, took := show(`last(range(1e12)) > 0`)
		require.Equal(t, 3, code, out)
		require.Equal(t, "WHERE_TIMEOUT", gjson.Get(out, "error.code").String(), out)
		require.Contains(t, out, "on entry 0: still running after 100ms")
		require.Less(t, took, 5*time.Second)
	})
	t.Run("all entries", func(t *testing.T) {
		// Each entry is cheap enough for its own limit; together they are not.
		const expr = `last(range(1e4)) < 0`
		set(time.Hour, time.Hour, 1<<40)
		_, _, one := show(expr) // all 200 entries, within bounds
		set(time.Hour, one/20, 1<<40)
		code, out, took := show(expr)
		require.Equal(t, 3, code, out)
		require.Equal(t, "WHERE_TIMEOUT", gjson.Get(out, "error.code").String(), out)
		require.Contains(t, out, "in all by entry")
		require.NotContains(t, out, "by entry 0 ", "the budget is spent over several entries")
		require.Less(t, took, 5*time.Second)
	})
	t.Run("memory", func(t *testing.T) {
		set(time.Hour, time.Hour, 64<<20)
		code, out, took := show(`[range(1e9)] | length > 0`)
		require.Equal(t, 3, code, out)
		require.Equal(t, "WHERE_TOO_LARGE", gjson.Get(out, "error.code").String(), out)
		// 0.5 s on a quiet machine; the bound only says the guard stopped
		// it (unguarded, it runs until the machine's memory is gone): 14 s
		// were seen at load average 30, so it is generous.
		require.Less(t, took, 60*time.Second)
	})
	t.Run("within bounds", func(t *testing.T) {
		code, out, _ := show(`.metadata.k % 50 == 0`)
		require.Equal(t, 0, code, out)
		require.Equal(t, 4, strings.Count(out, "\n"))
	})
}
