// Command cp-gate runs Control Plane's gates against a plane or a package
// archive and reports them as JSON, text, SARIF or JUnit. See
// internal/gatecmd and cp-gate -h.
package main

import (
	_ "embed"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/gatecmd"
)

//go:embed capabilities.json
var capabilities []byte

func main() { cli.Main("cp-gate", capabilities, gatecmd.Run) }
