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
//
// A test binary a test starts (a helper process, which crash tests kill)
// keeps its parent's directory (it is named in CP_TESTENV_CONFIG) and
// leaves it for the parent to remove.
func Main(m interface{ Run() int }) {
	if dir := os.Getenv("CP_TESTENV_CONFIG"); dir != "" {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			os.Setenv("XDG_CONFIG_HOME", dir)
			os.Exit(m.Run())
		}
	}
	dir, err := MkdirTemp("cp-test-config-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	os.Setenv("CP_TESTENV_CONFIG", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
