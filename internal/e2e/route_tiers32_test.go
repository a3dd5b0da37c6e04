package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRouteSessionLimitAcrossTiers: cp-route processes at once in one
// session allowing five calls (limitPolicy), in every tier: single runs
// with --plane ho3, ho2 and ho1, and streams whose lines each name a
// tier, while cp-ledger appends to HO3 and HO2 go on. Exactly five
// deploys are routed across the three tier ledgers, the ledgers record
// five calls, and they verify.
func TestRouteSessionLimitAcrossTiers(t *testing.T) {
	root, work := newLimitPlane(t)
	routeLimitAcrossTiers(t, root, work, nil)
}

// TestRouteSessionLimitAcrossTiersPostgres is
// TestRouteSessionLimitAcrossTiers with HO3's ledger in PostgreSQL: the
// processes hold HO3's route-session lock file and the database's
// advisory lock of HO3's ledger, in that order, while HO2 and HO1 stay
// files.
func TestRouteSessionLimitAcrossTiersPostgres(t *testing.T) {
	root, work, env := newLimitPlanePostgres(t)
	routeLimitAcrossTiers(t, root, work, env)
}

func routeLimitAcrossTiers(t *testing.T, root, work string, env []string) {
	planes := []string{"ho3", "ho2", "ho1"}
	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	for round := range rounds {
		session := fmt.Sprintf("SES-20261207-7e32%04x", round)
		var mu sync.Mutex
		routed := 0
		var wg sync.WaitGroup
		route := func(stdin string, args ...string) {
			cmd := planeCmd(cpRoute, root, work, append([]string{"route", "--root", root, "--session", session}, args...)...)
			cmd.Env = append(cmd.Env, env...)
			cmd.Stdin = strings.NewReader(stdin)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			out, err := cmd.Output()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Errorf("round %d: cp-route: %v", round, err)
				return
			}
			n := 0
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if strings.HasPrefix(l, `{"status":"ok"`) {
					n++
				} else if c := errorCodeOf([]byte(l)); c != "ROUTE_LIMIT_EXCEEDED" {
					t.Errorf("round %d: cp-route %v: %s (%s)", round, args, l, errb.String())
				}
			}
			mu.Lock()
			routed += n
			mu.Unlock()
		}
		for i := range 6 {
			wg.Go(func() { route(fmt.Sprintf(`{"intent":"deploy","variables":{"i":%d}}`, i), "--plane", planes[i%3]) })
		}
		for i := range 3 {
			var in strings.Builder
			for j := range 3 {
				fmt.Fprintf(&in, `{"intent":"deploy","plane":%q,"variables":{"i":%d}}`+"\n", planes[(i+j)%3], 10*i+j)
			}
			wg.Go(func() { route(in.String()) })
		}
		for _, p := range []string{"ho3", "ho2"} {
			wg.Go(func() {
				for range 5 {
					cmd := planeCmd(cpLedger, root, work, "append", "--root", root, "--plane", p, "--event-type", "NOTE", "--submission-id", session)
					cmd.Env = append(cmd.Env, env...)
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("round %d: append %s: %v %s", round, p, err, out)
					}
				}
			})
		}
		wg.Wait()
		require.Equal(t, 5, routed, "round %d: one session allowing five calls, routed in three tiers at once", round)
		calls := 0
		for _, p := range planes {
			show := planeCmd(cpLedger, root, work, "show", "--root", root, "--plane", p, "--event-type", "ROUTE_DECISION", "--submission-id", session)
			show.Env = append(show.Env, env...)
			out, err := show.Output()
			require.NoError(t, err, "round %d: show %s: %s", round, p, out)
			calls += bytes.Count(out, []byte(`"llm_calls":1`))
			verify := planeCmd(cpLedger, root, work, "verify", "--root", root, "--plane", p)
			verify.Env = append(verify.Env, env...)
			vout, err := verify.CombinedOutput()
			require.NoError(t, err, "round %d: verify %s: %s", round, p, vout)
		}
		require.Equal(t, 5, calls, "round %d: the calls the tier ledgers record", round)
	}
}
