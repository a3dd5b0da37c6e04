package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestKillLimitedRouteStream kills cp-route streams in a limited session
// with SIGKILL while their batches flow: each batch's count is read and
// its decisions appended under the ledger's lock (the file store's flock,
// which the kernel drops with the process). The next cp-route in that
// session must not wait for the lock (well under its 10 s timeout), the
// session's count must survive the kill (six deploys in one stream after
// it: five routed, the limit's), and the ledger verify.
func TestKillLimitedRouteStream(t *testing.T) {
	root, work := newLimitPlane(t)
	killLimitedStream(t, root, work, nil)
}

// TestKillLimitedRouteStreamPostgres is TestKillLimitedRouteStream with
// HO3's ledger in PostgreSQL: the lock is the database's advisory lock,
// held on a connection of its own, which the server ends with the
// killed process's connection.
func TestKillLimitedRouteStreamPostgres(t *testing.T) {
	root, work, env := newLimitPlanePostgres(t)
	killLimitedStream(t, root, work, env)
}

func killLimitedStream(t *testing.T, root, work string, env []string) {
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		session := fmt.Sprintf("SES-20261207-c0de%04x", round)
		line := func(n int) string {
			return fmt.Sprintf(`{"intent":"status","variables":{"round":%d,"n":%d}}`, round, n)
		}
		cmd := planeCmd(cpRoute, root, work, "route", "--root", root, "--session", session)
		cmd.Env = append(cmd.Env, env...)
		delay := time.Duration(10+round*23) * time.Millisecond
		acks, stderr := killedStream(t, cmd, line, parseRouteAck, delay, floodFromAck)

		after := planeCmd(cpRoute, root, work, "route", "--root", root, "--session", session)
		after.Env = append(after.Env, env...)
		after.Stdin = strings.NewReader(strings.Repeat(`{"intent":"deploy"}`+"\n", 6))
		t0 := time.Now()
		out, _ := after.Output()
		took := time.Since(t0)
		require.Less(t, took, 5*time.Second, "round %d: the route after the kill waited for the lock", round)
		ls := strings.Split(strings.TrimSpace(string(out)), "\n")
		require.Len(t, ls, 6, "round %d: %s", round, out)
		for i, l := range ls {
			if i < 5 {
				_, err := parseRouteAck([]byte(l))
				require.NoError(t, err, "round %d: deploy %d", round, i)
			} else {
				require.Equal(t, "ROUTE_LIMIT_EXCEEDED", errorCodeOf([]byte(l)), "round %d: %s", round, l)
			}
		}
		verify := planeCmd(cpLedger, root, work, "verify", "--root", root)
		verify.Env = append(verify.Env, env...)
		vout, err := verify.CombinedOutput()
		require.NoError(t, err, "round %d: verify: %s", round, vout)
		t.Logf("round %d: killed after %v with %d acknowledged (%s); the next route took %v", round, delay, len(acks), strings.TrimSpace(string(stderr)), took)
	}
}
