package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/install"
	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/pkgcmd"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/manifest"
)

type runFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// run runs a tool in-process and returns its envelope's result.
func run(t testing.TB, tool runFunc, args ...string) map[string]any {
	t.Helper()
	var out, errb bytes.Buffer
	code := tool(context.Background(), args, nil, &out, &errb)
	require.Equal(t, 0, code, "%v\nstdout: %s\nstderr: %s", args, out.String(), errb.String())
	var env struct {
		Result map[string]any `json:"result"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &env))
	return env.Result
}

// newPlane bootstraps a plane trusting a fresh key and returns its root
// and the signer key's path.
func newPlane(t testing.TB) (root, key string) {
	t.Helper()
	dir := t.TempDir()
	skey, vkey, err := keys.Generate("ops")
	require.NoError(t, err)
	key, pub := filepath.Join(dir, "ops.key"), filepath.Join(dir, "ops.pub")
	require.NoError(t, os.WriteFile(key, []byte(skey+"\n"), 0o600))
	require.NoError(t, os.WriteFile(pub, []byte(vkey+"\n"), 0o644))
	root = filepath.Join(dir, "plane")
	run(t, installcmd.Run, "bootstrap", "--root", root, "--trust-key", pub)
	return root, key
}

// publish stages, signs and installs the config package source at src.
func publish(t testing.TB, root, key, id, src string) map[string]any {
	t.Helper()
	out := t.TempDir()
	run(t, pkgcmd.Run, "stage", id, "--src", src, "--out", out, "--root", root)
	a := filepath.Join(out, id+".tar.gz")
	run(t, pkgcmd.Run, "sign", "--archive", a, "--key", key)
	return run(t, installcmd.Run, "install", "--archive", a, "--root", root)
}

func setVersion(t *testing.T, src, v string) {
	t.Helper()
	p := filepath.Join(src, "manifest.json")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	doc["version"] = v
	b, err = json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, b, 0o644))
}

func code(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return ""
}

// Until a config package is installed, every loader gives the built-in
// default and says so.
func TestDefaults(t *testing.T) {
	root, _ := newPlane(t)
	for _, p := range config.Paths {
		require.NoFileExists(t, filepath.Join(root, filepath.FromSlash(p)), "bootstrap writes no operator configuration")
		require.NoError(t, config.Validate(p, config.Defaults()[p]), p)
	}
	g, src, err := config.Governance(root)
	require.NoError(t, err)
	require.Equal(t, "optional", g.WorkOrders)
	require.False(t, g.WorkOrdersRequired())
	require.Equal(t, config.Source{Path: config.GovernancePath, SHA256: plane.SHA256(config.DefaultGovernance)}, src)
	require.True(t, src.Default())

	pr, src, err := config.Providers(root)
	require.NoError(t, err)
	require.Equal(t, "mock", pr.DefaultProvider)
	require.Len(t, pr.Providers, 1)
	require.Equal(t, "mock", pr.Provider("mock").Type)
	require.True(t, src.Default())

	rp, src, err := config.RouterPolicy(root)
	require.NoError(t, err)
	require.Empty(t, rp.Routes)
	require.Equal(t, config.Target{Handler: "default", Mode: "tools_first"}, rp.DefaultRoute)
	require.True(t, src.Default())

	text, src, err := config.PolicyText(root)
	require.NoError(t, err)
	require.Equal(t, string(config.DefaultPolicy), text)
	require.Equal(t, config.PolicyPath, src.Path)
	require.True(t, src.Default())
}

// init-config → stage → sign → install: the loaders return the package's
// values and name it; an upgrade changes them; a rollback restores them.
func TestPackageLifecycle(t *testing.T) {
	root, key := newPlane(t)
	src := filepath.Join(t.TempDir(), "opconf")
	res := run(t, pkgcmd.Run, "init-config", "PKG-CONFIG-001", "--output", src)
	require.Equal(t, "config", res["package_type"])
	// Work orders optional, spelled out: "required" would make the upgrade
	// and rollback below need one (G2: config_package.txtar runs that).
	gov := []byte(`{"work_orders": "optional"}` + "\n")
	require.NoError(t, os.WriteFile(filepath.Join(src, "config", "governance.json"), gov, 0o644))
	res = publish(t, root, key, "PKG-CONFIG-001", src)
	require.Equal(t, "install", res["action"])

	g, gsrc, err := config.Governance(root)
	require.NoError(t, err)
	require.False(t, g.WorkOrdersRequired())
	require.Equal(t, config.Source{Package: "PKG-CONFIG-001", Path: config.GovernancePath, SHA256: plane.SHA256(gov)}, gsrc)
	_, psrc, err := config.Providers(root)
	require.NoError(t, err)
	require.Equal(t, "PKG-CONFIG-001", psrc.Package)
	require.Equal(t, plane.SHA256(config.DefaultProviders), psrc.SHA256)
	text, tsrc, err := config.PolicyText(root)
	require.NoError(t, err)
	require.Equal(t, string(config.DefaultPolicy), text)
	require.Equal(t, "PKG-CONFIG-001", tsrc.Package)

	ckpt := run(t, installcmd.Run, "checkpoint", "--label", "config 0.1.0", "--root", root)

	providers := `{"default_provider":"claude","providers":[` +
		`{"id":"mock","type":"mock","models":[{"id":"mock-1","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]},` +
		`{"id":"claude","type":"anthropic","api_key_env":"ANTHROPIC_API_KEY","models":[{"id":"claude-sonnet-4-5","input_usd_per_mtok":"3","output_usd_per_mtok":"15"}]}],` +
		`"caps":{"plane_micro_usd":5000000,"providers":{"claude":1000000}}}` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(src, "config", "providers.json"), []byte(providers), 0o644))
	policy := "forbid (principal, action, resource) when { context.role == \"worker\" };\n"
	require.NoError(t, os.WriteFile(filepath.Join(src, "config", "policy.cedar"), []byte(policy), 0o644))
	setVersion(t, src, "0.2.0")
	res = publish(t, root, key, "PKG-CONFIG-001", src)
	require.Equal(t, "upgrade", res["action"])

	pr, psrc, err := config.Providers(root)
	require.NoError(t, err)
	require.Equal(t, "claude", pr.DefaultProvider)
	require.Equal(t, "3", pr.Provider("claude").Models[0].InputUSD)
	require.Equal(t, int64(1000000), pr.Caps.Providers["claude"])
	require.Equal(t, plane.SHA256([]byte(providers)), psrc.SHA256)
	text, _, err = config.PolicyText(root)
	require.NoError(t, err)
	require.Equal(t, policy, text)

	run(t, installcmd.Run, "rollback", "--version-id", ckpt["version_id"].(string), "--root", root)
	pr, psrc, err = config.Providers(root)
	require.NoError(t, err)
	require.Equal(t, "mock", pr.DefaultProvider)
	require.Equal(t, config.Source{Package: "PKG-CONFIG-001", Path: config.ProvidersPath, SHA256: plane.SHA256(config.DefaultProviders)}, psrc)
	text, _, err = config.PolicyText(root)
	require.NoError(t, err)
	require.Equal(t, string(config.DefaultPolicy), text)
	_, gsrc, err = config.Governance(root)
	require.NoError(t, err)
	require.Equal(t, plane.SHA256(gov), gsrc.SHA256, "0.1.0's governance is back")
}

// A file the loaders cannot vouch for is an error, never the default.
func TestFailClosed(t *testing.T) {
	t.Run("present but owned by no package", func(t *testing.T) {
		root, _ := newPlane(t)
		require.NoError(t, os.WriteFile(filepath.Join(root, "config", "governance.json"), []byte(`{"work_orders":"optional"}`), 0o644))
		_, src, err := config.Governance(root)
		require.Error(t, err)
		require.Equal(t, "CONFIG_INVALID", code(err))
		require.Contains(t, err.Error(), "owned by no installed package")
		require.False(t, src.Package != "")
	})
	t.Run("a symlink", func(t *testing.T) {
		root, _ := newPlane(t)
		other := filepath.Join(t.TempDir(), "gov.json")
		require.NoError(t, os.WriteFile(other, []byte(`{"work_orders":"optional"}`), 0o644))
		require.NoError(t, os.Symlink(other, filepath.Join(root, "config", "providers.json")))
		_, _, err := config.Providers(root)
		require.Error(t, err)
	})
	t.Run("a directory", func(t *testing.T) {
		root, _ := newPlane(t)
		require.NoError(t, os.Mkdir(filepath.Join(root, "config", "policy.cedar"), 0o755))
		_, _, err := config.PolicyText(root)
		require.Error(t, err)
	})
	t.Run("an older kernel's placeholder", func(t *testing.T) {
		root, _ := newPlane(t)
		b := []byte(`{"routes":[]}` + "\n")
		require.NoError(t, os.WriteFile(filepath.Join(root, "config", "router_policy.json"), b, 0o444))
		require.NoError(t, registry.UpdateMany(context.Background(), root, []registry.Table{registry.Ownership},
			func(cur map[string][]registry.Row) (map[string][]registry.Row, error) {
				rows := append(cur[registry.Ownership.File], registry.Owner{Path: config.RouterPolicyPath, PackageID: plane.KernelID,
					SHA256: plane.SHA256(b), Size: int64(len(b)), Classification: "config", InstalledAt: time.Now()}.Row())
				return map[string][]registry.Row{registry.Ownership.File: rows}, nil
			}))
		_, _, err := config.RouterPolicy(root)
		require.Equal(t, "CONFIG_INVALID", code(err))
		require.Contains(t, err.Error(), "an older kernel's placeholder")
	})
	t.Run("unreadable registry", func(t *testing.T) {
		root, _ := newPlane(t)
		require.NoError(t, os.Remove(filepath.Join(root, "registries", "file_ownership.csv")))
		_, _, err := config.RouterPolicy(root)
		require.Error(t, err)
	})

	root, key := newPlane(t)
	src := filepath.Join(t.TempDir(), "opconf")
	run(t, pkgcmd.Run, "init-config", "PKG-CONFIG-001", "--output", src)
	publish(t, root, key, "PKG-CONFIG-001", src)
	t.Run("changed since installed", func(t *testing.T) {
		p := filepath.Join(root, "config", "governance.json")
		require.NoError(t, os.Chmod(p, 0o644))
		require.NoError(t, os.WriteFile(p, []byte(`{"work_orders":"required"}`), 0o644))
		_, _, err := config.Governance(root)
		require.Equal(t, "CONFIG_INVALID", code(err))
		require.Contains(t, err.Error(), "changed since PKG-CONFIG-001 installed it")
	})
	t.Run("owned but missing", func(t *testing.T) {
		require.NoError(t, os.Remove(filepath.Join(root, "config", "router_policy.json")))
		_, _, err := config.RouterPolicy(root)
		require.Equal(t, "CONFIG_INVALID", code(err))
		require.Contains(t, err.Error(), "owned by PKG-CONFIG-001 but missing")
	})
	t.Run("the firewall's Cedar parser judges policy.cedar", func(t *testing.T) {
		err := config.Validate(config.PolicyPath, []byte("forbid (principal, action, resource) when { ;"))
		require.Equal(t, "CONFIG_INVALID", code(err))
		require.Contains(t, err.Error(), "does not parse")
		err = config.Validate(config.PolicyPath, []byte(`permit (principal, action, resource);`))
		require.Equal(t, "CONFIG_INVALID", code(err))
		require.Contains(t, err.Error(), "only forbid policies may tighten")
		require.NoError(t, config.Validate(config.PolicyPath, []byte(`forbid (principal, action == Action::"install", resource);`)))
	})
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name, path, body, want string // want "": valid
	}{
		{"governance required", config.GovernancePath, `{"work_orders":"required"}`, ""},
		{"governance unknown value", config.GovernancePath, `{"work_orders":"sometimes"}`, "/work_orders"},
		{"governance unknown field", config.GovernancePath, `{"work_orders":"optional","admin":true}`, "/"},
		{"governance missing field", config.GovernancePath, `{}`, "work_orders"},
		{"governance two values", config.GovernancePath, `{"work_orders":"optional"}{"work_orders":"required"}`, "more than one JSON value"},
		{"governance not JSON", config.GovernancePath, `{"work_orders":`, "not JSON"},
		{"governance an array", config.GovernancePath, `[]`, "/"},
		{"providers default not listed", config.ProvidersPath,
			`{"default_provider":"openai","providers":[{"id":"mock","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`, "is not a listed provider"},
		{"providers twice", config.ProvidersPath,
			`{"default_provider":"mock","providers":[{"id":"mock","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]},{"id":"mock","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`, "listed twice"},
		{"providers an API key in the file", config.ProvidersPath,
			`{"default_provider":"o","providers":[{"id":"o","type":"openai","api_key":"sk-123","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`, "/providers/0"},
		{"providers a float price", config.ProvidersPath,
			`{"default_provider":"o","providers":[{"id":"o","type":"openai","models":[{"id":"m","input_usd_per_mtok":0.5,"output_usd_per_mtok":"0"}]}]}`, "input_usd_per_mtok"},
		{"providers an unknown type", config.ProvidersPath,
			`{"default_provider":"o","providers":[{"id":"o","type":"gemini","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`, "/providers/0/type"},
		{"providers a cap on an unknown provider", config.ProvidersPath,
			`{"default_provider":"o","providers":[{"id":"o","type":"openai","base_url":"http://localhost:11434/v1","models":[{"id":"m","input_usd_per_mtok":"0.15","output_usd_per_mtok":"0.6"}]}],"caps":{"providers":{"x":1}}}`, "/caps/providers"},
		{"providers openai-compatible", config.ProvidersPath,
			`{"default_provider":"o","providers":[{"id":"o","type":"openai","base_url":"http://localhost:11434/v1","api_key_env":"OLLAMA_KEY","models":[{"id":"llama3","input_usd_per_mtok":"0.15","output_usd_per_mtok":"0.6","max_tokens":4096}]}],"caps":{"subjects":{"worker-1":10}}}`, ""},
		{"providers a mock with a key variable", config.ProvidersPath,
			`{"default_provider":"mock","providers":[{"id":"mock","type":"mock","api_key_env":"MOCK_KEY","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`, "calls no server"},
		{"providers a price with seven decimals", config.ProvidersPath,
			`{"default_provider":"o","providers":[{"id":"o","type":"openai","models":[{"id":"m","input_usd_per_mtok":"0.0000001","output_usd_per_mtok":"0"}]}]}`, "input_usd_per_mtok"},
		{"providers a price with a leading zero", config.ProvidersPath,
			`{"default_provider":"o","providers":[{"id":"o","type":"openai","models":[{"id":"m","input_usd_per_mtok":"03","output_usd_per_mtok":"0"}]}]}`, "input_usd_per_mtok"},
		{"providers a price with an exponent", config.ProvidersPath,
			`{"default_provider":"o","providers":[{"id":"o","type":"openai","models":[{"id":"m","input_usd_per_mtok":"3","output_usd_per_mtok":"1e3"}]}]}`, "output_usd_per_mtok"},
		{"router a route", config.RouterPolicyPath,
			`{"routes":[{"name":"deploy","when":".event_type == \"DEPLOY\"","handler":"deployer","mode":"llm_assisted","prompt_pack_id":"PRM-DEPLOY-1","required_capabilities":["deploy"]}],"deny":[{"when":".role == \"worker\"","reason":"no"}],"limits":{"llm_calls_per_session":10},"classifier":{"prompt_pack_id":"PRM-ROUTER","threshold":0.8},"default_route":{"handler":"default","mode":"tools_first"}}`, ""},
		{"router no default route", config.RouterPolicyPath, `{"routes":[]}`, "default_route"},
		{"router a bad mode", config.RouterPolicyPath, `{"default_route":{"handler":"h","mode":"fast"}}`, "/default_route/mode"},
		{"router a threshold over 1", config.RouterPolicyPath, `{"classifier":{"prompt_pack_id":"PRM-R","threshold":1.5},"default_route":{"handler":"h","mode":"tools_first"}}`, "/classifier/threshold"},
		{"policy text", config.PolicyPath, "forbid (principal, action, resource);\n", ""},
		{"policy not UTF-8", config.PolicyPath, "forbid \xff;", "not UTF-8 text"},
		{"policy a NUL", config.PolicyPath, "forbid\x00", "not UTF-8 text"},
		{"the kernel's file", "config/trusted_keys.json", `{"keys":[]}`, "not an operator configuration file"},
		{"too large", config.PolicyPath, strings.Repeat("/", config.MaxFileBytes+1), "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := config.Validate(tc.path, []byte(tc.body))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Equal(t, "CONFIG_INVALID", code(err))
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// hostileArchive writes an unsigned archive of a package of type typ
// holding files (by path), built by hand so that no stage check runs.
func hostileArchive(t *testing.T, id, typ string, files map[string]string) string {
	t.Helper()
	src := t.TempDir()
	m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, PackageID: id, Version: "1.0.0", PackageType: typ,
		SpecID: plane.KernelSpec, FrameworkID: plane.KernelFramework, PlaneID: "ho3", Dependencies: []string{}}
	paths := []string{manifest.FileName}
	for _, p := range config.Paths { // a deterministic order: the operator files first
		if b, ok := files[p]; ok {
			m.Assets = append(m.Assets, manifest.Asset{Path: p, SHA256: plane.SHA256([]byte(b)), Size: int64(len(b)), Classification: "config"})
		}
	}
	for p, b := range files {
		if !strings.HasPrefix(p, "config/") || !contains(config.Paths, p) {
			m.Assets = append(m.Assets, manifest.Asset{Path: p, SHA256: plane.SHA256([]byte(b)), Size: int64(len(b)), Classification: "config"})
		}
	}
	for p, b := range files {
		full := filepath.Join(src, filepath.FromSlash(p))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(b), 0o644))
		paths = append(paths, p)
	}
	mb, err := m.Marshal()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(src, manifest.FileName), mb, 0o644))
	var buf bytes.Buffer
	require.NoError(t, archive.Write(&buf, src, paths))
	a := filepath.Join(t.TempDir(), id+".tar.gz")
	require.NoError(t, os.WriteFile(a, buf.Bytes(), 0o644))
	return a
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// An archive made by hand, never staged, meets the same rule at install:
// refused with CONFIG_ASSET_INVALID before anything is written, and the
// loaders still give the defaults.
// routerPolicy is a router policy of one route.
func routerPolicy(when, handler string) string {
	return `{"routes":[{"when":"` + when + `","handler":"` + handler + `","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`
}

func TestInstallRefuses(t *testing.T) {
	valid := string(config.DefaultGovernance)
	for _, tc := range []struct {
		name, typ string
		files     map[string]string
		path      string
	}{
		{"a stray asset", "config", map[string]string{config.GovernancePath: valid, "config/extra.json": "{}"}, "config/extra.json"},
		{"the kernel's trusted keys", "config", map[string]string{config.GovernancePath: valid, "config/trusted_keys.json": `{"keys":[]}`}, "config/trusted_keys.json"},
		{"an invalid governance.json", "config", map[string]string{config.GovernancePath: `{"work_orders":"never"}`}, config.GovernancePath},
		{"a policy that is not text", "config", map[string]string{config.PolicyPath: "\xff\xfe"}, config.PolicyPath},
		{"a standard package writing governance.json", "standard", map[string]string{config.GovernancePath: valid}, config.GovernancePath},
		{"an agent package writing policy.cedar", "agent", map[string]string{config.PolicyPath: "// nothing\n"}, config.PolicyPath},
		{"a standard package, another spelling", "standard", map[string]string{"config/Policy.cedar": "// nothing\n"}, "config/Policy.cedar"},
		// A router policy cp-route would refuse does not install either
		// (the gate compiles it as cp-route does): the clock read, through
		// a definition too, an expression that does not compile, a route to
		// a handler no installed package provides.
		{"a router policy reading the clock", "config", map[string]string{config.RouterPolicyPath: routerPolicy(`now > 0`, "default")}, config.RouterPolicyPath},
		{"a router policy reading the clock through a definition", "config", map[string]string{config.RouterPolicyPath: routerPolicy(`def f: env; f | has(\"x\")`, "default")}, config.RouterPolicyPath},
		{"a router policy that does not compile", "config", map[string]string{config.RouterPolicyPath: routerPolicy(`nosuchfunction(1)`, "default")}, config.RouterPolicyPath},
		{"a router policy to an unknown handler", "config", map[string]string{config.RouterPolicyPath: routerPolicy(`.intent == \"x\"`, "ghost")}, config.RouterPolicyPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := newPlane(t)
			a := hostileArchive(t, "PKG-HOSTILE-001", tc.typ, tc.files)
			rep, err := gate.Preflight(context.Background(), root, gate.Source{Archive: a}, gate.Options{AllowUnsigned: true})
			require.NoError(t, err)
			require.False(t, rep.Passed)
			require.Equal(t, "CONFIG_ASSET_INVALID", rep.Results[0].Errors[0].Code, "%+v", rep.Results[0])
			require.Equal(t, tc.path, rep.Results[0].Errors[0].Path)
			if tc.path == config.RouterPolicyPath {
				require.Regexp(t, `router policy routes/0.*\((ROUTE_POLICY_INVALID|ROUTE_HANDLER_UNKNOWN)\)$`, rep.Results[0].Errors[0].Message)
			}

			_, err = install.Install(context.Background(), root, install.Options{Archive: a, Actor: plane.Actor{Name: "tester"}, Gate: gate.Options{AllowUnsigned: true}})
			require.Error(t, err)
			require.Equal(t, "CONFIG_ASSET_INVALID", code(err))
			for p := range tc.files {
				if p != "config/trusted_keys.json" { // the kernel's, there already
					require.NoFileExists(t, filepath.Join(root, filepath.FromSlash(p)))
				}
			}
			_, src, err := config.Governance(root)
			require.NoError(t, err)
			require.True(t, src.Default())
		})
	}
}
