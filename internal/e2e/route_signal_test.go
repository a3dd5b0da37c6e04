package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/control-plane/cp/pkg/ledger"
)

// TestRouteStreamSignalledBesideWriters ends flooded cp-route streams with
// SIGTERM, SIGINT or SIGKILL, at instants up to a second after their first
// acknowledgement (later than TestKillRouteStream's ~0.2 s), while another
// process appends to the same ledger with cp-ledger append and reads it
// with cp-ledger verify, one after the other, for the whole round. Each of
// those gets in well within its lock timeout and succeeds. After each
// round: every acknowledged decision is in the ledger as acknowledged; the
// stored checkpoint is signed by the plane's key, consistent, never ahead
// of the complete lines; after SIGTERM or SIGINT the stream ends CANCELLED
// having recorded exactly the decisions it acknowledged (what was finished
// was acknowledged, nothing torn), and the checkpoint covers every line;
// and the ledger verifies (after SIGKILL, once the next append repaired
// what the kill may have left: stored hashes short of the lines).
func TestRouteStreamSignalledBesideWriters(t *testing.T) {
	rounds := 9
	if testing.Short() {
		rounds = 3
	}
	install, _ := planeTools(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "plane")
	r := mustPlane(t, install, root, dir, "bootstrap", "--root", root)
	var boot struct {
		Result struct {
			CheckpointKey string `json:"checkpoint_key"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(r.stdout, &boot))
	v, err := note.NewVerifier(boot.Result.CheckpointKey)
	require.NoError(t, err)
	path := filepath.Join(root, "ledger", "governance.jsonl")
	_, ckptPath, _ := ledger.SidePaths(path)

	signals := []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL, syscall.SIGINT}
	delays := []time.Duration{520, 30, 760, 1050, 260, 610, 900, 5, 700}
	var allAcks []ack
	longest := map[string]time.Duration{}
	for round := range rounds {
		sig := signals[round%len(signals)]
		delay := delays[round%len(delays)] * time.Millisecond

		// The other process: appends and verifies, one after the other,
		// until the stream has ended.
		stop := make(chan struct{})
		var others []string
		var otherAcks []ack
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				args := []string{"append", "--root", root, "--event-type", "OTHER"}
				if i%2 == 1 {
					args = []string{"verify", "--root", root}
				}
				t0 := time.Now()
				r := run(t, nil, args...)
				took := time.Since(t0)
				longest[args[0]] = max(longest[args[0]], took)
				if sig == syscall.SIGKILL && i%2 == 1 && r.code != 0 && leftByKill(r.stdout) {
					// A verify between the kill and the next append
					// sees what the kill left (the next append
					// repairs it): what verify must report.
					continue
				}
				if r.code != 0 || took > 5*time.Second {
					others = append(others, fmt.Sprintf("%s after %v: exit %d: %s%s", args[0], took, r.code, r.stdout, r.stderr))
				} else if i%2 == 0 {
					otherAcks = append(otherAcks, parseAcks(t, r.stdout)...)
				}
			}
		})

		acks, status, last, stderr := signalledRoute(t, planeCmd(cpRoute, root, dir, "route", "--root", root), round, delay, sig)
		close(stop)
		wg.Wait()
		require.Empty(t, others, "round %d: the other process's appends and verifies", round)
		allAcks = append(allAcks, acks...)
		allAcks = append(allAcks, otherAcks...)

		entries, torn := readLedger(t, path)
		requireAcked(t, entries, allAcks, fmt.Sprintf("round %d (%s)", round, stderr))
		b, err := os.ReadFile(ckptPath)
		require.NoError(t, err)
		c, _, err := ledger.OpenCheckpoint(b, note.VerifierList(v))
		require.NoError(t, err, "round %d: the checkpoint is the plane's", round)
		requireCheckpointOver(t, c, entries, fmt.Sprintf("round %d", round))

		if sig == syscall.SIGKILL {
			require.True(t, status.Signaled() && status.Signal() == syscall.SIGKILL, "round %d: %v", round, status)
		} else {
			require.False(t, status.Signaled(), "round %d: the stream answers %v: %s", round, sig, stderr)
			require.Equal(t, 4, status.ExitStatus(), "round %d: %s", round, stderr)
			require.Contains(t, last, `"code":"CANCELLED"`, "round %d", round)
			require.Zero(t, torn, "round %d: a cancelled stream leaves no torn line", round)
			require.EqualValues(t, len(entries), c.Size, "round %d: every line of a stream that ended is checkpointed", round)
			var recorded []int64
			for _, e := range entries {
				if req, _ := e.Metadata["request"].(map[string]any); req != nil {
					if vars, _ := req["variables"].(map[string]any); vars != nil && vars["round"] == float64(round) {
						recorded = append(recorded, e.Seq)
					}
				}
			}
			var acked []int64
			for _, a := range acks {
				acked = append(acked, a.Seq)
			}
			require.Equal(t, recorded, acked, "round %d: a cancelled stream recorded exactly what it acknowledged", round)
		}
		if sig == syscall.SIGKILL {
			// A writer killed between its lines and their stored hashes
			// leaves a tail verify reports (TLOG_MISSING) until the next
			// append repairs it: that append must succeed.
			r := run(t, nil, "append", "--root", root, "--event-type", "AFTER_KILL")
			require.Equal(t, 0, r.code, "round %d: append after the kill: %s%s", round, r.stdout, r.stderr)
			allAcks = append(allAcks, parseAcks(t, r.stdout)...)
		}
		r := run(t, nil, "verify", "--root", root)
		require.Equal(t, 0, r.code, "round %d: verify: %s%s", round, r.stdout, r.stderr)
		t.Logf("round %d: %v after %v: %6d acknowledged, %7d complete lines (%d torn bytes), checkpoint at %d, the other process's appends %d",
			round, sig, delay, len(acks), len(entries), torn, c.Size, len(otherAcks))
	}
	t.Logf("the longest append and verify of the other process: %v and %v", longest["append"], longest["verify"])
}

// signalledRoute feeds cp-route (cmd) requests of round as fast as it
// takes them, and sends it sig delay after its first acknowledgement. It
// returns the decisions acknowledged, how it ended, its last line of
// output and its stderr.
func signalledRoute(t *testing.T, cmd *exec.Cmd, round int, delay time.Duration, sig syscall.Signal) ([]ack, syscall.WaitStatus, string, string) {
	t.Helper()
	line := func(n int) string {
		return fmt.Sprintf(`{"intent":"status","variables":{"round":%d,"n":%d}}`, round, n)
	}
	s := feedStream(t, cmd, line, parseRouteAck, false, true)
	<-s.first
	time.Sleep(delay)
	require.NoError(t, cmd.Process.Signal(sig))
	// Every answer is read (the pipe ends when the process does) before
	// Wait closes it.
	select {
	case <-s.eof:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-s.eof
		t.Errorf("round %d: cp-route did not end within 30 s of %v", round, sig)
	}
	s.stdin.Close() // unblocks a feeder stuck on a full pipe
	<-s.fed
	cmd.Wait()
	require.NoError(t, s.readErr)
	return s.acks, cmd.ProcessState.Sys().(syscall.WaitStatus), s.last, s.stderr.String()
}

// leftByKill reports whether a verify's answer finds only what a writer
// killed mid-append leaves: a torn tail, stored hashes short of the lines.
func leftByKill(stdout []byte) bool {
	var v struct {
		Result struct {
			Issues []struct {
				Code string `json:"code"`
			} `json:"issues"`
		} `json:"result"`
	}
	if json.Unmarshal(stdout, &v) != nil || len(v.Result.Issues) == 0 {
		return false
	}
	for _, is := range v.Result.Issues {
		if is.Code != "TORN_TAIL" && is.Code != "TLOG_MISSING" {
			return false
		}
	}
	return true
}
