//go:build !unix

package testenv

// alive cannot tell here: every process may be running.
func alive(int) bool { return true }
