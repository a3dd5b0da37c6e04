// Command cp-ledger appends to, queries, verifies, checkpoints and proves
// Control Plane ledgers. See internal/ledgercmd and cp-ledger -h.
package main

import (
	_ "embed"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/ledgercmd"
)

//go:embed capabilities.json
var capabilities []byte

func main() { cli.Main("cp-ledger", capabilities, ledgercmd.Run) }
