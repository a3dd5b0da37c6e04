// Command cp-mcp serves every Control Plane verb as a Model Context
// Protocol tool, under the same firewall. See internal/mcpcmd and cp-mcp -h.
package main

import (
	_ "embed"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/mcpcmd"
)

//go:embed capabilities.json
var capabilities []byte

func main() { cli.Main("cp-mcp", capabilities, mcpcmd.Run) }
