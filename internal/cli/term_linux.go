package cli

import "syscall"

// ioctlGetTermios reads a terminal's attributes; it fails on anything that
// is not a terminal (a pipe, a file, /dev/null).
const ioctlGetTermios = syscall.TCGETS
