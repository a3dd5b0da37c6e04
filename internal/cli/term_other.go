//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cli

import "io"

// isTerminal is false where the terminal test is not built: JSON, the
// format for programs, is then the default.
func isTerminal(w io.Writer) bool { return false }
