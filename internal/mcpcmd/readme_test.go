package mcpcmd

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/schematest"
	"github.com/control-plane/cp/schemas"
)

var updateREADME = flag.Bool("update", false, "rewrite the README's tool list")

// TestREADMETools holds the README's tool list to cp-mcp serve
// --list-tools --format text, so it cannot go stale: go test
// ./internal/mcpcmd -run TestREADMETools -update rewrites it.
func TestREADMETools(t *testing.T) {
	const file = "../../README.md"
	const begin, end = "<!-- cp-mcp tools: begin -->\n", "<!-- cp-mcp tools: end -->"
	readme, err := os.ReadFile(file)
	require.NoError(t, err)
	i, j := bytes.Index(readme, []byte(begin)), bytes.Index(readme, []byte(end))
	require.True(t, i >= 0 && j > i, "README.md holds the markers %q and %q", begin, end)
	var list strings.Builder
	require.NoError(t, ListTools(&list, "text"))
	want := "```\n" + list.String() + "```\n"
	got := string(readme[i+len(begin) : j])
	if *updateREADME {
		out := append(append(append([]byte{}, readme[:i+len(begin)]...), want...), readme[j:]...)
		require.NoError(t, os.WriteFile(file, out, 0o644))
		return
	}
	require.Equal(t, want, got, "the README's tool list is stale: go test ./internal/mcpcmd -run TestREADMETools -update")
}

// TestCapabilities holds cmd/cp-mcp/capabilities.json together: its one
// operation, serve, names embedded schemas, and --list-tools lines conform
// to the response schema (the jsonschema/v6 oracle).
func TestCapabilities(t *testing.T) {
	b, err := os.ReadFile("../../cmd/cp-mcp/capabilities.json")
	require.NoError(t, err)
	var c struct {
		Name       string `json:"name"`
		Default    string `json:"default_operation"`
		Operations []struct {
			Operation string `json:"operation"`
			Request   string `json:"request_schema"`
			Response  string `json:"response_schema"`
		} `json:"operations"`
	}
	require.NoError(t, json.Unmarshal(b, &c))
	require.Equal(t, "cp-mcp", c.Name)
	require.Equal(t, "serve", c.Default)
	require.Len(t, c.Operations, 1)
	for _, id := range []string{c.Operations[0].Request, c.Operations[0].Response} {
		name, ok := strings.CutPrefix(id, schemas.BaseURL)
		require.True(t, ok, id)
		_, err := fs.Stat(schemas.FS, name)
		require.NoError(t, err, id)
	}
	oracle, err := schematest.Oracle("cp-mcp.serve.response.json")
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, ListTools(&out, "json"))
	for line := range bytes.Lines(out.Bytes()) {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
		require.NoError(t, err)
		require.NoError(t, oracle.Validate(v), "%s", line)
	}
}
