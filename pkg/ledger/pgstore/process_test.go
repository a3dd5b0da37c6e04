package pgstore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// The writer process: this test binary run again with PGSTORE_WRITER set
// (DSN, batches, batch size, checkpoint key and outside file in the
// environment). It appends its batches and prints "acked FIRST LAST"
// after each commit, then "done".
func init() {
	if os.Getenv("PGSTORE_WRITER") == "" {
		return
	}
	os.Exit(writer())
}

func writer() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "writer:", err); return 1 }
	batches, _ := strconv.Atoi(os.Getenv("PGSTORE_BATCHES"))
	size, _ := strconv.Atoi(os.Getenv("PGSTORE_BATCH"))
	signer, err := note.NewSigner(os.Getenv("PGSTORE_SKEY"))
	if err != nil {
		return fail(err)
	}
	k := &ledger.CheckpointKey{Origin: "proc/ho3/governance", Signer: signer}
	s, err := Open(ctx, os.Getenv("PGSTORE_DSN"), Options{Name: "governance", Writable: true,
		Ledger: ledger.Options{Actor: os.Getenv("PGSTORE_WRITER"), Checkpoint: k}, CheckpointFile: os.Getenv("PGSTORE_CKPT")})
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	out := bufio.NewWriter(os.Stdout)
	for b := range batches {
		drafts := make([]ledger.Draft, size)
		for i := range drafts {
			drafts[i] = ledger.Draft{EventType: "EV", SubmissionID: fmt.Sprintf("%s-%d-%d", os.Getenv("PGSTORE_WRITER"), b, i)}
		}
		es, err := s.Append(ctx, drafts)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(out, "acked %d %d %s\n", es[0].Seq, es[len(es)-1].Seq, es[len(es)-1].EntryHash)
		out.Flush()
	}
	fmt.Fprintln(out, "done")
	out.Flush()
	return 0
}

// acked is what a writer process acknowledged: seq → entry_hash of the
// last entry of each batch, and the first seq of each.
type acked struct {
	last  map[int64]string
	first []int64
}

func startWriters(t testing.TB, n, batches, size int, dsn, skey, ckpt string) ([]*exec.Cmd, []chan acked) {
	t.Helper()
	cmds := make([]*exec.Cmd, n)
	results := make([]chan acked, n)
	for i := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PGSTORE_WRITER=w"+strconv.Itoa(i), "PGSTORE_DSN="+dsn, "PGSTORE_SKEY="+skey,
			"PGSTORE_CKPT="+ckpt, "PGSTORE_BATCHES="+strconv.Itoa(batches), "PGSTORE_BATCH="+strconv.Itoa(size))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		cmds[i] = cmd
		results[i] = make(chan acked, 1)
		go func() {
			a := acked{last: map[int64]string{}}
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) == 4 && f[0] == "acked" {
					first, _ := strconv.ParseInt(f[1], 10, 64)
					last, _ := strconv.ParseInt(f[2], 10, 64)
					a.first = append(a.first, first)
					a.last[last] = f[3]
				}
			}
			results[i] <- a
		}()
	}
	return cmds, results
}

// checkAcked requires every acknowledged batch to be in the ledger, whole
// and at its seqs, and the ledger to verify.
func checkAcked(t *testing.T, s *Store, as []acked, size int, vs note.Verifiers) int64 {
	t.Helper()
	hashes := map[int64]string{}
	require.NoError(t, s.Lines(ctx, 0, -1, func(seq int64, line []byte) bool {
		e, err := ledger.ParseLine(line)
		require.NoError(t, err)
		hashes[seq] = e.EntryHash
		return true
	}))
	for _, a := range as {
		for last, h := range a.last {
			require.Equal(t, h, hashes[last], "acknowledged entry %d", last)
		}
		for _, first := range a.first {
			_, ok := hashes[first+int64(size)-1]
			require.True(t, ok, "batch from %d whole", first)
		}
	}
	rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Verifiers: vs, Expect: true})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%+v", rep.Issues)
	return rep.Entries
}

func processKey(t testing.TB) (string, note.Verifiers) {
	skey, vkey, err := note.GenerateKey(nil, "proc-checkpoint")
	require.NoError(t, err)
	v, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	return skey, note.VerifierList(v)
}

// TestWriterProcesses: 8 processes × 500 entries each (100 batches of 5:
// TestConcurrentWriters makes 8 × 500 single appends on goroutines),
// through the database: no loss, no fork, a ledger that verifies.
func TestWriterProcesses(t *testing.T) { writersNoLoss(t, pgtest.DB(t)) }

// writersNoLoss runs 8 writer processes × 500 appends (batches of 100)
// through dsn and checks every acknowledged entry is there, once, in a
// ledger that verifies.
func writersNoLoss(t *testing.T, dsn string) {
	skey, vs := processKey(t)
	ckpt := filepath.Join(t.TempDir(), "governance.checkpoint")
	cmds, results := startWriters(t, 8, 100, 5, dsn, skey, ckpt)
	var as []acked
	for i, cmd := range cmds {
		require.NoError(t, cmd.Wait(), "writer %d", i)
		as = append(as, <-results[i])
	}
	s := open(t, dsn, "governance", ledger.Options{}, "")
	require.EqualValues(t, 8*500, checkAcked(t, s, as, 1, vs))
}

// TestKilledWriter: a writer killed with SIGKILL in the middle of its
// batches of 100 leaves every batch it acknowledged, whole, and nothing of
// the one it was writing: each batch is one transaction. The others go on.
func TestKilledWriter(t *testing.T) {
	dsn := pgtest.DB(t)
	skey, vs := processKey(t)
	ckpt := filepath.Join(t.TempDir(), "governance.checkpoint")
	cmds, results := startWriters(t, 3, 20, 100, dsn, skey, ckpt)
	// Kill writer 0 once the ledger holds a few batches, mid-stream.
	s := open(t, dsn, "governance", ledger.Options{}, "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := s.State(ctx)
		require.NoError(t, err)
		if st.Size >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, cmds[0].Process.Signal(syscall.SIGKILL))
	err := cmds[0].Wait()
	require.Error(t, err, "killed")
	var as []acked
	as = append(as, <-results[0])
	for i, cmd := range cmds[1:] {
		require.NoError(t, cmd.Wait(), "writer %d", i+1)
		as = append(as, <-results[i+1])
	}
	n := checkAcked(t, s, as, 100, vs)
	require.Zero(t, n%100, "only whole batches: %d entries", n)
	// The killed writer's acknowledged batches are there; of the others,
	// at most the one whose commit it did not live to acknowledge.
	mine := n - 2*20*100
	require.GreaterOrEqual(t, mine, int64(100*len(as[0].first)))
	require.LessOrEqual(t, mine, int64(100*len(as[0].first)+100))
	st, err := s.State(ctx)
	require.NoError(t, err)
	require.Equal(t, n, st.Size)
}
