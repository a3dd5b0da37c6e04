package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// echoTool answers with its request; "boom" fails with a coded error.
func echoTool() *Tool {
	flags := []Flag{{Name: "name", Kind: String}, {Name: "n", Kind: Int}, {Name: "tags", Kind: List}, {Name: "meta", Kind: JSON}, {Name: "flag", Kind: Bool}}
	run := func(ctx context.Context, c *Call, req Request) Outcome {
		if req.String("name") == "boom" {
			return Outcome{Err: Errorf(ExitDenied, "BOOM", "went boom")}
		}
		return Outcome{Result: map[string]any(req)}
	}
	return &Tool{Name: "cp-test", Usage: "usage text\n", Verbs: []*Verb{
		{Name: "echo", Schema: "cp-test.echo.request.json", Flags: flags, Run: run},
		{Name: "stream", Schema: "cp-test.echo.request.json", Flags: flags, Run: run, Stream: true},
		{Name: "pos", Schema: "cp-test.echo.request.json", Args: []string{"name"}, Run: run},
	}}
}

type result struct {
	code   int
	lines  []map[string]any
	stderr string
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	var in *strings.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	var r result
	if in != nil {
		r.code = Run(context.Background(), echoTool(), args, in, &out, &errb)
	} else {
		r.code = Run(context.Background(), echoTool(), args, nil, &out, &errb)
	}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(l))
		d.UseNumber()
		require.NoError(t, d.Decode(&m), "stdout line is JSON: %q", l)
		r.lines = append(r.lines, m)
	}
	r.stderr = errb.String()
	return r
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestRequestBuilding(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  map[string]any
	}{
		{"flags", "", []string{"echo", "--name", "a", "--n", "3", "--tags", "x, y", "--meta", `{"k":[1]}`, "--flag"},
			map[string]any{"name": "a", "n": json.Number("3"), "tags": []any{"x", "y"}, "meta": map[string]any{"k": []any{json.Number("1")}}, "flag": true}},
		{"stdin operation", `{"operation":"echo","name":"b"}`, nil, map[string]any{"name": "b"}},
		{"default verb", `{"name":"c"}`, nil, map[string]any{"name": "c"}},
		{"pretty stdin", "{\n  \"operation\": \"echo\",\n  \"name\": \"d\"\n}\n", nil, map[string]any{"name": "d"}},
		{"flags override stdin", `{"name":"e","n":1}`, []string{"echo", "--n", "2"}, map[string]any{"name": "e", "n": json.Number("2")}},
		{"upstream ok envelope", `{"status":"ok","result":{"name":"f"},"evidence":{}}`, []string{"echo"}, map[string]any{"name": "f"}},
		{"positional", "", []string{"pos", "g"}, map[string]any{"name": "g"}},
		{"verb after common flags", "", []string{"--format", "json", "pos", "h"}, map[string]any{"name": "h"}},
		{"verb after common flags with =", "", []string{"--format=json", "pos", "--", "i"}, map[string]any{"name": "i"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.stdin, tc.args...)
			require.Equal(t, ExitOK, r.code, "stderr: %s", r.stderr)
			require.Len(t, r.lines, 1)
			require.Equal(t, "ok", r.lines[0]["status"])
			require.Equal(t, tc.want, r.lines[0]["result"])
			ev := r.lines[0]["evidence"].(map[string]any)
			require.Contains(t, ev, "timestamp")
			require.Contains(t, ev, "duration_ms")
			require.Empty(t, r.stderr, "a successful run is silent on stderr")
		})
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		exit  int
		code  string
	}{
		{"unknown verb", "", []string{"nope"}, ExitUsage, "USAGE"},
		{"unknown flag", "", []string{"echo", "--nope"}, ExitUsage, "USAGE"},
		{"bad int flag", "", []string{"echo", "--n", "x"}, ExitUsage, "USAGE"},
		{"extra argument", "", []string{"echo", "x"}, ExitUsage, "USAGE"},
		{"unknown operation", `{"operation":"nope"}`, nil, ExitUsage, "USAGE"},
		{"verb and operation disagree", `{"operation":"pos"}`, []string{"echo"}, ExitUsage, "USAGE"},
		{"not json", `{nope`, []string{"echo"}, ExitInvalid, "INVALID_JSON"},
		{"duplicate key", `{"name":"a","name":"b"}`, []string{"echo"}, ExitInvalid, "INVALID_JSON"},
		{"not an object", `[1]`, []string{"echo"}, ExitInvalid, "INVALID_INPUT"},
		{"two objects for a single verb", "{\"name\":\"a\"}\n{\"name\":\"b\"}\n", []string{"echo"}, ExitInvalid, "INVALID_JSON"},
		{"schema: unknown field", `{"zzz":1}`, []string{"echo"}, ExitInvalid, "SCHEMA_VIOLATION"},
		{"schema: wrong type", `{"n":"1"}`, []string{"echo"}, ExitInvalid, "SCHEMA_VIOLATION"},
		{"schema: negative", `{"n":-1}`, []string{"echo"}, ExitInvalid, "SCHEMA_VIOLATION"},
		{"negative verdict", `{"name":"boom"}`, []string{"echo"}, ExitDenied, "BOOM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.stdin, tc.args...)
			require.Equal(t, tc.exit, r.code, "stderr: %s", r.stderr)
			require.Len(t, r.lines, 1)
			require.Equal(t, "error", r.lines[0]["status"])
			require.Equal(t, tc.code, errCode(r.lines[0]))
			require.True(t, strings.HasPrefix(r.stderr, "cp-test: error: "), "stderr: %q", r.stderr)
		})
	}
}

