package cli

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// A verb of two words on the command line ("trust add") is the verb
// "trust-add" (DESIGN.md §3 Names), first or after the common flags; the
// stdin form names it "trust-add".
func TestTwoWordVerb(t *testing.T) {
	tool := echoTool()
	tool.Verbs = append(tool.Verbs, &Verb{Name: "trust-add", Schema: "cp-test.echo.request.json", Args: []string{"name"},
		Run: func(ctx context.Context, c *Call, req Request) Outcome {
			return Outcome{Result: map[string]any{"verb": c.Verb.Name, "name": req.String("name")}}
		}})
	for _, args := range [][]string{{"trust", "add", "k"}, {"--format", "json", "trust", "add", "k"}, {"trust-add", "k"}} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), tool, args, nil, &out, &errb)
		require.Equal(t, ExitOK, code, "%v: %s", args, errb.String())
		require.Contains(t, out.String(), `"verb":"trust-add"`, args)
		require.Contains(t, out.String(), `"name":"k"`, args)
	}
	var out, errb bytes.Buffer
	require.Equal(t, ExitUsage, Run(context.Background(), tool, []string{"trust", "k"}, nil, &out, &errb))
	require.Contains(t, errb.String(), `unknown verb "trust"`)
}
