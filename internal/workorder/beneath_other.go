//go:build !linux

package workorder

import "os"

// openBeneath has no single-call form here: the caller takes its portable
// path (a walk with Lstat, an open through os.Root, and a check that what
// was opened is what was walked).
func openBeneath(dir *os.File, p string) (*os.File, bool, error) { return nil, false, nil }
