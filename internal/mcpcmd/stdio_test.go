package mcpcmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/ledgercmd"
	"github.com/control-plane/cp/internal/testenv"
)

// binaryBuilt is set once binary has been asked for.
var binaryBuilt atomic.Bool

// binary builds cmd/cp-mcp once per test run.
var binary = sync.OnceValues(func() (string, error) {
	binaryBuilt.Store(true)
	dir, err := testenv.MkdirTemp("cp-mcp-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "cp-mcp")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/cp-mcp").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// proc is a cp-mcp serve process spoken to with raw JSON-RPC lines.
type proc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startServe(t testing.TB, root string, env ...string) *proc {
	t.Helper()
	bin, err := binary()
	require.NoError(t, err)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), append([]string{"CONTROL_PLANE=" + root}, env...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	return p
}

func (p *proc) send(t testing.TB, line string) {
	t.Helper()
	_, err := io.WriteString(p.in, line+"\n")
	require.NoError(t, err)
}

// recv reads one JSON-RPC message.
func (p *proc) recv(t testing.TB) map[string]any {
	t.Helper()
	line, err := p.out.ReadBytes('\n')
	require.NoError(t, err, "%s", line)
	var m map[string]any
	require.NoError(t, json.Unmarshal(line, &m), "%s", line)
	return m
}

const (
	initLine   = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	initedLine = `{"jsonrpc":"2.0","method":"notifications/initialized","params":{}}`
)

func (p *proc) initialize(t testing.TB) {
	t.Helper()
	p.send(t, initLine)
	m := p.recv(t)
	require.Equal(t, float64(1), m["id"], "%v", m)
	res := m["result"].(map[string]any)
	require.Equal(t, "cp-mcp", res["serverInfo"].(map[string]any)["name"])
	p.send(t, initedLine)
}

// TestStdioProcess runs the real binary over stdio with raw JSON-RPC
// lines: initialize, tools/list, tools/call (a read, a schema violation,
// a path outside the plane), then closes stdin: exit 0.
func TestStdioProcess(t *testing.T) {
	p := newPlane(t, false)
	s := startServe(t, p.root, "XDG_CONFIG_HOME="+os.Getenv("XDG_CONFIG_HOME"))
	s.initialize(t)

	s.send(t, `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`)
	m := s.recv(t)
	ts := m["result"].(map[string]any)["tools"].([]any)
	want, err := tools()
	require.NoError(t, err)
	require.Len(t, ts, len(want))

	s.send(t, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"cp_ledger_verify","arguments":{"plane":"ho3"}}}`)
	m = s.recv(t)
	res := m["result"].(map[string]any)
	require.NotEqual(t, true, res["isError"], "%v", res)
	sc := res["structuredContent"].(map[string]any)
	require.Equal(t, "ok", sc["status"])
	require.Equal(t, true, sc["result"].(map[string]any)["valid"])

	s.send(t, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"cp_ledger_verify","arguments":{"plane":"ho7"}}}`)
	res = s.recv(t)["result"].(map[string]any)
	require.Equal(t, true, res["isError"])
	require.Equal(t, "SCHEMA_VIOLATION", errCode(res["structuredContent"].(map[string]any)))

	s.send(t, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"cp_trace_file","arguments":{"path":"/etc/passwd"}}}`)
	res = s.recv(t)["result"].(map[string]any)
	require.Equal(t, true, res["isError"])
	require.Equal(t, CodeOutsidePlane, errCode(res["structuredContent"].(map[string]any)))

	s.send(t, `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"cp_install_bootstrap","arguments":{}}}`)
	m = s.recv(t)
	require.Contains(t, m, "error", "a host-level verb is no tool: %v", m)

	require.NoError(t, s.in.Close())
	require.NoError(t, s.cmd.Wait(), "exit 0 when the client closes the session")
}

// TestRunUsage: flags, the address rule and the plane are checked before
// serving, with an envelope and the exit code of the table.
func TestRunUsage(t *testing.T) {
	p := newPlane(t, false)
	for _, c := range []struct {
		args []string
		exit int
		code string
	}{
		{[]string{"serve", "--nope"}, cli.ExitUsage, "USAGE"},
		{[]string{"serve", "extra"}, cli.ExitUsage, "USAGE"},
		{[]string{"serve", "--root", p.root, "--http", "0.0.0.0:0"}, cli.ExitUsage, "USAGE"},
		{[]string{"serve", "--root", t.TempDir()}, cli.ExitUsage, "NOT_A_PLANE"},
		{[]string{"serve", "--root", filepath.Join(p.root, "planes", "ho1")}, cli.ExitUsage, "NOT_A_PLANE"},
		{[]string{"serve", "--list-tools", "--format", "yaml"}, cli.ExitUsage, "USAGE"},
	} {
		var out, errb strings.Builder
		exit := Run(context.Background(), c.args, strings.NewReader(""), &out, &errb)
		require.Equal(t, c.exit, exit, "%v: %s", c.args, errb.String())
		var env map[string]any
		require.NoError(t, json.Unmarshal([]byte(out.String()), &env), out.String())
		require.Equal(t, c.code, errCode(env), "%v", c.args)
		require.Regexp(t, `^cp-mcp: error: `, errb.String())
	}
	var out, errb strings.Builder
	require.Equal(t, cli.ExitOK, Run(context.Background(), []string{"-h"}, nil, &out, &errb))
	require.Contains(t, errb.String(), "Exit status:")
	out.Reset()
	require.Equal(t, cli.ExitOK, Run(context.Background(), []string{"serve", "--list-tools"}, nil, &out, &errb))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want, _ := tools()
	require.Len(t, lines, len(want))

	// Over stdio in-process: a session that closes at once ends with 0.
	out.Reset()
	require.Equal(t, cli.ExitOK, Run(context.Background(), []string{"serve", "--root", p.root}, strings.NewReader(""), &out, &errb))
}

// BenchmarkStdio measures, over stdio against the real binary after
// initialization, a read-only tool call's round trip (cp_ledger_verify of
// HO3, and cp_auth_whoami) and tools/list; each iteration is paired with
// the same request through ledgercmd.Dispatch in this process (the verb's
// own cost), and the medians are reported: ms-call, ms-dispatch (the
// baseline), ms-whoami, ms-list.
func BenchmarkStdio(b *testing.B) {
	dir := b.TempDir()
	b.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	p := benchPlane(b, dir)
	s := startServe(b, p, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	s.initialize(b)
	verify := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"cp_ledger_verify","arguments":{"plane":"ho3"}}}`
	whoami := `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"cp_auth_whoami","arguments":{}}}`
	list := `{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{}}`
	opts := cli.Options{Env: &cli.Env{Root: p}}
	var call, disp, who, lst []time.Duration
	for i := range b.N + 1 {
		t0 := time.Now()
		s.send(b, verify)
		if m := s.recv(b); m["result"].(map[string]any)["isError"] == true {
			b.Fatalf("%v", m)
		}
		t1 := time.Now()
		if r := ledgercmd.Dispatch(context.Background(), cli.Request{"operation": "verify", "plane": "ho3"}, opts); r.Exit != 0 {
			b.Fatalf("%s", r.Stdout)
		}
		t2 := time.Now()
		s.send(b, whoami)
		s.recv(b)
		t3 := time.Now()
		s.send(b, list)
		s.recv(b)
		t4 := time.Now()
		if i == 0 {
			b.ResetTimer() // the first round warms caches
			continue
		}
		call, disp, who, lst = append(call, t1.Sub(t0)), append(disp, t2.Sub(t1)), append(who, t3.Sub(t2)), append(lst, t4.Sub(t3))
	}
	for unit, d := range map[string][]time.Duration{"ms-call": call, "ms-dispatch": disp, "ms-whoami": who, "ms-list": lst} {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, unit)
	}
}

// benchPlane bootstraps a plane in dir for a benchmark.
func benchPlane(b *testing.B, dir string) string {
	b.Helper()
	real, err := filepath.EvalSymlinks(dir)
	require.NoError(b, err)
	return newPlaneAt(b, filepath.Join(real, "plane"))
}

// TestRunAnswersBeforeEOF: a client that writes its requests and closes
// stdin at once (cat session.jsonl | cp-mcp serve) gets every answer.
func TestRunAnswersBeforeEOF(t *testing.T) {
	p := newPlane(t, false)
	in := strings.Join([]string{initLine, initedLine,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"cp_ledger_verify","arguments":{"plane":"ho3"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"cp_trace_inventory","arguments":{}}}`}, "\n") + "\n"
	var out, errb strings.Builder
	require.Equal(t, cli.ExitOK, Run(context.Background(), []string{"serve", "--root", p.root}, strings.NewReader(in), &out, &errb), errb.String())
	ids := map[float64]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		require.NotContains(t, m, "error", line)
		ids[m["id"].(float64)] = true
	}
	require.Equal(t, map[float64]bool{1: true, 2: true, 3: true}, ids)
}
