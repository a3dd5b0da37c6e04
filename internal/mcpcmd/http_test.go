package mcpcmd

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/cli"
)

// bearer adds Authorization: Bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// httpPlane serves p over HTTP (httptest, loopback) with serverToken as
// the server's own CONTROL_PLANE_TOKEN, which HTTP calls must never use.
func httpPlane(t *testing.T, p testPlane, serverToken string) *httptest.Server {
	t.Helper()
	s, err := NewServer(Config{Root: p.root, Env: cli.Env{Token: serverToken, AuthOff: true, SigningKey: "PRIVATE+KEY+x"}, HTTP: true, OSUser: "tester"})
	require.NoError(t, err)
	srv := httptest.NewServer(s.HTTPHandler())
	t.Cleanup(srv.Close)
	return srv
}

func httpClient(t *testing.T, url, token string) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer{token, http.DefaultTransport}}, DisableStandaloneSSE: true}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "http-client", Version: "1"}, nil).Connect(context.Background(), tr, nil)
	require.NoError(t, err)
	t.Cleanup(func() { cs.Close() })
	return cs
}

// post sends one raw JSON-RPC message and returns the status and body.
func post(t *testing.T, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

const listReq = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`

// TestHTTPBearer: over HTTP a request without a bearer token is refused
// (401, AUTH_MISSING) even though the server holds an admin token; a
// bearer that is not a token (a path the server could read) is refused
// (AUTH_INVALID); a token that does not verify is the firewall's refusal,
// recorded; the admin's token works and a worker's is judged as the
// worker's.
func TestHTTPBearer(t *testing.T) {
	p := newPlane(t, true)
	srv := httpPlane(t, p, p.admin)
	tokFile := filepath.Join(t.TempDir(), "admin.token")
	require.NoError(t, os.WriteFile(tokFile, []byte(p.admin), 0o600))

	for _, c := range []struct{ name, auth, code string }{
		{"none", "", "AUTH_MISSING"},
		{"not bearer", "Basic dXNlcjpwYXNz", "AUTH_MISSING"},
		{"empty bearer", "Bearer ", "AUTH_MISSING"},
		{"a path to the server's token", "Bearer " + tokFile, "AUTH_INVALID"},
		{"a relative path", "Bearer eyJ../x.y", "AUTH_INVALID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := post(t, srv.URL, c.auth, listReq)
			require.Equal(t, http.StatusUnauthorized, status, body)
			var env map[string]any
			require.NoError(t, json.Unmarshal([]byte(body), &env), body)
			require.Equal(t, c.code, errCode(env), body)
			require.NotContains(t, body, p.admin)
		})
	}

	before := len(denials(t, p.root))
	forged := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.x"
	cs := httpClient(t, srv.URL, forged)
	res, env := call(t, cs, "cp_ledger_verify", map[string]any{"plane": "ho3"})
	require.True(t, res.IsError)
	require.Equal(t, "AUTH_INVALID", errCode(env), "%v", env)
	require.Len(t, denials(t, p.root), before+1, "recorded as the binaries record it")

	admin := httpClient(t, srv.URL, p.admin)
	res, env = call(t, admin, "cp_ledger_append", map[string]any{"plane": "ho3", "event_type": "NOTE"})
	require.False(t, res.IsError, "%v", env)

	worker := httpClient(t, srv.URL, p.mint(t, "w1", "worker", []any{"ho1"}, "WO-20261206-001", "SES-20261206-0a1b2c3d"))
	res, env = call(t, worker, "cp_ledger_append", map[string]any{"plane": "ho3", "event_type": "NOTE"})
	require.True(t, res.IsError)
	require.Equal(t, "FIREWALL_DENIED", errCode(env), "%v", env)
	ds := denials(t, p.root)
	require.Equal(t, "w1", ds[len(ds)-1].Metadata["subject"], "judged as the bearer, not the server's token")

	res, env = call(t, worker, "cp_trace_file", map[string]any{"path": "/etc/passwd"})
	require.True(t, res.IsError)
	require.Equal(t, CodeOutsidePlane, errCode(env), "%v", env)
	ds = denials(t, p.root)
	require.Equal(t, "w1", ds[len(ds)-1].Metadata["subject"], "an escape attempt names the bearer")
	require.Equal(t, CodeOutsidePlane, ds[len(ds)-1].Metadata["code"])
}

// TestHTTPNeedsAuth: on a plane without auth, the binaries admit the OS
// user; over HTTP that would lend the server's user to any client, so a
// call is refused (AUTH_MISSING) whatever bearer it carries.
func TestHTTPNeedsAuth(t *testing.T) {
	p := newPlane(t, false)
	srv := httpPlane(t, p, "")
	cs := httpClient(t, srv.URL, "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.AAAA")
	for _, tool := range []string{"cp_ledger_verify", "cp_trace_compliance_troubleshoot"} {
		res, env := call(t, cs, tool, map[string]any{})
		require.True(t, res.IsError, tool)
		require.Equal(t, "AUTH_MISSING", errCode(env), "%s: %v", tool, env)
	}
	_, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: CheckpointURI + "ho3"})
	require.ErrorContains(t, err, "AUTH_MISSING")
	_, err = cs.ListPrompts(context.Background(), nil)
	require.ErrorContains(t, err, "AUTH_MISSING", "the registry is not listed to an unverified caller")
}

// TestCheckAddr: --http listens on loopback unless --allow-remote.
func TestCheckAddr(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:8765": true, "[::1]:1": true, "localhost:80": true, "127.9.9.9:1": true,
		"0.0.0.0:8765": false, ":8765": false, "10.0.0.1:1": false, "example.com:80": false, "nohost": false} {
		err := checkAddr(addr, false)
		require.Equal(t, ok, err == nil, "%s: %v", addr, err)
	}
	require.NoError(t, checkAddr("0.0.0.0:8765", true))
	require.Error(t, checkAddr("nohost", true))
}

// TestHTTPProcess runs the real binary with --http on a loopback port the
// kernel picks: it says where on stderr, refuses a request without a
// bearer token, serves one with the admin's, and exits 0 on SIGTERM.
func TestHTTPProcess(t *testing.T) {
	p := newPlane(t, true)
	bin, err := binary()
	require.NoError(t, err)
	cmd := exec.Command(bin, "serve", "--root", p.root, "--http", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+os.Getenv("XDG_CONFIG_HOME"), "CONTROL_PLANE_TOKEN="+p.admin)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	done := false
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stderr).ReadString('\n')
	require.NoError(t, err)
	_, url, ok := strings.Cut(strings.TrimSpace(line), " at ")
	require.True(t, ok, line)
	require.True(t, strings.HasPrefix(url, "http://127.0.0.1:"), line)

	status, body := post(t, url, "", listReq)
	require.Equal(t, http.StatusUnauthorized, status, "the server's own token is not lent: %s", body)
	require.Contains(t, body, "AUTH_MISSING")

	cs := httpClient(t, url, p.admin)
	res, env := call(t, cs, "cp_auth_whoami", map[string]any{})
	require.False(t, res.IsError, "%v", env)
	require.Equal(t, "ops", env["result"].(map[string]any)["subject"], "%v", env)
	cs.Close()

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done = true
	require.NoError(t, cmd.Wait(), "exit 0 on SIGTERM")
}
