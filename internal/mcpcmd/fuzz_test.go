package mcpcmd

import (
	"net/http"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzArguments decodes arbitrary tool-call arguments for a verb with path
// fields: never a panic; accepted arguments are one object naming the
// tool's operation, and every path field they hold leads inside the plane.
func FuzzArguments(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `[]`, `{"src":"../x"}`, `{"src":"/etc","out":"_staging"}`,
		`{"status":"ok","result":{"src":"/"}}`, `{"operation":"stage"}`, `{"src":"a\u0000b"}`, `{"src":1}`,
		`{"a":1,"a":2}`, `{"out":"config/../../x"}`, `{"src":"frameworks/./../tier.json"}`} {
		f.Add([]byte(s))
	}
	dir, err := filepath.EvalSymlinks(f.TempDir())
	require.NoError(f, err)
	root := newPlaneAt(f, filepath.Join(dir, "plane"))
	s := &Server{root: root}
	ts, err := tools()
	require.NoError(f, err)
	var stage *served
	for _, t := range ts {
		if t.name == "cp_pkg_stage" {
			stage = t
		}
	}
	f.Fuzz(func(t *testing.T, args []byte) {
		req, err := s.decodeArgs(stage, args)
		if err != nil {
			return
		}
		require.Equal(t, "stage", req["operation"])
		for _, field := range []string{"src", "out"} {
			v, ok := req[field].(string)
			if !ok || v == "" {
				continue
			}
			require.True(t, filepath.IsAbs(v), "%s %q is made absolute", field, v)
			real, err := realPath(v)
			if err == nil {
				require.True(t, real == root || strings.HasPrefix(real, root+"/"), "%s %q leads to %s", field, v, real)
			}
		}
	})
}

// FuzzBearer: an Authorization header is a token or refused; a value that
// could name a file is never accepted.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"", "Bearer", "Bearer eyJa.b.c", "bearer eyJa.b.c", "Bearer /etc/passwd", "Bearer eyJ/.a.b",
		"Bearer eyJa.b.c.d", "Basic x", "Bearer  eyJa.b.c ", "Bearer eyJa\\.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set("Authorization", v)
		tok, err := Bearer(h)
		if err != nil {
			return
		}
		require.True(t, strings.HasPrefix(tok, "eyJ"))
		require.Equal(t, 2, strings.Count(tok, "."))
		require.False(t, strings.ContainsAny(tok, `/\ `))
	})
}

// TestSDKOutOfBinaries: the MCP SDK is linked by cp-mcp only.
func TestSDKOutOfBinaries(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "../../cmd/...").CombinedOutput()
	require.NoError(t, err, "%s", out)
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		deps := strings.Fields(line)
		cmd := path.Base(deps[0])
		for _, dep := range deps[1:] {
			if strings.HasPrefix(dep, "github.com/modelcontextprotocol/go-sdk") || strings.HasSuffix(dep, "/internal/mcpcmd") {
				if cmd != "cp-mcp" {
					t.Errorf("%s links %s", cmd, dep)
				}
				found = true
			}
		}
	}
	require.True(t, found, "cp-mcp links the SDK")
}
