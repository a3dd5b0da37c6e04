package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
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

// A verb's Plain vouches for the requests it accepts, which then skip the
// compiled schema (so it must accept only what the schema does: its
// package holds it there); a request it does not vouch for is judged by
// the schema as before, from stdin (exit 3), from flags (exit 2) and in a
// stream, where plain and other requests mix.
func TestVerbPlain(t *testing.T) {
	var calls int
	plain := func(req Request) bool {
		calls++
		s, ok := req["name"].(string)
		return len(req) == 1 && ok && s != "" || req["name"] == "vouched"
	}
	tool := echoTool()
	for _, v := range tool.Verbs {
		v.Plain = plain
	}
	do := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		var in io.Reader
		if stdin != "" {
			in = strings.NewReader(stdin)
		}
		code := Run(context.Background(), tool, args, in, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errb := do(`{"name":"a"}`)
	require.Equal(t, ExitOK, code, errb)
	require.Contains(t, out, `"name":"a"`)
	require.Equal(t, 1, calls)
	code, _, errb = do(`{"name":"a","n":2}`)
	require.Equal(t, ExitOK, code, "not plain, valid: %s", errb)
	code, out, _ = do(`{"name":"a","n":-1}`)
	require.Equal(t, ExitInvalid, code)
	require.Contains(t, out, "SCHEMA_VIOLATION")
	code, _, errb = do("", "--name", "a", "--n", "-1")
	require.Equal(t, ExitUsage, code, errb)
	// What Plain vouches for is not judged again: a lying Plain lets
	// through what the schema refuses (why each Plain has its fuzz test).
	code, _, errb = do(`{"name":"vouched","n":-1}`)
	require.Equal(t, ExitOK, code, errb)
	code, out, _ = do("{\"name\":\"a\"}\n{\"name\":\"b\",\"n\":3}\n{\"name\":\"c\",\"n\":-1}\n", "stream")
	require.Equal(t, ExitInvalid, code, out)
	require.Equal(t, 2, strings.Count(out, `"status":"ok"`), out)
	require.Contains(t, out, "SCHEMA_VIOLATION")
}
