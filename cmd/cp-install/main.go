// Command cp-install creates planes, installs packages into them atomically,
// checkpoints them and rolls them back.
// See internal/installcmd and cp-install -h.
package main

import (
	_ "embed"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/installcmd"
)

//go:embed capabilities.json
var capabilities []byte

func main() { cli.Main("cp-install", capabilities, installcmd.Run) }
