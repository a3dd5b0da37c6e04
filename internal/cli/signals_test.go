package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFirstSignalEndsBlockedVerb: a verb blocked where no context reaches it
// (here, a channel nobody closes; in issue 10, an open of a FIFO) still ends
// on the first SIGTERM, within signalGrace, killed by that signal.
func TestFirstSignalEndsBlockedVerb(t *testing.T) {
	if os.Getenv("CP_SIGNAL_CHILD") == "1" {
		Main("cp-test", nil, func(ctx context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) int {
			watchSignals(ctx)
			io.WriteString(stdout, "ready\n")
			select {} // deaf to ctx
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestFirstSignalEndsBlockedVerb$")
	cmd.Env = append(os.Environ(), "CP_SIGNAL_CHILD=1")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() })
	buf := make([]byte, 6)
	_, err = io.ReadFull(out, buf)
	require.NoError(t, err)
	require.Equal(t, "ready\n", string(buf))

	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "want the process ended by the signal, got %v", err)
		ws := ee.Sys().(syscall.WaitStatus)
		require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGTERM, "want ended by SIGTERM, got %v", ws)
		require.Less(t, time.Since(start), signalGrace+5*time.Second)
	case <-time.After(signalGrace + 15*time.Second):
		t.Fatal("the first SIGTERM did not end a blocked verb")
	}
}

// TestSignalEndsVerb: a verb that declares SignalEnds runs with the
// default dispositions (no handler, no thread parked for it), so the first
// SIGTERM ends the process at once, even while the verb waits on its
// context, as a one-entry append; another verb's context is cancelled
// instead, and it answers (CANCELLED).
func TestSignalEndsVerb(t *testing.T) {
	if v := os.Getenv("CP_SIGNAL_CHILD"); v == "ends" || v == "watches" {
		tool := &Tool{Name: "cp-test", Usage: "usage\n", Verbs: []*Verb{{Name: "wait", Schema: "cp-test.echo.request.json", SignalEnds: v == "ends",
			Run: func(ctx context.Context, _ *Call, _ Request) Outcome {
				os.Stdout.WriteString("ready\n")
				<-ctx.Done()
				return Outcome{Err: ctx.Err()}
			}}}}
		Main("cp-test", nil, func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
			return Run(ctx, tool, []string{"wait"}, strings.NewReader(""), io.Discard, os.Stderr)
		})
		return
	}
	for _, mode := range []string{"ends", "watches"} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestSignalEndsVerb$")
		cmd.Env = append(os.Environ(), "CP_SIGNAL_CHILD="+mode)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill() })
		buf := make([]byte, 6)
		_, err = io.ReadFull(out, buf)
		require.NoError(t, err)
		require.Equal(t, "ready\n", string(buf))
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		err = cmd.Wait()
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "%s: want a failed exit, got %v", mode, err)
		ws := ee.Sys().(syscall.WaitStatus)
		if mode == "ends" {
			require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGTERM, "%s: want ended by SIGTERM, got %v", mode, ws)
		} else {
			require.False(t, ws.Signaled(), "%s: want the verb to answer, got %v", mode, ws)
			require.Equal(t, ExitUnavailable, ws.ExitStatus(), mode)
		}
	}
}
