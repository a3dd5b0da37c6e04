// Command cp-llm is the one governed gateway to model providers: complete
// (budgets, evidence, prompt packs) and list-providers. See
// internal/llmcmd and cp-llm -h.
package main

import (
	_ "embed"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/llmcmd"
)

//go:embed capabilities.json
var capabilities []byte

func main() { cli.Main("cp-llm", capabilities, llmcmd.Run) }
