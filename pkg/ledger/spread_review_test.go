package ledger

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// killBatch is the size of the killed writer's batches: large, of large
// entries, so that each is encoded on every core (build, buildSpread) and
// its write and fsyncs take long enough to be killed in.
const killBatch = 1500

// spreadKillEnv makes the test binary the writer TestKilledSpreadWriter
// kills: it appends batches of killBatch to the ledger the variable names
// until killed, saying "seq hash" of each batch's last entry once Append
// has returned.
const spreadKillEnv = "CP_LEDGER_SPREAD_KILL_WRITER"

func init() {
	path := os.Getenv(spreadKillEnv)
	if path == "" {
		return
	}
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 4)) // spread whatever the machine
	l, err := OpenWriter(path, Options{Actor: "killed"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for b := 0; ; b++ {
		ds := spreadDrafts(killBatch)
		ds[0].Metadata = map[string]any{"pad": strings.Repeat("x", spreadLine), "batch": b}
		es, err := l.Append(ctx, ds)
		if err != nil || len(es) != killBatch {
			fmt.Fprintln(os.Stderr, len(es), err)
			os.Exit(2)
		}
		last := es[len(es)-1]
		fmt.Fprintf(w, "%d %s\n", last.Seq, last.EntryHash)
		w.Flush()
	}
}

// TestKilledSpreadWriter: a writer of spread batches killed with SIGKILL
// at random moments (mostly while a batch is being written or fsynced)
// leaves a ledger that the next writer brings in step and that verifies,
// holding every entry whose batch was acknowledged, with the hash it was
// acknowledged with. Of the batch in flight, whole entries may remain (a
// write killed part-way lands a prefix of its bytes; the next writer keeps
// the prefix's whole lines, rebuilding their stored hashes, and cuts the
// torn one): never acknowledged, they verify and chain as any entry does.
// DESIGN §5 promises that a crash loses only unacknowledged entries, not
// that it loses all of them.
func TestKilledSpreadWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("kills writer processes")
	}
	path := filepath.Join(t.TempDir(), "l.jsonl")
	r := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	acked := map[int64]string{}
	var top int64 = -1
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), spreadKillEnv+"="+path)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		record := func(s string) {
			f := strings.Fields(s)
			require.Len(t, f, 2, "%q", s)
			seq, err := strconv.ParseInt(f[0], 10, 64)
			require.NoError(t, err)
			acked[seq] = f[1]
			top = max(top, seq)
		}
		// Let it acknowledge a batch or two, then kill it a random time
		// into the next.
		for range 1 + round%2 {
			s, ok := <-lines
			require.True(t, ok, "the writer stopped: %s", stderr.String())
			record(s)
		}
		time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		for s := range lines {
			record(s) // acknowledged before it died
		}
		err = cmd.Wait()
		require.Error(t, err, "killed: %s", stderr.String())
		require.Empty(t, stderr.String())
	}

	// The next writer brings the files in step and appends after them.
	l, err := OpenWriter(path, Options{Actor: "next"})
	require.NoError(t, err)
	es, err := l.Append(ctx, []Draft{{EventType: "E", Decision: "after the kills"}})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	n := es[0].Seq
	require.Greater(t, n, top, "every acknowledged entry is before the next writer's")

	rep := verify(t, path, VerifyOptions{})
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.EqualValues(t, n+1, rep.Entries)
	s, err := OpenFileStore(path)
	require.NoError(t, err)
	defer s.Close()
	found := 0
	require.NoError(t, s.Lines(ctx, 0, -1, func(seq int64, line []byte) bool {
		if want, ok := acked[seq]; ok {
			var e struct {
				EntryHash string `json:"entry_hash"`
			}
			require.NoError(t, json.Unmarshal(line, &e))
			require.Equal(t, want, e.EntryHash, "entry %d", seq)
			found++
		}
		return true
	}))
	require.Equal(t, len(acked), found, "every acknowledged batch is there")
	t.Logf("%d batches acknowledged, %d entries before the next writer's (%d batches, %d entries of the batch in flight kept)", len(acked), n, int64(math.Floor(float64(n)/killBatch)), n%killBatch)
}

