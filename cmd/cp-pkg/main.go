// Command cp-pkg is the author side of Control Plane packages. See
// internal/pkgcmd and cp-pkg -h.
package main

import (
	_ "embed"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/pkgcmd"
)

//go:embed capabilities.json
var capabilities []byte

func main() { cli.Main("cp-pkg", capabilities, pkgcmd.Run) }
