// Command cp-route routes requests by the plane's declarative rules and
// records every decision. See internal/routecmd and cp-route -h.
package main

import (
	_ "embed"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/routecmd"
)

//go:embed capabilities.json
var capabilities []byte

func main() { cli.Main("cp-route", capabilities, routecmd.Run) }
