// Command cp-trace answers provenance and compliance questions about a
// Control Plane with evidence: inventory, file, explain, compliance and
// agent-context. See internal/tracecmd and cp-trace -h.
package main

import (
	_ "embed"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/tracecmd"
)

//go:embed capabilities.json
var capabilities []byte

func main() { cli.Main("cp-trace", capabilities, tracecmd.Run) }
