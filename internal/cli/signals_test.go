package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
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
