package wocmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/pkgcmd"
	"github.com/control-plane/cp/internal/schematest"
)

// TestResponsesConform holds every verb's result to the response schema
// capabilities.json names for it, as jsonschema/v6 judges it.
func TestResponsesConform(t *testing.T) {
	t.Setenv("CONTROL_PLANE_TOKEN", "")
	t.Setenv("CONTROL_PLANE_AUTH", "")
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	root := filepath.Join(dir, "plane")
	ctx := context.Background()
	run := func(r cli.RunFunc, args ...string) []byte {
		t.Helper()
		var out, errb bytes.Buffer
		code := r(ctx, args, nil, &out, &errb)
		require.Equal(t, 0, code, "%v: %s %s", args, out.String(), errb.String())
		return out.Bytes()
	}
	run(installcmd.Run, "bootstrap", "--root", root)
	run(pkgcmd.Run, "keygen", "--name", "appr", "--out", dir)
	run(installcmd.Run, "trust", "add", "--root", root, "--purpose", "work_order", filepath.Join(dir, "appr.pub"))
	bob := as("bob")
	conform := func(verb string, out []byte) {
		env, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
		require.NoError(t, err)
		s, err := schematest.Oracle("cp-wo." + verb + ".response.json")
		require.NoError(t, err)
		require.NoError(t, s.Validate(env.(map[string]any)["result"]), "%s: %s", verb, out)
	}
	conform("create", run(Run, "create", "--root", root, "--type", "code_change", "--title", "x", "--paths", "lib/**", "--llm-calls", "3", "--llm-cost-usd", "0.75"))
	run(Run, "create", "--root", root, "--type", "investigation", "--title", "y")
	id := "WO-" + today() + "-001"
	conform("validate", run(Run, "validate", "--root", root, id))
	conform("approve", run(bob, "approve", "--root", root, id, "--key", filepath.Join(dir, "appr.key")))
	conform("status", run(Run, "status", "--root", root, id))
	start := run(Run, "start", "--root", root, id)
	conform("start", start)
	var st struct {
		Result struct {
			SessionID string `json:"session_id"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(start, &st))
	var out, errb bytes.Buffer
	hdr := `{"turn_number":1,"work_order_id":"` + id + `","declared_inputs":[],"prompts_used":["PRM-X-001"],"outputs":[{"text_sha256":"sha256:` + strings.Repeat("0", 64) + `"}]}`
	require.Equal(t, 0, Run(ctx, []string{"turn", "--root", root, "--session", st.Result.SessionID}, strings.NewReader(hdr), &out, &errb), "%s%s", out.String(), errb.String())
	conform("turn", out.Bytes())
	conform("status", run(Run, "status", "--root", root, id))
	conform("complete", run(Run, "complete", "--root", root, id, "--result-sha256", "sha256:"+strings.Repeat("1", 64)))
	conform("complete", run(Run, "complete", "--root", root, id))
	id = "WO-" + today() + "-003"
	run(Run, "create", "--root", root, "--type", "investigation", "--title", "z")
	conform("reject", run(bob, "reject", "--root", root, "WO-"+today()+"-002"))
	run(bob, "approve", "--root", root, id, "--key", filepath.Join(dir, "appr.key"))
	conform("cancel", run(Run, "cancel", "--root", root, id))
	f := filepath.Join(dir, "d.json")
	require.NoError(t, os.WriteFile(f, []byte(`{"type":"rollback","title":"z","scope":{"paths":[]},"budget":{"turns":1},"expires_at":"2099-01-01T00:00:00Z"}`), 0o644))
	conform("validate", run(Run, "validate", "--root", root, "--file", f))
}
