package pgtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSentinel: what a test binary tells its sentinel is stopped and
// removed when it exits without cleaning up (os.Exit, as after a panic or
// go test's timeout; SIGKILL), and left alone when it says it is done.
func TestSentinel(t *testing.T) {
	for _, how := range []string{"exit", "kill", "done"} {
		t.Run(how, func(t *testing.T) {
			fixture := filepath.Join(t.TempDir(), "a fixture") // a space: one argument
			require.NoError(t, os.MkdirAll(filepath.Join(fixture, "sub"), 0o755))
			sleeper := exec.Command("sleep", "60") // a server this process started
			require.NoError(t, sleeper.Start())
			t.Cleanup(func() { sleeper.Process.Kill() })
			exited := make(chan struct{})
			go func() { sleeper.Wait(); close(exited) }()

			helper := exec.Command(os.Args[0], "-test.run=^TestSentinelHelper$")
			helper.Env = append(os.Environ(), "PGTEST_SENTINEL_HELPER="+how,
				"PGTEST_SENTINEL_DIR="+fixture, "PGTEST_SENTINEL_PID="+strconv.Itoa(sleeper.Process.Pid))
			out, err := helper.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, helper.Start())
			line, _ := bufio.NewReader(out).ReadString('\n')
			require.Equal(t, "told\n", line)
			if how == "kill" {
				require.NoError(t, helper.Process.Kill())
			}
			helper.Wait()

			if how == "done" {
				time.Sleep(500 * time.Millisecond)
				require.DirExists(t, fixture, "done: nothing removed")
				select {
				case <-exited:
					t.Fatal("done: nothing signalled")
				default:
				}
				return
			}
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				t.Fatal("the process the helper started still runs")
			}
			require.Eventually(t, func() bool {
				_, err := os.Stat(fixture)
				return os.IsNotExist(err)
			}, 20*time.Second, 50*time.Millisecond, "the fixture is removed")
		})
	}
}

// TestSentinelHelper is TestSentinel's test binary: it tells a sentinel
// of its own what to sweep, then ends as PGTEST_SENTINEL_HELPER says.
func TestSentinelHelper(t *testing.T) {
	how := os.Getenv("PGTEST_SENTINEL_HELPER")
	if how == "" {
		t.Skip("TestSentinel's helper process")
	}
	tell("kill TERM "+os.Getenv("PGTEST_SENTINEL_PID"), "dir "+os.Getenv("PGTEST_SENTINEL_DIR"))
	fmt.Println("told")
	switch how {
	case "done":
		sentinelDone()
		os.Exit(0)
	case "kill":
		time.Sleep(time.Minute) // killed meanwhile
	}
	os.Exit(3) // no cleanup, as after a panic
}