func TestUpstreamErrorPassesThrough(t *testing.T) {
	up := `{"status":"error","error":{"code":"ARCHIVE_UNSAFE","message":"symlink"}}`
	r := run(t, up+"\n", "echo", "--name", "x")
	require.Equal(t, ExitInvalid, r.code, "the upstream error's class")
	require.Len(t, r.lines, 1)
	require.Equal(t, "ARCHIVE_UNSAFE", errCode(r.lines[0]))
	var out bytes.Buffer
	Run(context.Background(), echoTool(), []string{"echo"}, strings.NewReader(up), &out, &bytes.Buffer{})
	require.Equal(t, up+"\n", out.String(), "passed through byte for byte")
}

func TestStream(t *testing.T) {
	r := run(t, "{\"name\":\"a\"}\n\n{\"name\":\"b\"}\n{\"status\":\"ok\",\"result\":{\"name\":\"c\"}}\n", "stream")
	require.Equal(t, ExitOK, r.code)
	require.Len(t, r.lines, 3)
	for i, want := range []string{"a", "b", "c"} {
		require.Equal(t, want, r.lines[i]["result"].(map[string]any)["name"])
	}
	// The stream stops at the first bad request; those before it are answered.
	r = run(t, "{\"name\":\"a\"}\n{\"zzz\":1}\n{\"name\":\"c\"}\n", "stream")
	require.Equal(t, ExitInvalid, r.code)
	require.Len(t, r.lines, 2)
	require.Equal(t, "ok", r.lines[0]["status"])
	require.Equal(t, "SCHEMA_VIOLATION", errCode(r.lines[1]))
	// And at a failing one.
	r = run(t, "{\"name\":\"a\"}\n{\"name\":\"boom\"}\n{\"name\":\"c\"}\n", "stream")
	require.Equal(t, ExitDenied, r.code)
	require.Len(t, r.lines, 2)
}

func TestHelpAndVersion(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, ExitOK, Run(context.Background(), echoTool(), []string{"echo", "-h"}, nil, &out, &errb))
	require.Equal(t, "usage text\n"+errorsHelp(echoTool().Name), errb.String(), "the usage, then its Errors section")
	require.Empty(t, out.String())
	r := run(t, "", "-version")
	require.Equal(t, ExitOK, r.code)
	require.Equal(t, Version, r.lines[0]["result"].(map[string]any)["version"])
}

func TestAsError(t *testing.T) {
	require.Equal(t, ExitInternal, AsError(errors.New("x")).Exit)
	require.Equal(t, ExitUnavailable, AsError(context.Canceled).Exit)
	require.Equal(t, ExitDenied, ExitFor("SOMETHING_NEW"), "unknown codes fail closed, never 0")
}

func FuzzParseInput(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"status":"ok","result":{}}`, `{"status":"error","error":{"code":"X"}}`, `[]`, `{"status":"ok","result":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := parseInput(b)
		if err != nil {
			if AsError(err).Exit != ExitInvalid {
				t.Fatalf("decode errors are invalid input: %v", err)
			}
			return
		}
		if in.req == nil && in.passthrough == nil {
			t.Fatal("neither a request nor a pass-through")
		}
		if in.passthrough != nil && in.passthrough.Exit == ExitOK {
			t.Fatal("a pass-through error must not exit 0")
		}
	})
}

func TestFlagEdgeCases(t *testing.T) {
	// "-h" as a flag's value is a value, not a request for help.
	r := run(t, "", "echo", "--name", "-h")
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Equal(t, "-h", r.lines[0]["result"].(map[string]any)["name"])
	// -h among a verb's flags is help.
	var out, errb bytes.Buffer
	require.Equal(t, ExitOK, Run(context.Background(), echoTool(), []string{"echo", "--name", "x", "-h"}, nil, &out, &errb))
	require.Equal(t, "usage text\n"+errorsHelp(echoTool().Name), errb.String())
	// A request from flags alone that the schema refuses is a usage error.
	r = run(t, "", "echo", "--n", "-1")
	require.Equal(t, ExitUsage, r.code)
	require.Equal(t, "USAGE", errCode(r.lines[0]))
	// The same from stdin is invalid input.
	r = run(t, `{"n":-1}`, "echo")
	require.Equal(t, ExitInvalid, r.code)
	// With no verb and no operation, the default verb still takes one object.
	r = run(t, "{\"name\":\"a\"}\n{\"name\":\"b\"}\n")
	require.Equal(t, ExitInvalid, r.code)
}

// Steps: -v prints each step as a line; a terminal gets one line kept up
// to date and cleared at the end; a pipe gets nothing.
func TestSteps(t *testing.T) {
	defer func(f func(io.Writer) bool) { stderrIsTerminal = f }(stderrIsTerminal)
	tool := &Tool{Name: "cp-test"}
	for _, tc := range []struct {
		name     string
		verbose  bool
		terminal bool
		want     string
	}{
		{"verbose", true, true, "cp-test: read 3 files\ncp-test: applied\n"},
		{"terminal", false, true, "\r\033[Kcp-test: read 3 files\r\033[Kcp-test: applied\r\033[K"},
		{"pipe", false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderrIsTerminal = func(io.Writer) bool { return tc.terminal }
			var stderr bytes.Buffer
			c := &Call{Tool: tool, Stderr: &stderr, Verbose: tc.verbose}
			step, finish := c.Steps()
			step("read %d files", 3)
			step("applied")
			finish()
			require.Equal(t, tc.want, stderr.String())
		})
	}
}
