package mcpcmd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/authcmd"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/gatecmd"
	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/ledgercmd"
	"github.com/control-plane/cp/internal/llmcmd"
	"github.com/control-plane/cp/internal/pkgcmd"
	"github.com/control-plane/cp/internal/routecmd"
	"github.com/control-plane/cp/internal/tracecmd"
	"github.com/control-plane/cp/internal/wocmd"
)

// Binary is one binary whose verbs are served: its verb table (for names,
// schemas, actions) and its in-process request path.
type Binary struct {
	Tool     func() *cli.Tool
	Dispatch func(ctx context.Context, req cli.Request, opts cli.Options) cli.Response
}

// Binaries are the binaries served, in the order their tools are listed.
// A new binary is one line here (its package exports Tool and Dispatch);
// its host-level verbs, if any, go in HostLevel.
var Binaries = []Binary{
	{ledgercmd.VerbTable, ledgercmd.Dispatch},
	{pkgcmd.VerbTable, pkgcmd.Dispatch},
	{installcmd.VerbTable, installcmd.Dispatch},
	{gatecmd.VerbTable, gatecmd.Dispatch},
	{authcmd.VerbTable, authcmd.Dispatch},
	{wocmd.VerbTable, wocmd.Dispatch},
	{tracecmd.VerbTable, tracecmd.Dispatch},
	{routecmd.VerbTable, routecmd.Dispatch},
	{llmcmd.VerbTable, llmcmd.Dispatch},
}

// HostLevel are the verbs that are not tools ("tool verb" → why): they act
// on the host rather than on the served plane, or take a path outside it
// by nature (DESIGN.md §15). A tool call cannot reach them.
var HostLevel = map[string]string{
	"cp-install bootstrap":   "creates a plane: the server serves one that exists",
	"cp-install import-cpv2": "reads a CPv2 tree outside the plane",
	"cp-pkg keygen":          "writes a signer key, which belongs outside the plane",
	"cp-auth init":           "creates the auth signing key outside the plane",
	"cp-auth token":          "mints tokens with the signing key outside the plane",
	"cp-ledger import":       "loads a ledger file from outside the plane",
	"cp-ledger export":       "writes a ledger copy that must be outside every plane",
}

// destructive are the actions a client should confirm: they replace or
// remove what is installed or trusted, or move a ledger.
var destructive = []cli.Action{cli.ActionInstall, cli.ActionRollback, cli.ActionTrust, cli.ActionRevoke, cli.ActionMigrate}

// ToolName is the MCP tool name of a binary's verb: cp_<tool>_<verb>,
// hyphens made underscores (DESIGN.md §3).
func ToolName(tool, verb string) string {
	return strings.ReplaceAll(tool+"_"+verb, "-", "_")
}

// served is one tool: the binary and verb it runs, and what is listed.
type served struct {
	name     string
	bin      Binary
	tool     *cli.Tool
	verb     *cli.Verb
	schema   map[string]any
	readOnly bool
	destroy  bool
}

// tools builds the served tools, every verb of every binary but the
// host-level ones, each with its request schema made self-contained.
func tools() ([]*served, error) {
	var out []*served
	for _, b := range Binaries {
		t := b.Tool()
		for _, v := range t.Verbs {
			if _, host := HostLevel[t.Name+" "+v.Name]; host {
				continue
			}
			s, err := InputSchema(v.Schema)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", t.Name, v.Name, err)
			}
			if s["type"] != "object" {
				return nil, fmt.Errorf("%s %s: request schema is not of type object", t.Name, v.Name)
			}
			out = append(out, &served{name: ToolName(t.Name, v.Name), bin: b, tool: t, verb: v, schema: s,
				readOnly: v.Action == cli.ActionRead && v.ActionOf == nil && v.AlsoOf == nil,
				destroy:  slices.Contains(destructive, v.Action)})
		}
	}
	return out, nil
}

// description is a tool's description: the verb's line of its binary's
// usage text when there is one, with the action and tier it is judged as.
func (s *served) description() string {
	d := ""
	for _, line := range strings.Split(s.tool.Usage, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == s.tool.Name && f[1] == s.verb.Name {
			d = strings.Join(f, " ")
			break
		}
	}
	if d == "" {
		d = s.tool.Name + " " + s.verb.Name
	}
	if sd, _ := s.schema["description"].(string); sd != "" {
		d += ": " + sd
	}
	return fmt.Sprintf("%s. Arguments are the verb's request fields (its flags in snake_case: --event-type is event_type); "+
		"the result is the binary's envelope. The firewall judges it as action %s at tier %s.", d, s.verb.Action, s.verb.Tier)
}
