package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMkdirTempSweepsDeadProcesses: the directories of a process that has
// exited (a test binary killed by its timeout) are removed by the next
// MkdirTemp of the same prefix; those of running processes, of other
// prefixes, and names without a process id are kept.
func TestMkdirTempSweepsDeadProcesses(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	dead := cmd.ProcessState.Pid()
	live := os.Getppid()
	mk := func(name string) string {
		p := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(p, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := mk(fmt.Sprintf("cp-x-bin-%d-123", dead))
	kept := []string{
		mk(fmt.Sprintf("cp-x-bin-%d-456", live)),
		mk(fmt.Sprintf("cp-y-bin-%d-789", dead)),
		mk("cp-x-bin-3917204401"),
		mk("cp-x-bin-abc-1"),
	}
	dir, err := MkdirTemp("cp-x-bin-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(dir), fmt.Sprintf("cp-x-bin-%d-", os.Getpid())) || filepath.Dir(dir) != tmp {
		t.Fatalf("made %s", dir)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("%s: a dead process's directory is still there (%v)", gone, err)
	}
	for _, p := range append(kept, dir) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: removed: %v", p, err)
		}
	}
}
