// Command cp-wo is work orders for a Control Plane: create, validate,
// approve (a signed note), reject, status, cancel. See internal/wocmd and
// cp-wo -h.
package main

import (
	_ "embed"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/wocmd"
)

//go:embed capabilities.json
var capabilities []byte

func main() { cli.Main("cp-wo", capabilities, wocmd.Run) }
