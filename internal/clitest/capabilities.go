// Package clitest holds test support for the tools built on internal/cli.
// Only tests import it.
package clitest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/schemas"
)

// Capabilities fails t unless the capabilities document at path agrees
// with tool (see CheckCapabilities).
func Capabilities(t testing.TB, tool *cli.Tool, path string) {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckCapabilities(tool, doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// CheckCapabilities reports every way a tool's capabilities document
// (cmd/<tool>/capabilities.json, printed by --capabilities) disagrees with
// its verb table: the name, the operations and their order, the default
// operation, which are streams, the action and tier each declares to the
// firewall (DESIGN.md §8), and the request schema each validates against;
// and it requires every schema the document names to be embedded. Each tool's tests call it, so the document agents read cannot
// drift from what the binary does. Capabilities is the test helper.
func CheckCapabilities(tool *cli.Tool, doc []byte) error {
	var c struct {
		Name       string `json:"name"`
		Default    string `json:"default_operation"`
		Envelope   string `json:"envelope_schema"`
		Operations []struct {
			Operation string `json:"operation"`
			Stream    bool   `json:"stream"`
			Action    string `json:"action"`
			Tier      string `json:"tier"`
			Request   string `json:"request_schema"`
			Response  string `json:"response_schema"`
		} `json:"operations"`
	}
	if err := json.Unmarshal(doc, &c); err != nil {
		return fmt.Errorf("capabilities document: %v", err)
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	embedded := func(what, id string) {
		name, ok := strings.CutPrefix(id, schemas.BaseURL)
		if _, err := fs.Stat(schemas.FS, name); !ok || err != nil {
			bad("%s %q is not an embedded schema", what, id)
		}
	}
	if c.Name != tool.Name {
		bad("name %q, tool %q", c.Name, tool.Name)
	}
	wantDefault := ""
	if !tool.NoDefault && len(tool.Verbs) > 0 {
		wantDefault = tool.Verbs[0].Name
	}
	if c.Default != wantDefault {
		bad("default_operation %q, tool's default %q", c.Default, wantDefault)
	}
	embedded("envelope_schema", c.Envelope)
	if len(c.Operations) != len(tool.Verbs) {
		bad("%d operations, tool has %d verbs", len(c.Operations), len(tool.Verbs))
	}
	for i, op := range c.Operations {
		if i >= len(tool.Verbs) {
			break
		}
		v := tool.Verbs[i]
		if op.Operation != v.Name {
			bad("operation %d is %q, verb %d is %q", i, op.Operation, i, v.Name)
			continue
		}
		if op.Stream != v.Stream {
			bad("%s: stream %v, verb says %v", v.Name, op.Stream, v.Stream)
		}
		if v.Action == "" || v.Tier == "" {
			bad("%s: the verb declares no action or tier for the firewall", v.Name)
		}
		if op.Action != string(v.Action) || op.Tier != v.Tier {
			bad("%s: action %q tier %q, verb declares %q %q", v.Name, op.Action, op.Tier, v.Action, v.Tier)
		}
		if op.Request != schemas.BaseURL+v.Schema {
			bad("%s: request_schema %q, verb validates against %q", v.Name, op.Request, v.Schema)
		}
		embedded(v.Name+": request_schema", op.Request)
		embedded(v.Name+": response_schema", op.Response)
	}
	return errors.Join(errs...)
}
