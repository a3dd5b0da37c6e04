package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/pkg/ledger"
)

// parseRouteAck decodes one "ok" decision of cp-route: the entry it was
// recorded as (evidence.ledger_entry_id, evidence.seq).
func parseRouteAck(line []byte) (ack, error) {
	var env struct {
		Status string `json:"status"`
		Result *struct {
			DecisionSeq *int64 `json:"decision_seq"`
		} `json:"result"`
		Evidence struct {
			ID  string `json:"ledger_entry_id"`
			Seq *int64 `json:"seq"`
		} `json:"evidence"`
	}
	if err := json.Unmarshal(line, &env); err != nil {
		return ack{}, err
	}
	if env.Status != "ok" || env.Result == nil || env.Result.DecisionSeq == nil || env.Evidence.ID == "" ||
		env.Evidence.Seq == nil || *env.Evidence.Seq != *env.Result.DecisionSeq {
		return ack{}, fmt.Errorf("not a routing decision: %s", line)
	}
	return ack{Seq: *env.Evidence.Seq, ID: env.Evidence.ID}, nil
}

// TestKillRouteStream kills cp-route streams with SIGKILL at varied
// instants. A route stream prepares each batch while the one before it is
// finished and committed (cli.Verb.Pipeline) and acknowledges a decision
// only once its group commit is durable: every acknowledged decision is
// in HO3's ledger as acknowledged, the stored checkpoint is the plane's,
// consistent with the ledger and never claims an entry that is not a
// complete line, and the next route and cp-ledger verify succeed.
func TestKillRouteStream(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 5
	}
	install, _ := planeTools(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "plane")
	mustPlane(t, install, root, dir, "bootstrap", "--root", root)
	path := filepath.Join(root, "ledger", "governance.jsonl")
	_, ckptPath, _ := ledger.SidePaths(path)
	var allAcks []ack
	for round := range rounds {
		// From 20 to 180 ms: a stream takes ~20 ms to start, and then
		// decides ~100 requests a millisecond, in batches of up to 1,024.
		delay := time.Duration(20+round*37%161) * time.Millisecond
		mode := killMode(round % 3)
		session := fmt.Sprintf("SES-20261207-0a1b%04x", round)
		line := func(n int) string {
			return fmt.Sprintf(`{"intent":"status","user":"u%d","variables":{"round":%d,"n":%d}}`, n%7, round, n)
		}
		cmd := planeCmd(cpRoute, root, dir, "route", "--root", root, "--session", session)
		acks, stderr := killedStream(t, cmd, line, parseRouteAck, delay, mode)
		allAcks = append(allAcks, acks...)
		entries, torn := readLedger(t, path)
		requireAcked(t, entries, allAcks, fmt.Sprintf("round %d (%s)", round, stderr))

		b, err := os.ReadFile(ckptPath)
		require.NoError(t, err)
		body, _, ok := bytes.Cut(b, []byte("\n\n"))
		require.True(t, ok, "round %d: the checkpoint is signed", round)
		c, err := ledger.ParseCheckpoint(string(body) + "\n")
		require.NoError(t, err, "round %d", round)
		requireCheckpointOver(t, c, entries, fmt.Sprintf("round %d", round))

		after := planeCmd(cpRoute, root, dir, "route", "--root", root, "--session", session)
		after.Stdin = strings.NewReader(`{"intent":"after-kill"}` + "\n")
		out, err := after.Output()
		require.NoError(t, err, "round %d: route after the kill: %s", round, out)
		a, err := parseRouteAck(bytes.TrimSpace(out))
		require.NoError(t, err)
		allAcks = append(allAcks, a)
		r := run(t, nil, "verify", "--root", root)
		require.Equal(t, 0, r.code, "round %d: verify: %s%s", round, r.stdout, r.stderr)
		t.Logf("round %2d: killed after %2v (%s): %5d acknowledged, %6d complete lines (%d torn bytes), checkpoint at %d",
			round, delay, mode, len(acks), len(entries), torn, c.Size)
	}
}
