package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// A test binary that dies without its cleanup running (a panic in a
// test, go test's -timeout, SIGKILL, Ctrl-C) left its cluster running and
// its directory in /tmp (~40 MB, and a server), its poolers, and the
// fixtures it made: the 1,000,000-entry ledgers of the PostgreSQL
// benchmarks are ~2 GB with the cluster's tables and WAL. A sentinel
// cleans up after it: a shell in a session of its own (so a Ctrl-C to the
// tests' process group does not reach it), reading lines from a pipe
// whose write end only this process holds, so that end of file is this
// process's exit, however it came. The lines say what to do then:
//
//	kill SIG PID  signal PID: a server or pooler this process started
//	dir PATH      remove PATH (after the signals, and their processes'
//	              exit, up to 10 s each)
//	done          this process cleaned up after itself: nothing to do
//
// The pids are this process's to give (its children, and the postmaster
// as pg_ctl reported it when it started), never read later from a file
// in a directory the cluster's user can write: the sentinel runs as the
// tests do (root, often) and signals only what the tests started.
const sentinelScript = `
kills=
set --
while IFS= read -r line; do
	case $line in
	done) exit 0 ;;
	"kill "*) rest=${line#kill }; kills="$kills ${rest%% *}:${rest#* }" ;;
	"dir "*) set -- "$@" "${line#dir }" ;;
	esac
done
for k in $kills; do kill -s "${k%%:*}" "${k#*:}" 2>/dev/null; done
for k in $kills; do
	i=0
	while kill -0 "${k#*:}" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
done
[ $# -gt 0 ] && rm -rf -- "$@"
`

var sentinel struct {
	once sync.Once
	mu   sync.Mutex
	w    *os.File // nil: none (it could not start, or is done)
}

// tell sends the sentinel lines, starting it on first use. Without one
// (no /bin/sh), nothing is swept after a crash, as before it.
func tell(lines ...string) {
	sentinel.once.Do(startSentinel)
	sentinel.mu.Lock()
	defer sentinel.mu.Unlock()
	if sentinel.w == nil {
		return
	}
	for _, l := range lines {
		fmt.Fprintln(sentinel.w, l)
	}
}

func startSentinel() {
	r, w, err := os.Pipe() // close-on-exec: no child of the tests holds w
	if err != nil {
		return
	}
	defer r.Close()
	cmd := exec.Command("/bin/sh", "-c", sentinelScript)
	cmd.Stdin = r
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return
	}
	sentinel.w = w
	go cmd.Wait()
}

// sentinelDone tells the sentinel this process cleaned up after itself.
func sentinelDone() {
	sentinel.mu.Lock()
	defer sentinel.mu.Unlock()
	if sentinel.w != nil {
		fmt.Fprintln(sentinel.w, "done")
		sentinel.w.Close()
		sentinel.w = nil
	}
}

// Sweep has dir removed if this test binary exits without its cleanup
// running (a panic, a timeout, a kill): for a fixture too large to leave
// behind in /tmp, which the caller still removes itself on the way out.
// Call it from TestMain, whose pgtest.M (or Main) runs the cleanup.
func Sweep(dir string) { tell("dir " + dir) }
