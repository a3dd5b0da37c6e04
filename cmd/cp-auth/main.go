// Command cp-auth is identity for a Control Plane: the auth key, tokens,
// revocations and the firewall's answer for an agent's tool call. See
// internal/authcmd and cp-auth -h.
package main

import (
	_ "embed"

	"github.com/control-plane/cp/internal/authcmd"
	"github.com/control-plane/cp/internal/cli"
)

//go:embed capabilities.json
var capabilities []byte

func main() { cli.Main("cp-auth", capabilities, authcmd.Run) }
