package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/pgtest"
)

// limitPolicy routes a deploy to a target in mode llm_assisted (one LLM
// call a decision) and allows a session five.
const limitPolicy = `{
  "routes": [{"name": "deploy", "when": ".intent == \"deploy\"", "handler": "default", "mode": "llm_assisted", "prompt_pack_id": "PRM-DEPLOY"}],
  "limits": {"llm_calls_per_session": 5},
  "default_route": {"handler": "default", "mode": "tools_first"}
}`

// newLimitPlane bootstraps a plane and installs limitPolicy in a config
// package; it returns the plane's root and its work directory.
func newLimitPlane(t *testing.T) (root, work string) {
	t.Helper()
	install, pkg := planeTools(t)
	work = t.TempDir()
	root = filepath.Join(work, "plane")
	mustPlane(t, pkg, root, work, "keygen", "--name", "ops", "--out", work)
	mustPlane(t, install, root, work, "bootstrap", "--root", root, "--trust-key", filepath.Join(work, "ops.pub"))
	mustPlane(t, pkg, root, work, "init-config", "PKG-CONFIG-001", "--output", "conf")
	p := filepath.Join(work, "conf", "config", "router_policy.json")
	require.NoError(t, os.Chmod(p, 0o644))
	require.NoError(t, os.WriteFile(p, []byte(limitPolicy), 0o644))
	mustPlane(t, pkg, root, work, "stage", "PKG-CONFIG-001", "--src", "conf", "--out", "staged")
	mustPlane(t, pkg, root, work, "sign", "--archive", "staged/PKG-CONFIG-001.tar.gz", "--key", filepath.Join(work, "ops.key"))
	mustPlane(t, install, root, work, "install", "--archive", "staged/PKG-CONFIG-001.tar.gz")
	return root, work
}

// TestRouteSessionLimitRace runs eight cp-route processes at once, each
// routing one deploy (an llm_assisted target: one LLM call) in the same
// session, whose limit allows five: in every round exactly five are
// routed and three refused (ROUTE_LIMIT_EXCEEDED, exit 1), and HO3's
// ledger holds eight decisions of that session, five of them spending a
// call. Each process reads the session's count and appends its decision
// under the ledger's lock; read outside it, two processes could both find
// four calls spent and both route (session 31 saw six routed in one round
// of six).
func TestRouteSessionLimitRace(t *testing.T) {
	root, work := newLimitPlane(t)
	routeLimitRace(t, root, work, nil)
}

// TestRouteSessionLimitRacePostgres is TestRouteSessionLimitRace with
// HO3's ledger in PostgreSQL (cp-ledger migrate): the processes hold the
// session's count through the database's advisory lock of the ledger.
func TestRouteSessionLimitRacePostgres(t *testing.T) {
	root, work, env := newLimitPlanePostgres(t)
	routeLimitRace(t, root, work, env)
}

// newLimitPlanePostgres is newLimitPlane with HO3's ledger moved to a
// throwaway PostgreSQL database (cp-ledger migrate); env names its DSN for
// the processes run on the plane.
func newLimitPlanePostgres(t *testing.T) (root, work string, env []string) {
	t.Helper()
	dsn := pgtest.DB(t)
	root, work = newLimitPlane(t)
	env = []string{"CP_TEST_LEDGER_DSN=" + dsn}
	cmd := planeCmd(cpLedger, root, work, "migrate", "--root", root, "--plane", "ho3", "--to", "postgres", "--name", "governance", "--dsn-env", "CP_TEST_LEDGER_DSN")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "migrate: %s", out)
	return root, work, env
}

func routeLimitRace(t *testing.T, root, work string, env []string) {
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		session := fmt.Sprintf("SES-20261207-5e55%04x", round)
		codes := make([]string, 8)
		exits := make([]int, 8)
		var wg sync.WaitGroup
		for i := range codes {
			wg.Go(func() {
				cmd := planeCmd(cpRoute, root, work, "route", "--root", root, "--session", session)
				cmd.Env = append(cmd.Env, env...)
				cmd.Stdin = strings.NewReader(fmt.Sprintf(`{"intent":"deploy","variables":{"i":%d}}`+"\n", i))
				out, err := cmd.Output()
				var ee *exec.ExitError
				if err != nil && !errors.As(err, &ee) {
					t.Errorf("round %d: cp-route %d: %v", round, i, err)
					return
				}
				exits[i] = cmd.ProcessState.ExitCode()
				codes[i] = errorCodeOf(out)
				if exits[i] == 0 {
					codes[i] = "ok"
				}
			})
		}
		wg.Wait()
		counts := map[string]int{}
		for i, c := range codes {
			counts[c]++
			if c == "ROUTE_LIMIT_EXCEEDED" {
				require.Equal(t, 1, exits[i], "round %d: a refusal by limit exits 1", round)
			}
		}
		require.Equal(t, map[string]int{"ok": 5, "ROUTE_LIMIT_EXCEEDED": 3}, counts, "round %d: eight processes, one session allowing five calls", round)

		show := planeCmd(cpLedger, root, work, "show", "--root", root, "--event-type", "ROUTE_DECISION", "--submission-id", session)
		show.Env = append(show.Env, env...)
		out, err := show.Output()
		require.NoError(t, err, "round %d: show: %s", round, out)
		require.Equal(t, 8, bytes.Count(out, []byte(`"event_type":"ROUTE_DECISION"`)), "round %d: every decision recorded", round)
		require.Equal(t, 5, bytes.Count(out, []byte(`"llm_calls":1`)), "round %d: five decisions spend a call: %s", round, out)
	}
	verify := planeCmd(cpLedger, root, work, "verify", "--root", root)
	verify.Env = append(verify.Env, env...)
	out, err := verify.CombinedOutput()
	require.NoError(t, err, "verify: %s", out)
}
