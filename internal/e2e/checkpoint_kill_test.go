package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestKillNeverLeavesCheckpointAhead kills streaming writers of a plane
// ledger (which sign a checkpoint with every group commit) with SIGKILL at
// varied instants: the stored checkpoint never claims an entry that is not
// a complete line, it is always signed by the plane's key and consistent
// with the ledger, and the next append (which checks it before building on
// it) succeeds.
func TestKillNeverLeavesCheckpointAhead(t *testing.T) {
	rounds := 15
	if testing.Short() {
		rounds = 6
	}
	root, vkey := handPlane(t, "e2e-kill")
	path := filepath.Join(root, "ledger", "governance.jsonl")
	_, ckptPath, _ := ledger.SidePaths(path)
	v, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	r := run(t, nil, "genesis", "--root", root)
	require.Equal(t, 0, r.code, "genesis: %s%s", r.stdout, r.stderr)
	var allAcks []ack
	for round := range rounds {
		delay := time.Duration(round*5%23) * time.Millisecond
		mode := killMode(round % 3)
		acks, _ := killedWriter(t, []string{"append", "--root", root}, round, delay, mode)
		allAcks = append(allAcks, acks...)
		entries, _ := readLedger(t, path)
		requireAcked(t, entries, allAcks, fmt.Sprintf("round %d", round))

		b, err := os.ReadFile(ckptPath)
		require.NoError(t, err)
		c, _, err := ledger.OpenCheckpoint(b, note.VerifierList(v))
		require.NoError(t, err, "round %d: checkpoint", round)
		requireCheckpointOver(t, c, entries, fmt.Sprintf("round %d", round))

		r := run(t, nil, "append", "--root", root, "--event-type", "AFTER_KILL")
		require.Equal(t, 0, r.code, "round %d: append after kill: %s%s", round, r.stdout, r.stderr)
		allAcks = append(allAcks, parseAcks(t, r.stdout)...)
		r = run(t, nil, "verify", "--root", root)
		require.Equal(t, 0, r.code, "round %d: verify: %s%s", round, r.stdout, r.stderr)
		require.Contains(t, string(r.stdout), `"checkpoint":{"tree_size":`+fmt.Sprint(len(entries)+1)+`,"signed":true,"valid":true}`)
		t.Logf("round %2d: killed after %2v (%s): %4d acknowledged, %5d complete lines, checkpoint at %d", round, delay, mode, len(acks), len(entries), c.Size)
	}
}

// handPlane makes the smallest plane that signs its checkpoints: a
// tier.json with a plane_name, its key pair in the key directory under the
// test processes' HOME, and the verifier key trusted for checkpoints.
func handPlane(t *testing.T, name string) (root, vkey string) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "plane")
	skey, vkey, err := note.GenerateKey(rand.Reader, name+"-checkpoint")
	require.NoError(t, err)
	keyDir := filepath.Join(home, ".config", "control-plane", name)
	require.NoError(t, os.MkdirAll(keyDir, 0o700))
	t.Cleanup(func() { os.RemoveAll(keyDir) })
	require.NoError(t, os.WriteFile(filepath.Join(keyDir, "checkpoint.key"), []byte(skey+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(keyDir, "checkpoint.pub"), []byte(vkey+"\n"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "config"), 0o755))
	tier := `{"tier":"HO3","plane_id":"ho3","plane_name":"` + name + `","ledger_path":"ledger/governance.jsonl","parent_ledger":null,"created_at":"2026-01-01T00:00:00Z"}`
	require.NoError(t, os.WriteFile(filepath.Join(root, "tier.json"), []byte(tier), 0o644))
	trusted, err := json.Marshal(map[string]any{"keys": []any{map[string]any{"name": name + "-checkpoint", "key": vkey, "purposes": []string{"checkpoint"}}}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(root, "config", "trusted_keys.json"), trusted, 0o644))
	return root, vkey
}

// requireCheckpointOver requires the stored checkpoint c to claim only
// complete lines of the ledger (entries), with their root.
func requireCheckpointOver(t *testing.T, c ledger.Checkpoint, entries []entry, who string) {
	t.Helper()
	require.LessOrEqual(t, c.Size, int64(len(entries)), "%s: the checkpoint claims entries that are not complete lines", who)
	var leaves []tlog.Hash
	for _, e := range entries[:c.Size] {
		var h tlog.Hash
		_, err := hex.Decode(h[:], []byte(e.EntryHash))
		require.NoError(t, err)
		leaves = append(leaves, h)
	}
	require.Equal(t, merkleRoot(leaves), c.Root, "%s: checkpoint root", who)
}

// merkleRoot is RFC 6962's root of the leaves (at least one).
func merkleRoot(leaves []tlog.Hash) tlog.Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return tlog.NodeHash(merkleRoot(leaves[:k]), merkleRoot(leaves[k:]))
}