// TestAppendSpreadRefusalAsSequential: a large batch with a draft that
// cannot be encoded (at the first spread entry, at a run's edge, the
// last), with a second bad draft later in another run, is refused by
// Append exactly as the one-goroutine path refuses it: the same error
// (the first bad draft's), the drafts before it written and returned, the
// ledger valid and the next append chained after them.
func TestAppendSpreadRefusalAsSequential(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const n = 400
	bads := []struct {
		name string
		meta map[string]any
	}{
		{"nan", map[string]any{"nan": math.NaN()}},
		{"inf", map[string]any{"x": []any{1, math.Inf(-1)}}},
		{"number", map[string]any{"n": json.Number("1e99999")}},
		{"func", map[string]any{"f": func() {}}},
		{"bad utf-8 key", map[string]any{"\xff": 1}},
	}
	for _, at := range []int{1, 2, 100, 101, 200, 399} {
		for _, bad := range bads {
			t.Run(fmt.Sprintf("at%d/%s", at, bad.name), func(t *testing.T) {
				mk := func() []Draft {
					ds := spreadDrafts(n)
					ds[0].Metadata = map[string]any{"pad": strings.Repeat("x", spreadLine)}
					ds[at].Metadata = bad.meta
					if at+150 < n {
						ds[at+150].Reason = "\xfe" // another refusal, later
						ds[at+150].Metadata = map[string]any{"nan": math.NaN()}
					}
					return ds
				}
				run := func(procs int) ([]Entry, error) {
					runtime.GOMAXPROCS(procs)
					path := filepath.Join(t.TempDir(), "l.jsonl")
					l, err := OpenWriter(path, Options{Actor: "a"})
					require.NoError(t, err)
					defer l.Close()
					es, aerr := l.Append(ctx, mk())
					next, err := l.Append(ctx, []Draft{{EventType: "E"}})
					require.NoError(t, err)
					require.EqualValues(t, len(es), next[0].Seq)
					if len(es) > 0 {
						require.Equal(t, es[len(es)-1].EntryHash, next[0].PreviousHash)
					}
					rep := verify(t, path, VerifyOptions{})
					require.True(t, rep.Valid, "%+v", rep.Issues)
					require.EqualValues(t, len(es)+1, rep.Entries)
					return es, aerr
				}
				seqEs, seqErr := run(1)
				es, err := run(4)
				require.Error(t, seqErr)
				require.Len(t, seqEs, at)
				require.Len(t, es, at)
				require.EqualError(t, err, seqErr.Error())
				var ce interface{ Code() string }
				if errors.As(seqErr, &ce) {
					var ce2 interface{ Code() string }
					require.ErrorAs(t, err, &ce2)
					require.Equal(t, ce.Code(), ce2.Code())
				}
			})
		}
	}
}

// TestSpreadEntriesOwnTheirBytes: the entries a large batch returns hold
// nothing of the pooled buffers it was encoded in: after more batches
// reuse those buffers, each returned entry still re-encodes to the line
// the ledger holds for it.
func TestSpreadEntriesOwnTheirBytes(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	path := filepath.Join(t.TempDir(), "l.jsonl")
	l, err := OpenWriter(path, Options{Actor: "a"})
	require.NoError(t, err)
	defer l.Close()
	var kept []Entry
	for b := range 6 {
		ds := spreadDrafts(300 + 37*b)
		ds[0].Metadata = map[string]any{"pad": strings.Repeat(string(rune('a'+b)), spreadLine+b*1000)}
		es, err := l.Append(ctx, ds)
		require.NoError(t, err)
		kept = append(kept, es...)
	}
	lines := map[int64]string{}
	require.NoError(t, l.Lines(ctx, 0, -1, func(seq int64, line []byte) bool {
		lines[seq] = string(line)
		return true
	}))
	require.Len(t, lines, len(kept))
	for _, e := range kept {
		b, _, err := encode(nil, &e)
		require.NoError(t, err)
		require.Equal(t, lines[e.Seq], strings.TrimSuffix(string(b), "\n"), "entry %d", e.Seq)
	}
}
