// Command cp-install creates planes and (next) installs packages into them.
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
