package bootstrap

import (
	"os"
	"testing"
)

// TestMain keeps the checkpoint keys that plane bootstraps make (under
// $XDG_CONFIG_HOME/control-plane/) in a temporary directory, never in the
// home directory of the user running the tests.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cp-test-config-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
