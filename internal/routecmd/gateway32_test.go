package routecmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/ledgercmd"
	"github.com/control-plane/cp/internal/pkgcmd"
)

// gatewayPolicy has the gateway classify (the router pack answers through
// the mock provider: confidence 0, below the threshold, so the default
// route, tools_first: one LLM call a chat) and allows a session three
// calls.
const gatewayPolicy = `{
  "routes": [{"name": "status", "when": ".intent == \"status\"", "handler": "default", "mode": "tools_first"}],
  "limits": {"llm_calls_per_session": 3},
  "classifier": {"prompt_pack_id": "PRM-ROUTER", "threshold": 0.8},
  "default_route": {"handler": "default", "mode": "tools_first"}
}
`

// gatewayPlane is newPlane with gatewayPolicy and the router prompt pack
// installed (as testdata/script/route.txtar installs them): cp-route's own
// classifier is then the gateway, in-process, through the mock provider.
func gatewayPlane(t *testing.T) string {
	root := newPlane(t, gatewayPolicy)
	dir := filepath.Dir(root)
	for _, d := range []string{"spec", "router/governed_prompts/PRM-ROUTER"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	writeFile(t, filepath.Join(dir, "fw.md"), "---\nframework_id: FMWK-AGENTS-001\ntitle: Agents\nversion: 1.0.0\n---\n- MUST declare its handlers in its capabilities.json.\n")
	writeFile(t, filepath.Join(dir, "spec", "manifest.json"), `{"spec_id": "SPEC-AGENTS-001", "framework_id": "FMWK-AGENTS-001", "title": "Agents",
 "assets": ["modules/**", "governed_prompts/**"]}`)
	writeFile(t, filepath.Join(dir, "router", "manifest.json"), `{"schema_version": "1.2", "package_id": "PKG-ROUTER-001", "version": "0.1.0", "package_type": "prompt_pack",
 "spec_id": "SPEC-AGENTS-001", "framework_id": "FMWK-AGENTS-001", "plane_id": "ho3", "dependencies": [], "assets": []}`)
	writeFile(t, filepath.Join(dir, "router", "governed_prompts", "PRM-ROUTER", "pack.json"), `{"prompt_pack_id": "PRM-ROUTER", "version": "1.0.0", "template": "template.txt",
 "variables": {"type": "object", "required": ["request", "handlers"], "additionalProperties": false,
               "properties": {"request": {"type": "string"}, "handlers": {"type": "array", "items": {"type": "string"}}}},
 "providers": ["mock"], "models": ["mock-1"], "max_tokens": 64}`)
	writeFile(t, filepath.Join(dir, "router", "governed_prompts", "PRM-ROUTER", "template.txt"),
		"Pick the handler for this request, one of:{{range .handlers}} {{.}}{{end}}.\nAnswer with the handler and your confidence.\nRequest: {{.request}}\n")
	must(t, pkgcmd.Run, "", "register-framework", "FMWK-AGENTS-001", "--root", root, "--src", filepath.Join(dir, "fw.md"))
	must(t, pkgcmd.Run, "", "register-spec", "SPEC-AGENTS-001", "--root", root, "--src", filepath.Join(dir, "spec"))
	must(t, pkgcmd.Run, "", "stage", "PKG-ROUTER-001", "--root", root, "--src", filepath.Join(dir, "router"), "--declare", "--out", filepath.Join(dir, "dist"))
	arch := filepath.Join(dir, "dist", "PKG-ROUTER-001.tar.gz")
	must(t, pkgcmd.Run, "", "sign", "--archive", arch, "--key", filepath.Join(dir, "ops.key"))
	must(t, installcmd.Run, "", "install", "--root", root, "--archive", arch)
	return root
}

// TestGatewayClassifierRaceAcrossTiers: cp-route with the real gateway as
// its classifier (the mock provider), runs at once in one session
// allowing three calls: streams whose lines name ho3, ho2 and ho1, single
// runs in each tier, while cp-ledger appends to HO2 (the gateway's budget
// ledger, whose lock the gateway holds to reserve) and HO3 go on. No run
// fails (a lock never waited out: no cycle between the route-session
// lock, HO2's lock and the gateway's), the session records three calls in
// all, each classifier call the gateway recorded (LLM_CALL, mode
// classifier) is named by a decision, and the ledgers verify.
func TestGatewayClassifierRaceAcrossTiers(t *testing.T) {
	root := gatewayPlane(t)
	const ses = "SES-20261207-9a7e0032"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	planes := []string{"ho3", "ho2", "ho1"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(what string, code int, out, errs string) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf("%s: exit %d: %s %s", what, code, out, errs))
	}
	for i := range 3 {
		var in strings.Builder
		for j := range 6 {
			intent := "chat"
			if j%3 == 2 {
				intent = "status"
			}
			fmt.Fprintf(&in, `{"intent":%q,"plane":%q,"variables":{"i":%d}}`+"\n", intent, planes[(i+j)%3], 10*i+j)
		}
		wg.Go(func() {
			var o, e strings.Builder
			if code := Run(ctx, []string{"--root", root, "--session", ses}, strings.NewReader(in.String()), &o, &e); code != 0 {
				fail("stream", code, o.String(), e.String())
			}
		})
	}
	for i := range 6 {
		wg.Go(func() {
			var o, e strings.Builder
			if code := Run(ctx, []string{"--root", root, "--plane", planes[i%3], "--session", ses}, strings.NewReader(`{"intent":"chat"}`), &o, &e); code != 0 {
				fail("single", code, o.String(), e.String())
			}
		})
	}
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for _, p := range []string{"ho2", "ho3"} {
		writers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, out, errs := run(t, ledgercmd.Run, "", "append", "--root", root, "--plane", p, "--event-type", "NOTE", "--submission-id", ses); code != 0 {
					fail("append "+p, code, out, errs)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	close(stop)
	writers.Wait()
	require.Empty(t, failures)
	sum, newest, called := ledgerCount(t, root, ses)
	require.EqualValues(t, 3, sum, "the session's calls across the tiers")
	require.EqualValues(t, 3, newest)
	require.EqualValues(t, 3, called, "the decisions that record a classifier call")
	calls := 0
	for _, l := range lines(must(t, ledgercmd.Run, "", "show", "--root", root, "--plane", "ho2", "--event-type", "LLM_CALL")) {
		if gjson.Get(l, "metadata.route.mode").String() == "classifier" && strings.Contains(l, ses) {
			calls++
		}
	}
	require.Equal(t, 3, calls, "the gateway's classifier calls in the session")
	for _, p := range planes {
		must(t, ledgercmd.Run, "", "verify", "--root", root, "--plane", p)
	}
}
