// Package testenv is test support shared by the engine's packages: it keeps
// what a test run creates outside the plane out of the user's home.
package testenv

import "os"

// Main runs a package's tests with XDG_CONFIG_HOME pointed at a temporary
// directory, so that the checkpoint keys plane bootstraps make (under
// $XDG_CONFIG_HOME/control-plane/) never land in the home directory of the
// user running the tests; it removes the directory and exits with the
// tests' status. Call it as a package's TestMain, with its *testing.M (or
// a wrapper of it, pgtest.M).
func Main(m interface{ Run() int }) {
	dir, err := os.MkdirTemp("", "cp-test-config-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
