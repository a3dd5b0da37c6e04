package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MkdirTemp is os.MkdirTemp("", prefix) for a directory a TestMain (or a
// sync.Once of a test binary) removes when its tests end: named
// prefix<pid>-<random>, it first removes the directories of that prefix
// whose process is gone. A test binary killed by go test's -timeout (its
// panic skips TestMain's cleanup) or by kill -9 otherwise leaves its built
// binaries behind, ~100 MB a package, each time.
func MkdirTemp(prefix string) (string, error) {
	sweep(os.TempDir(), prefix)
	return os.MkdirTemp("", fmt.Sprintf("%s%d-", prefix, os.Getpid()))
}

// sweep removes dir's entries prefix<pid>-* of the processes that have
// exited. An entry whose process may be running (or whose name says no
// process id) is left alone.
func sweep(dir, prefix string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		digits, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(digits)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || alive(pid) {
			continue
		}
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
