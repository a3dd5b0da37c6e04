package llmcmd

import "github.com/control-plane/cp/internal/cli"

// VerbTable returns cp-llm's verb table, for a server that lists its verbs (cp-mcp):
// their names, schemas, actions and tiers. It is not to be changed, and a
// request is run through Dispatch, never through this table's Run funcs.
func VerbTable() *cli.Tool { return tool() }
