// Package e2e runs the real cp-ledger binary as OS processes: many writers
// at once, writers killed mid-append, and crashes simulated byte by byte,
// checking the guarantees of DESIGN.md §5 from the outside.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/internal/testenv"
)

// cpLedger is the binary under test, built once by TestMain; home is the
// HOME its processes see.
var cpLedger, home string

// TestMain builds cp-ledger and starts a throwaway PostgreSQL for the
// tests whose tier is in a database (pgtest: skipped without one, a
// failure in CI).
func TestMain(m *testing.M) {
	os.Exit(runMain(pgtest.M(m)))
}

func runMain(m interface{ Run() int }) int {
	tmp, err := testenv.MkdirTemp("cp-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(gomod)) == 0 {
		fmt.Fprintf(os.Stderr, "finding the module root: %v\n", err)
		return 1
	}
	cpLedger = filepath.Join(tmp, "cp-ledger")
	home = filepath.Join(tmp, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	build := exec.Command("go", "build", "-o", cpLedger, "./cmd/cp-ledger")
	build.Dir = filepath.Dir(string(bytes.TrimSpace(gomod)))
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building cp-ledger: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// command returns cp-ledger with args, in an environment that holds none of
// the caller's Control Plane settings and a HOME of its own.
func command(args ...string) *exec.Cmd {
	cmd := exec.Command(cpLedger, args...)
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	return cmd
}

// result is a finished process.
type result struct {
	stdout, stderr []byte
	code           int
}

// run runs cp-ledger to completion with stdin.
func run(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	cmd := command(args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		require.NoError(t, err, "running cp-ledger %v", args)
	}
	return result{out.Bytes(), errb.Bytes(), cmd.ProcessState.ExitCode()}
}

// ack is what an append acknowledged.
type ack struct {
	Seq       int64  `json:"seq"`
	ID        string `json:"id"`
	EntryHash string `json:"entry_hash"`
}

// parseAck decodes one "ok" envelope line of append.
func parseAck(line []byte) (ack, error) {
	var env struct {
		Status string `json:"status"`
		Result *ack   `json:"result"`
	}
	if err := json.Unmarshal(line, &env); err != nil {
		return ack{}, err
	}
	if env.Status != "ok" || env.Result == nil || env.Result.ID == "" || len(env.Result.EntryHash) != 64 {
		return ack{}, fmt.Errorf("not an append acknowledgement: %s", line)
	}
	return *env.Result, nil
}

func parseAcks(t *testing.T, stdout []byte) []ack {
	t.Helper()
	var acks []ack
	for _, line := range bytes.Split(bytes.TrimSuffix(stdout, []byte("\n")), []byte("\n")) {
		a, err := parseAck(line)
		require.NoError(t, err)
		acks = append(acks, a)
	}
	return acks
}

// entry is what these tests read back from a ledger line.
type entry struct {
	Seq       int64          `json:"seq"`
	ID        string         `json:"id"`
	EntryHash string         `json:"entry_hash"`
	EventType string         `json:"event_type"`
	Metadata  map[string]any `json:"metadata"`
	line      []byte
}

// readLedger returns the complete lines of a ledger file (a torn tail is
// not an entry) and the number of bytes after them. A ledger not yet created
// has none.
func readLedger(t *testing.T, path string) ([]entry, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0
	}
	require.NoError(t, err)
	end := bytes.LastIndexByte(b, '\n') + 1
	var entries []entry
	for _, line := range bytes.SplitAfter(b[:end], []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e entry
		require.NoError(t, json.Unmarshal(line, &e), "ledger line %d", len(entries))
		e.line = line
		entries = append(entries, e)
	}
	return entries, len(b) - end
}

// requireVerifies runs cp-ledger verify and requires a valid ledger of n
// entries.
func requireVerifies(t *testing.T, path string, n int) {
	t.Helper()
	r := run(t, nil, "verify", "--ledger", path)
	require.Equal(t, 0, r.code, "verify: %s%s", r.stdout, r.stderr)
	var env struct {
		Result struct {
			Valid   bool  `json:"valid"`
			Entries int64 `json:"entries"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(r.stdout, &env))
	require.True(t, env.Result.Valid)
	require.EqualValues(t, n, env.Result.Entries)
}

// requireAcked checks that every acknowledged entry is in the ledger at its
// seq, with the acknowledged id and entry_hash (when the acknowledgement
// carries one: a routing decision does not).
func requireAcked(t *testing.T, entries []entry, acks []ack, who string) {
	t.Helper()
	for _, a := range acks {
		if a.Seq >= int64(len(entries)) {
			t.Fatalf("%s: acknowledged seq %d is not in the ledger (%d entries)", who, a.Seq, len(entries))
		}
		if got := entries[a.Seq]; got.ID != a.ID || a.EntryHash != "" && got.EntryHash != a.EntryHash {
			t.Fatalf("%s: seq %d holds %s %s, acknowledged as %s %s", who, a.Seq, got.ID, got.EntryHash, a.ID, a.EntryHash)
		}
	}
}

// follower reads a ledger file as it grows across rounds, and requires that
// a line once complete never changes: recovery may remove only a partial
// last line.
type follower struct {
	path    string
	data    []byte // the complete lines read so far
	entries []entry
}

// read reads the lines completed since the last read and returns the
// number of bytes after the last complete line.
func (f *follower) read(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) && len(f.data) == 0 {
		return 0
	}
	require.NoError(t, err)
	if !bytes.HasPrefix(b, f.data) {
		t.Fatalf("%s: complete lines changed (%d bytes before, file now %d bytes)", f.path, len(f.data), len(b))
	}
	end := bytes.LastIndexByte(b, '\n') + 1
	for _, line := range bytes.SplitAfter(b[len(f.data):end], []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e entry
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("%s: line %d: %v", f.path, len(f.entries), err)
		}
		f.entries = append(f.entries, e)
	}
	f.data = b[:end]
	return len(b) - end
}

// TestConcurrentAppendProcesses starts streaming writers and single-entry
// writers at once on one ledger: every request is acknowledged exactly once,
// at a seq that holds exactly that entry, and the chain never forks.
func TestConcurrentAppendProcesses(t *testing.T) {
	streamers, perStream, singlers, perSingler := 6, 300, 2, 15
	if testing.Short() {
		perStream, perSingler = 60, 4
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")

	type proc struct {
		name   string
		stdout bytes.Buffer
		stderr bytes.Buffer
		err    error
		// want[i] is the metadata the i-th acknowledgement must carry.
		want []map[string]any
	}
	var procs []*proc
	start := make(chan struct{})
	var wg sync.WaitGroup

	for p := range streamers {
		pr := &proc{name: fmt.Sprintf("stream-%d", p)}
		procs = append(procs, pr)
		cmd := command("append", "--ledger", path)
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = &pr.stdout, &pr.stderr
		for n := range perStream {
			pr.want = append(pr.want, map[string]any{"p": float64(p), "n": float64(n), "_auth": "off"})
		}
		wg.Go(func() {
			<-start
			if pr.err = cmd.Start(); pr.err != nil {
				return
			}
			// Lines go in a few at a time, so that the writer's batches
			// are small and interleave with the other writers'.
			for n := range perStream {
				fmt.Fprintf(stdin, `{"event_type":"STREAM","submission_id":"%s","metadata":{"p":%d,"n":%d}}`+"\n", pr.name, p, n)
				if n%5 == 4 {
					time.Sleep(300 * time.Microsecond)
				}
			}
			stdin.Close()
			pr.err = cmd.Wait()
		})
	}
	for s := range singlers {
		pr := &proc{name: fmt.Sprintf("single-%d", s)}
		procs = append(procs, pr)
		for n := range perSingler {
			pr.want = append(pr.want, map[string]any{"s": float64(s), "n": float64(n), "_auth": "off"})
		}
		wg.Go(func() {
			<-start
			for n := range perSingler {
				cmd := command("append", "--ledger", path, "--event-type", "SINGLE",
					"--metadata", fmt.Sprintf(`{"s":%d,"n":%d}`, s, n))
				cmd.Stdout, cmd.Stderr = &pr.stdout, &pr.stderr
				if pr.err = cmd.Run(); pr.err != nil {
					return
				}
			}
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d processes appended %d entries in %v", streamers+singlers*perSingler,
		streamers*perStream+singlers*perSingler, time.Since(began))

	entries, torn := readLedger(t, path)
	require.Zero(t, torn, "bytes after the last complete line")
	total := streamers*perStream + singlers*perSingler
	require.Len(t, entries, total, "entries in the ledger")

	ids := map[string]int64{}
	for i, e := range entries {
		require.EqualValues(t, i, e.Seq, "seq of line %d", i)
		if prev, dup := ids[e.ID]; dup {
			t.Fatalf("id %s at seq %d and %d", e.ID, prev, i)
		}
		ids[e.ID] = e.Seq
	}

	acked := map[int64]string{}
	for _, pr := range procs {
		require.NoError(t, pr.err, "%s: %s", pr.name, pr.stderr.String())
		require.Empty(t, pr.stderr.String(), "%s stderr", pr.name)
		acks := parseAcks(t, pr.stdout.Bytes())
		require.Len(t, acks, len(pr.want), "%s: acknowledgements", pr.name)
		requireAcked(t, entries, acks, pr.name)
		for i, a := range acks {
			if other, dup := acked[a.Seq]; dup {
				t.Fatalf("seq %d acknowledged to %s and %s", a.Seq, other, pr.name)
			}
			acked[a.Seq] = pr.name
			// The entry at the acknowledged seq is the one this request
			// asked for, and a process's entries keep its order.
			require.Equal(t, pr.want[i], entries[a.Seq].Metadata, "%s: request %d", pr.name, i)
			if i > 0 {
				require.Greater(t, a.Seq, acks[i-1].Seq, "%s: acknowledgements out of order", pr.name)
			}
		}
	}
	require.Len(t, acked, total)
	requireVerifies(t, path, total)
	// The index the processes kept between them answers as the lines do.
	requireFindByType(t, path, entries, "STREAM", "concurrent appenders")
	requireFindByType(t, path, entries, "SINGLE", "concurrent appenders")

	switches := 0
	for i := 1; i < total; i++ {
		if acked[int64(i)] != acked[int64(i-1)] {
			switches++
		}
	}
	t.Logf("the writers took turns %d times", switches)
}

// TestKillDuringAppend kills a streaming writer with SIGKILL at varied
// instants: every entry it acknowledged before dying is in the ledger,
// byte-identical, at its seq; the next append repairs whatever the kill left
// half-written; and the ledger then verifies.
func TestKillDuringAppend(t *testing.T) {
	rounds := 25
	if testing.Short() {
		rounds = 8
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	ledger := &follower{path: path}
	var allAcks []ack
	repaired := 0
	for round := range rounds {
		delay := time.Duration(round*7%31) * time.Millisecond
		mode := killMode(round % 3)
		acks, stderr := killedWriter(t, []string{"append", "--ledger", path}, round, delay, mode)
		allAcks = append(allAcks, acks...)

		torn := ledger.read(t)
		complete := len(ledger.entries)
		requireAcked(t, ledger.entries, allAcks, fmt.Sprintf("round %d (killed %v after start or first ack)", round, delay))
		// Whatever the kill left of the index, lookups through it answer
		// what the lines do.
		requireFindByType(t, path, ledger.entries, "KILLED", fmt.Sprintf("round %d, after the kill", round))
		requireFindByType(t, path, ledger.entries, "AFTER_KILL", fmt.Sprintf("round %d, after the kill", round))

		// One more append must succeed at the next seq after the complete
		// lines (the kill can lose only a partial line, never a complete
		// one), repairing what the kill left.
		r := run(t, nil, "append", "--ledger", path, "--event-type", "AFTER_KILL")
		require.Equal(t, 0, r.code, "round %d: append after kill: %s%s", round, r.stdout, r.stderr)
		a := parseAcks(t, r.stdout)
		require.Len(t, a, 1)
		require.EqualValues(t, complete, a[0].Seq, "round %d: seq after repair (torn bytes: %d)", round, torn)
		if torn > 0 {
			require.Contains(t, string(r.stderr), "cp-ledger: warning: ", "round %d", round)
			require.Contains(t, string(r.stderr), "removed a partial line of "+fmt.Sprint(torn)+" bytes", "round %d", round)
		}
		if len(r.stderr) > 0 {
			repaired++
			require.Contains(t, string(r.stderr), "repaired an unfinished append", "round %d", round)
		}
		allAcks = append(allAcks, a...)

		require.Zero(t, ledger.read(t), "round %d: torn bytes after the repairing append", round)
		require.Len(t, ledger.entries, complete+1)
		requireAcked(t, ledger.entries, allAcks, fmt.Sprintf("round %d after repair", round))
		requireVerifies(t, path, complete+1)
		requireFindByType(t, path, ledger.entries, "AFTER_KILL", fmt.Sprintf("round %d, after the repair", round))
		t.Logf("round %2d: killed after %2v (%s): %4d acknowledged, %5d complete lines, %3d torn bytes; repair: %q; killed writer's stderr: %q",
			round, delay, mode, len(acks), complete, torn,
			firstLine(r.stderr), firstLine(stderr))
	}
	t.Logf("%d rounds, %d entries in all, %d acknowledged, %d repairs", rounds, len(ledger.entries), len(allAcks), repaired)
}

// killMode is how a killed writer is fed, and when its kill's delay starts.
type killMode int

const (
	floodFromStart killMode = iota // lines as fast as the pipe takes them; delay from the start
	floodFromAck                   // the same, delay from the first acknowledgement: the kill lands while batches flow
	lockstep                       // each line only once the one before is acknowledged: one-entry batches
)

func (m killMode) String() string {
	return [...]string{"flood, from start", "flood, from first ack", "lockstep, from start"}[m]
}

// killedWriter starts an append reading NDJSON from a pipe, feeds it lines
// and collects its acknowledgements as they arrive, and kills it with
// SIGKILL after delay. It returns the acknowledgements read completely
// before the process died, and its stderr.
func killedWriter(t *testing.T, args []string, round int, delay time.Duration, mode killMode) ([]ack, []byte) {
	t.Helper()
	line := func(n int) string {
		return fmt.Sprintf(`{"event_type":"KILLED","metadata":{"round":%d,"n":%d}}`, round, n)
	}
	return killedStream(t, command(args...), line, parseAck, delay, mode)
}

// killedStream is killedWriter for any stream verb: cmd is fed line(n) for
// n = 0, 1, ... and each answer is read by parse.
func killedStream(t *testing.T, cmd *exec.Cmd, line func(n int) string, parse func([]byte) (ack, error), delay time.Duration, mode killMode) ([]ack, []byte) {
	t.Helper()
	s := feedStream(t, cmd, line, parse, mode == lockstep, false)
	if mode == floodFromAck {
		<-s.first
	}
	time.Sleep(delay)
	require.NoError(t, cmd.Process.Kill())
	s.stdin.Close() // unblocks a feeder stuck on a full pipe
	<-s.eof
	<-s.fed
	err := cmd.Wait()
	require.Error(t, err, "the writer finished before it was killed")
	require.NoError(t, s.readErr)
	return s.acks, s.stderr.Bytes()
}

// fedStream is a stream process being fed requests and read
// (feedStream). Its fields are the reader's and the feeder's: read them
// after eof and fed are closed.
type fedStream struct {
	stdin   io.WriteCloser
	stderr  bytes.Buffer
	acks    []ack
	last    string // the last line of output
	readErr error
	first   chan struct{} // closed at the first acknowledgement, or at EOF
	eof     chan struct{} // closed when the output ends
	fed     chan struct{} // closed when the feeder stops
}

// feedStream starts cmd and feeds it line(n) for n = 0, 1, ... until its
// stdin pipe breaks (flushed every 8 lines; in lockstep, one line per
// acknowledgement), while it reads each line of output as an
// acknowledgement (parse), or skips it when it is an error answer and
// skipErrors is set.
func feedStream(t *testing.T, cmd *exec.Cmd, line func(n int) string, parse func([]byte) (ack, error), lockstep, skipErrors bool) *fedStream {
	t.Helper()
	s := &fedStream{first: make(chan struct{}), eof: make(chan struct{}), fed: make(chan struct{})}
	var err error
	s.stdin, err = cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = &s.stderr
	require.NoError(t, cmd.Start())
	acked := make(chan struct{}, 1) // one token per acknowledgement, for lockstep
	go func() {
		defer close(s.eof)
		defer close(acked)
		defer func() {
			if len(s.acks) == 0 {
				close(s.first)
			}
		}()
		br := bufio.NewReader(stdout)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return // EOF: a partial last line is not an acknowledgement
			}
			s.last = string(line)
			if skipErrors && strings.Contains(s.last, `"status":"error"`) {
				continue
			}
			a, err := parse(line)
			if err != nil {
				s.readErr = err
				return
			}
			if s.acks = append(s.acks, a); len(s.acks) == 1 {
				close(s.first)
			}
			if lockstep {
				acked <- struct{}{}
			}
		}
	}()
	go func() {
		defer close(s.fed)
		// Until the pipe breaks: the process ends long before this many
		// lines are written.
		w := bufio.NewWriterSize(s.stdin, 4096)
		for n := range 5_000_000 {
			if _, err := fmt.Fprintln(w, line(n)); err != nil {
				return
			}
			if (lockstep || n%8 == 7) && w.Flush() != nil {
				return
			}
			if lockstep {
				if _, ok := <-acked; !ok {
					return
				}
			}
		}
		w.Flush()
	}()
	return s
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// TestCrashMidWrite simulates, byte for byte, a writer that died while
// writing the next entry's line and stored hashes: any prefix of each may
// have reached the disk. verify reports a torn tail; the next append keeps a
// line that was written whole (rebuilding its stored hashes), drops a partial
// one, says so on stderr, and leaves a ledger that verifies with every
// earlier line untouched.
func TestCrashMidWrite(t *testing.T) {
	base := t.TempDir()
	seed := filepath.Join(base, "seed.jsonl")
	var reqs bytes.Buffer
	for i := range 5 {
		fmt.Fprintf(&reqs, `{"event_type":"E%d","metadata":{"i":%d}}`+"\n", i, i)
	}
	r := run(t, reqs.Bytes(), "append", "--ledger", seed)
	require.Equal(t, 0, r.code, "%s", r.stderr)
	goodLines, err := os.ReadFile(seed)
	require.NoError(t, err)
	goodHashes, err := os.ReadFile(strings.TrimSuffix(seed, ".jsonl") + ".tlog")
	require.NoError(t, err)

	// The bytes the writer of entry 5 writes: its line and its stored hashes.
	r = run(t, nil, "append", "--ledger", seed, "--event-type", "E5")
	require.Equal(t, 0, r.code, "%s", r.stderr)
	next := parseAcks(t, r.stdout)[0]
	allLines, err := os.ReadFile(seed)
	require.NoError(t, err)
	allHashes, err := os.ReadFile(strings.TrimSuffix(seed, ".jsonl") + ".tlog")
	require.NoError(t, err)
	newLine := allLines[len(goodLines):]
	newHashes := allHashes[len(goodHashes):]
	require.Greater(t, len(newHashes), 32, "entry 5 adds more than its leaf hash")

	tests := []struct {
		name       string
		line, hash int    // bytes of the new line and of its stored hashes on disk
		keep       bool   // entry 5 survives (its line is whole)
		warn       string // what the repairing append says, "" for nothing
	}{
		{"half a line", len(newLine) / 2, 0, false, "removed a partial line"},
		{"a line without its newline", len(newLine) - 1, 0, false, "removed a partial line"},
		{"half a line and all hashes", len(newLine) / 2, len(newHashes), false, "dropped stored hashes of 1 unwritten entries"},
		{"half a line and half a hash", len(newLine) / 2, 20, false, "removed a partial line"},
		{"half a line and some hashes", 10, 32 + 7, false, "removed a partial line"},
		{"a whole line without hashes", len(newLine), 0, true, "recomputed stored hashes of 1 entries"},
		{"a whole line and half its hashes", len(newLine), len(newHashes) / 2, true, "recomputed stored hashes of 1 entries"},
		{"all hashes without the line", 0, len(newHashes), false, "dropped stored hashes of 1 unwritten entries"},
		{"half a hash without the line", 0, 13, false, "removed a partial stored hash of 13 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			hashPath := strings.TrimSuffix(path, ".jsonl") + ".tlog"
			require.NoError(t, os.WriteFile(path, append(append([]byte{}, goodLines...), newLine[:tt.line]...), 0o644))
			require.NoError(t, os.WriteFile(hashPath, append(append([]byte{}, goodHashes...), newHashes[:tt.hash]...), 0o644))

			v := run(t, nil, "verify", "--ledger", path)
			require.Equal(t, 1, v.code, "verify before repair: %s", v.stdout)
			// Lines without their stored hashes read as a .tlog cut short:
			// TLOG_MISSING (issue 10); anything else torn is TORN_TAIL.
			require.Regexp(t, `"code":"(TORN_TAIL|TLOG_MISSING)"`, string(v.stdout))
			require.Contains(t, string(v.stderr), "cp-ledger: error: ")

			a := run(t, nil, "append", "--ledger", path, "--event-type", "AFTER_CRASH")
			require.Equal(t, 0, a.code, "append after crash: %s%s", a.stdout, a.stderr)
			got := parseAcks(t, a.stdout)[0]
			if tt.warn == "" {
				require.Empty(t, string(a.stderr))
			} else {
				require.Contains(t, string(a.stderr), "cp-ledger: warning: ")
				require.Contains(t, string(a.stderr), tt.warn)
			}

			entries, torn := readLedger(t, path)
			require.Zero(t, torn)
			lines, err := os.ReadFile(path)
			require.NoError(t, err)
			require.True(t, bytes.HasPrefix(lines, goodLines), "the five entries before the crash are untouched")
			if tt.keep {
				require.Len(t, entries, 7)
				require.Equal(t, next.EntryHash, entries[5].EntryHash, "entry 5, written whole, is kept")
				require.Equal(t, next.EntryHash, previousHash(t, a.stdout), "the next entry chains onto it")
			} else {
				require.Len(t, entries, 6)
			}
			require.EqualValues(t, len(entries)-1, got.Seq)
			requireVerifies(t, path, len(entries))
		})
	}
}

// previousHash returns the previous_hash of the acknowledgement in stdout.
func previousHash(t *testing.T, stdout []byte) string {
	var env struct {
		Result struct {
			PreviousHash string `json:"previous_hash"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(stdout, &env))
	return env.Result.PreviousHash
}
