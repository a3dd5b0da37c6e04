//go:build unix

package testenv

import (
	"errors"
	"syscall"
)

// alive reports whether process pid may be running: only "no such
// process" says it is not.
func alive(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
