package e2e

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// coprocess is `cp-ledger append --ledger path` fed through a pipe by a
// caller that sends one request and waits for its ack.
type coprocess struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	acks   *bufio.Reader
	stderr string // file
	done   chan struct{}
}

func startAppend(t *testing.T, path string) *coprocess {
	t.Helper()
	c := &coprocess{t: t, cmd: command("append", "--ledger", path), done: make(chan struct{}),
		stderr: filepath.Join(t.TempDir(), "stderr")}
	var err error
	c.stdin, err = c.cmd.StdinPipe()
	require.NoError(t, err)
	// A pipe of our own rather than StdoutPipe: Wait, run concurrently
	// below, must not close it under a read.
	stdout, w, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { stdout.Close() })
	c.acks = bufio.NewReader(stdout)
	c.cmd.Stdout = w
	errf, err := os.Create(c.stderr)
	require.NoError(t, err)
	defer errf.Close()
	c.cmd.Stderr = errf
	err = c.cmd.Start()
	w.Close()
	require.NoError(t, err)
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.cmd.Process.Kill(); c.stdin.Close(); <-c.done })
	return c
}

// send writes one request and returns its acknowledgement.
func (c *coprocess) send(event string) ack {
	c.t.Helper()
	_, err := io.WriteString(c.stdin, `{"event_type":"`+event+`"}`+"\n")
	require.NoError(c.t, err)
	line, err := c.acks.ReadBytes('\n')
	require.NoError(c.t, err)
	got, err := parseAck(line)
	require.NoError(c.t, err)
	return got
}

// signal sends sig and waits for the process to end (stdin stays open: it
// must not need EOF to stop). It returns the exit code (-1 when the signal
// ended the process), what stdout held after the acks already read, and
// stderr.
func (c *coprocess) signal(sig syscall.Signal) (int, string, string) {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Signal(sig))
	rest := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(c.acks); rest <- b }()
	var out []byte
	select {
	case out = <-rest:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("cp-ledger append still running 30 s after %v", sig)
	}
	<-c.done
	stderr, err := os.ReadFile(c.stderr)
	require.NoError(c.t, err)
	return c.cmd.ProcessState.ExitCode(), string(out), string(stderr)
}

// TestSignalEndsStream: once an append stream holds a second request,
// SIGINT or SIGTERM ends it cleanly even while it waits on stdin: the
// acknowledged entries stand, the answer is CANCELLED (exit 4), and the
// ledger verifies. A one-request stream keeps the default disposition
// (internal/cli/signals.go): the signal ends the process at once, and the
// entry it acknowledged is there all the same. (That case sends SIGTERM:
// a shell that starts the test in the background may have it inherit
// SIGINT ignored, which a process with no handler keeps.)
func TestSignalEndsStream(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "l.jsonl")
			c := startAppend(t, path)
			acks := []ack{c.send("FIRST"), c.send("SECOND")}
			code, rest, stderr := c.signal(sig)
			require.Equal(t, 4, code, "stdout: %s\nstderr: %s", rest, stderr)
			require.Contains(t, rest, `"code":"CANCELLED"`)
			require.Contains(t, stderr, "append stream interrupted")
			entries, torn := readLedger(t, path)
			require.Zero(t, torn)
			require.Len(t, entries, 2)
			requireAcked(t, entries, acks, "interrupted stream")
			requireVerifies(t, path, 2)
		})
	}
	t.Run("one request", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "l.jsonl")
		c := startAppend(t, path)
		first := c.send("FIRST")
		code, rest, _ := c.signal(syscall.SIGTERM)
		require.Equal(t, -1, code, "the default disposition ends the process")
		require.Empty(t, rest)
		entries, _ := readLedger(t, path)
		requireAcked(t, entries, []ack{first}, "one-request stream")
		requireVerifies(t, path, 1)
	})
}
