package routecmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/clitest"
	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/ledgercmd"
	"github.com/control-plane/cp/internal/pkgcmd"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/route"
	"github.com/control-plane/cp/internal/testenv"
	"github.com/control-plane/cp/pkg/ledger"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testPolicy routes to the built-in handler only, so that no package of
// handlers is needed in-process (testdata/script/route.txtar installs one).
const testPolicy = `{
  "routes": [
    {"name": "deploy", "when": ".intent == \"deploy\"", "handler": "default", "mode": "llm_assisted", "prompt_pack_id": "PRM-DEPLOY"},
    {"name": "status", "when": ".intent == \"status\"", "handler": "default", "mode": "tools_first"}
  ],
  "deny": [{"when": ".user == \"mallory\"", "reason": "mallory is blocked"}],
  "limits": {"llm_calls_per_session": 2},
  "classifier": {"prompt_pack_id": "PRM-ROUTER"},
  "default_route": {"handler": "default", "mode": "tools_first"}
}
`

func run(t testing.TB, f cli.RunFunc, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	code := f(context.Background(), args, in, &out, &errb)
	return code, out.String(), errb.String()
}

func must(t testing.TB, f cli.RunFunc, stdin string, args ...string) string {
	t.Helper()
	code, out, errs := run(t, f, stdin, args...)
	require.Equal(t, 0, code, "%v\nstdout: %s\nstderr: %s", args, out, errs)
	return out
}

// newPlane bootstraps a plane and installs a config package holding
// policy, as an operator would: init-config, stage, sign, install.
func newPlane(t testing.TB, policy string) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("CONTROL_PLANE", "")
	t.Setenv("CONTROL_PLANE_TOKEN", "")
	t.Setenv("CONTROL_PLANE_AUTH", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	root := filepath.Join(dir, "plane")
	must(t, pkgcmd.Run, "", "keygen", "--name", "ops", "--out", dir)
	must(t, installcmd.Run, "", "bootstrap", "--root", root, "--trust-key", filepath.Join(dir, "ops.pub"))
	if policy != "" {
		conf := filepath.Join(dir, "opconf")
		must(t, pkgcmd.Run, "", "init-config", "PKG-CONFIG-001", "--output", conf)
		writeFile(t, filepath.Join(conf, "config", "router_policy.json"), policy)
		must(t, pkgcmd.Run, "", "stage", "PKG-CONFIG-001", "--root", root, "--src", conf, "--out", filepath.Join(dir, "v1"))
		arch := filepath.Join(dir, "v1", "PKG-CONFIG-001.tar.gz")
		must(t, pkgcmd.Run, "", "sign", "--archive", arch, "--key", filepath.Join(dir, "ops.key"))
		must(t, installcmd.Run, "", "install", "--root", root, "--archive", arch)
	}
	return root
}

// lines splits NDJSON output.
func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

// TestRoute drives route through its verbs on a plane with a policy: a
// rule, a deny recorded and refused, the default route with the
// classifier visibly unavailable, a stream answered line by line in one
// group commit, each decision a ROUTE_DECISION with what replays it.
func TestRoute(t *testing.T) {
	root := newPlane(t, testPolicy)
	out := must(t, Run, `{"intent":"deploy","variables":{"service":"api"}}`, "--root", root)
	require.Equal(t, "default", gjson.Get(out, "result.handler").String())
	require.Equal(t, "llm_assisted", gjson.Get(out, "result.mode").String())
	require.Equal(t, "PRM-DEPLOY", gjson.Get(out, "result.prompt_pack_id").String())
	require.JSONEq(t, `{"service":"api"}`, gjson.Get(out, "result.variables").Raw)
	require.Equal(t, "rule", gjson.Get(out, "evidence.route.by").String())
	require.EqualValues(t, 0, gjson.Get(out, "evidence.route.rule.index").Int())
	seq := gjson.Get(out, "result.decision_seq").Int()
	require.Equal(t, seq, gjson.Get(out, "evidence.seq").Int())

	// The entry.
	show := must(t, ledgercmd.Run, "", "show", "--root", root, "--seq", itoa(seq))
	e := gjson.Parse(show)
	require.Equal(t, "ROUTE_DECISION", e.Get("event_type").String())
	require.Equal(t, "ROUTED", e.Get("decision").String())
	require.JSONEq(t, `["PRM-DEPLOY"]`, e.Get("prompts_used").Raw)
	require.Equal(t, "PKG-CONFIG-001", e.Get("metadata.policy_source").String())
	require.Equal(t, "HO3", e.Get("metadata._tier").String())
	require.Equal(t, "off", e.Get("metadata._auth").String(), "no cp-auth init: written without a token")
	require.Equal(t, 1, strings.Count(show, `"_auth"`))
	require.JSONEq(t, `{"intent":"deploy","variables":{"service":"api"}}`, e.Get("metadata.request").Raw)
	pol := e.Get("metadata.policy_sha256").String()
	b, err := plane.ReadBlob(root, pol)
	require.NoError(t, err, "the policy is kept by its hash")
	require.Equal(t, testPolicy, string(b))

	// A deny: refused, exit 1, and recorded.
	code, out, errs := run(t, Run, `{"intent":"deploy","user":"mallory"}`, "--root", root)
	require.Equal(t, cli.ExitDenied, code, out)
	require.Equal(t, "ROUTE_DENIED", gjson.Get(out, "error.code").String())
	require.Contains(t, errs, "cp-route: error: request denied by the router policy: deny rule 0: mallory is blocked")
	dseq := gjson.Get(out, "evidence.seq").Int()
	show = must(t, ledgercmd.Run, "", "show", "--root", root, "--seq", itoa(dseq))
	require.Equal(t, "DENIED", gjson.Get(show, "decision").String())
	require.EqualValues(t, 0, gjson.Get(show, "metadata.deny.index").Int())

	// No rule, the classifier is the gateway but its router prompt pack
	// is not registered: the default route, and the decision says why.
	out = must(t, Run, `{"intent":"chat"}`, "--root", root)
	require.Equal(t, "default", gjson.Get(out, "result.handler").String())
	require.Equal(t, "failed", gjson.Get(out, "evidence.route.classifier.outcome").String())
	require.Contains(t, gjson.Get(out, "evidence.route.reason").String(), "the classifier failed")
	require.Contains(t, gjson.Get(out, "evidence.route.classifier.error").String(), "PRM-ROUTER")
	// A binary without the gateway (a table of verbs with no classifier)
	// says the classifier is unavailable, never silently.
	code, out, _ = run(t, func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return cli.RunWith(ctx, tool(&router{}), cli.Options{}, args, stdin, stdout, stderr)
	}, `{"intent":"chat"}`, "--root", root)
	require.Equal(t, 0, code, out)
	require.Equal(t, "unavailable", gjson.Get(out, "evidence.route.classifier.outcome").String())
	require.Contains(t, gjson.Get(out, "evidence.route.reason").String(), "classifier is unavailable")

	// A stream: one answer per line, one group commit for what arrived
	// together, stopping at a denial (recorded), nothing after it decided.
	out = must(t, Run, "{\"intent\":\"status\"}\n{\"intent\":\"deploy\"}\n{\"intent\":\"x\"}\n", "--root", root, "--plane", "ho2")
	ls := lines(out)
	require.Len(t, ls, 3)
	for i, l := range ls {
		require.Equal(t, "ok", gjson.Get(l, "status").String(), l)
		if i > 0 {
			require.Equal(t, gjson.Get(ls[i-1], "result.decision_seq").Int()+1, gjson.Get(l, "result.decision_seq").Int())
		}
	}
	code, out, _ = run(t, Run, "{\"intent\":\"status\"}\n{\"user\":\"mallory\"}\n{\"intent\":\"x\"}\n", "--root", root, "--plane", "ho2")
	require.Equal(t, cli.ExitDenied, code)
	ls = lines(out)
	require.Len(t, ls, 2, "the stream stops at the denial")
	require.Equal(t, "ROUTE_DENIED", gjson.Get(ls[1], "error.code").String())
	show = must(t, ledgercmd.Run, "", "show", "--root", root, "--plane", "ho2", "--event-type", "ROUTE_DECISION")
	require.Len(t, lines(show), 5, "three, then one and the denial")

	// Every ledger still verifies.
	must(t, ledgercmd.Run, "", "verify", "--root", root)
	must(t, ledgercmd.Run, "", "verify", "--root", root, "--plane", "ho2")

	// Replays: each recorded decision gives the same answer.
	for _, l := range lines(show) {
		s := gjson.Get(l, "seq").Int()
		out := must(t, Run, "", "route", "--root", root, "--plane", "ho2", "--replay", itoa(s))
		require.True(t, gjson.Get(out, "result.same").Bool(), out)
	}
	out = must(t, Run, "", "--root", root, "--replay", itoa(seq))
	require.True(t, gjson.Get(out, "result.same").Bool(), out)
	require.Equal(t, pol, gjson.Get(out, "result.policy_sha256").String())

	// What cannot be replayed.
	code, out, _ = run(t, Run, "", "--root", root, "--replay", "0")
	require.Equal(t, cli.ExitInvalid, code)
	require.Equal(t, "ROUTE_REPLAY_INVALID", gjson.Get(out, "error.code").String())
	code, out, _ = run(t, Run, "", "--root", root, "--replay", "100000")
	require.Equal(t, cli.ExitInvalid, code)
	require.Contains(t, gjson.Get(out, "error.message").String(), "no entry 100000")
}

// TestReplayDifferent: a recorded decision that does not follow from its
// policy and request (written here through the library, as a tool with a
// bug, or a forger with the plane's key, would) is named, exit 1.
func TestReplayDifferent(t *testing.T) {
	root := newPlane(t, testPolicy)
	out := must(t, Run, `{"intent":"deploy"}`, "--root", root)
	seq := gjson.Get(out, "result.decision_seq").Int()
	show := must(t, ledgercmd.Run, "", "show", "--root", root, "--seq", itoa(seq))
	var e ledger.Entry
	require.NoError(t, json.Unmarshal([]byte(show), &e))
	e.Metadata["handler"], e.Metadata["mode"] = "default", "tools_first" // not what rule 0 says
	l, _, err := plane.OpenLedger(root, plane.ForAppend, plane.Actor{Name: "forger"})
	require.NoError(t, err)
	es, err := l.Append(context.Background(), []ledger.Draft{{EventType: e.EventType, SubmissionID: e.SubmissionID, Decision: e.Decision,
		Reason: e.Reason, PromptsUsed: e.PromptsUsed, Metadata: e.Metadata}})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	code, out, errs := run(t, Run, "", "--root", root, "--replay", itoa(es[0].Seq))
	require.Equal(t, cli.ExitDenied, code, out)
	require.Equal(t, "ROUTE_REPLAY_DIFFERENT", gjson.Get(out, "error.code").String())
	require.False(t, gjson.Get(out, "result.same").Bool())
	require.JSONEq(t, `["mode"]`, gjson.Get(out, "result.differences").Raw)
	require.Contains(t, errs, "gives another answer")

	// A request edited after the fact no longer hashes to what was recorded.
	e.Metadata["request"] = map[string]any{"intent": "status"}
	l, _, err = plane.OpenLedger(root, plane.ForAppend, plane.Actor{Name: "forger"})
	require.NoError(t, err)
	es, err = l.Append(context.Background(), []ledger.Draft{{EventType: e.EventType, Decision: e.Decision, Metadata: e.Metadata}})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	code, out, _ = run(t, Run, "", "--root", root, "--replay", itoa(es[0].Seq))
	require.Equal(t, cli.ExitInvalid, code, out)
	require.Contains(t, gjson.Get(out, "error.message").String(), "does not hash")
}

// fakeClassifier answers one handler at one confidence.
type fakeClassifier struct {
	handler string
	conf    route.Confidence
	err     error
}

func (f fakeClassifier) Classify(context.Context, route.ClassifyQuery) (string, route.Confidence, map[string]any, error) {
	return f.handler, f.conf, map[string]any{"model": "fake-1"}, f.err
}

func with(clf route.Classifier) cli.RunFunc {
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return RunWith(ctx, clf, cli.Options{}, args, stdin, stdout, stderr)
	}
}

// TestClassifierAndLimit: the classifier through the seam (a fake), its
// threshold, its failure visible; the session's LLM calls counted from the
// ledger across processes, the limit refusing an llm_assisted route and
// sparing the classifier, each replayed with the recorded answer.
func TestClassifierAndLimit(t *testing.T) {
	root := newPlane(t, testPolicy)
	const ses = "SES-20261206-0a1b2c3d"
	out := must(t, with(fakeClassifier{handler: "default", conf: "0.8"}), `{"intent":"chat"}`, "--root", root, "--session", ses)
	require.Equal(t, "accepted", gjson.Get(out, "evidence.route.classifier.outcome").String())
	require.Equal(t, "classifier", gjson.Get(out, "evidence.route.by").String())
	require.Equal(t, "tools_first", gjson.Get(out, "result.mode").String())
	require.Equal(t, ses, gjson.Get(out, "result.session_id").String())
	s1 := gjson.Get(out, "result.decision_seq").Int()

	out = must(t, with(fakeClassifier{handler: "default", conf: "0.79"}), `{"intent":"chat"}`, "--root", root, "--session", ses)
	require.Equal(t, "below_threshold", gjson.Get(out, "evidence.route.classifier.outcome").String())
	require.Equal(t, "default", gjson.Get(out, "evidence.route.by").String())
	s2 := gjson.Get(out, "result.decision_seq").Int()

	// Two calls spent: the limit (2) refuses an llm_assisted route, in
	// another process, counted from the ledger.
	code, out, _ := run(t, Run, `{"intent":"deploy"}`, "--root", root, "--session", ses)
	require.Equal(t, cli.ExitDenied, code, out)
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(out, "error.code").String())
	s3 := gjson.Get(out, "evidence.seq").Int()
	// ... and the classifier is not asked.
	out = must(t, with(fakeClassifier{err: errors.New("must not be called")}), `{"intent":"chat"}`, "--root", root, "--session", ses)
	require.Equal(t, "limit_reached", gjson.Get(out, "evidence.route.classifier.outcome").String())
	// Another session is not limited; a failing classifier falls back,
	// visibly.
	out = must(t, with(fakeClassifier{err: errors.New("provider timed out")}), `{"intent":"chat"}`, "--root", root, "--session", "SES-20261206-ffffffff")
	require.Equal(t, "failed", gjson.Get(out, "evidence.route.classifier.outcome").String())
	require.Contains(t, gjson.Get(out, "evidence.route.reason").String(), "provider timed out")
	s5 := gjson.Get(out, "result.decision_seq").Int()
	// In one stream, the count carries from decision to decision.
	code, out, _ = run(t, Run, "{\"intent\":\"deploy\"}\n{\"intent\":\"deploy\"}\n{\"intent\":\"deploy\"}\n", "--root", root, "--session", "SES-20261206-00000001")
	require.Equal(t, cli.ExitDenied, code, out)
	require.Len(t, lines(out), 3)
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(lines(out)[2], "error.code").String())

	for _, s := range []int64{s1, s2, s3, s5} {
		out := must(t, Run, "", "--root", root, "--replay", itoa(s))
		require.True(t, gjson.Get(out, "result.same").Bool(), out)
	}
}

// TestRefusals: a policy that reads outside the request or routes to an
// unknown handler does not install (the gate compiles it as cp-route
// does; cp-route judges it again at load: internal/route's tests); a
// looping expression stops at its deadline.
func TestRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		policy, code string
	}{
		"a forbidden builtin": {`{"routes":[{"when":"now > 0","handler":"default","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`, "ROUTE_POLICY_INVALID"},
		"$ENV":                {`{"deny":[{"when":"$ENV.USER == \"root\"","reason":"r"}],"default_route":{"handler":"default","mode":"tools_first"}}`, "ROUTE_POLICY_INVALID"},
		"an unknown handler":  {`{"routes":[{"when":"true","handler":"ghost","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`, "ROUTE_HANDLER_UNKNOWN"},
	} {
		t.Run(name, func(t *testing.T) {
			root := newPlane(t, "")
			conf := filepath.Join(t.TempDir(), "opconf")
			must(t, pkgcmd.Run, "", "init-config", "PKG-CONFIG-001", "--output", conf)
			writeFile(t, filepath.Join(conf, "config", "router_policy.json"), tc.policy)
			code, out, errs := run(t, pkgcmd.Run, "", "stage", "PKG-CONFIG-001", "--root", root, "--src", conf, "--out", filepath.Join(t.TempDir(), "v1"))
			require.Equal(t, cli.ExitDenied, code, out)
			require.Equal(t, "PREFLIGHT_FAILED", gjson.Get(out, "error.code").String(), out)
			require.Contains(t, errs, "CONFIG_ASSET_INVALID config/router_policy.json: router policy ")
			require.Contains(t, errs, "("+tc.code+")")
			// The built-in policy is in force: the default route.
			out = must(t, Run, `{"intent":"x"}`, "--root", root)
			require.Equal(t, "default", gjson.Get(out, "evidence.route.by").String(), out)
		})
	}
	t.Run("a looping expression", func(t *testing.T) {
		defer func(d time.Duration) { route.EvalTimeout = d }(route.EvalTimeout)
		route.EvalTimeout = 500 * time.Millisecond
		root := newPlane(t, `{"routes":[{"when":".intent == \"a\"","handler":"default","mode":"tools_first"},{"when":"def f: f; f","handler":"default","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`)
		code, out, _ := run(t, Run, "{\"intent\":\"a\"}\n{\"intent\":\"b\"}\n", "--root", root)
		require.Equal(t, cli.ExitInvalid, code, out)
		ls := lines(out)
		require.Len(t, ls, 2)
		require.Equal(t, "ok", gjson.Get(ls[0], "status").String(), "the first rule decided the first")
		require.Equal(t, "ROUTE_EXPR_TIMEOUT", gjson.Get(ls[1], "error.code").String())
		require.Equal(t, "routes/1/when", gjson.Get(ls[1], "error.details.rule").String())
	})
	t.Run("a looping expression in a large batch", func(t *testing.T) {
		defer func(d time.Duration) { route.EvalTimeout = d }(route.EvalTimeout)
		route.EvalTimeout = time.Second
		root := newPlane(t, `{"routes":[{"when":"if .n >= 300 then (def f: f; f) else false end","handler":"default","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`)
		var in strings.Builder
		for i := range 2000 {
			in.WriteString(`{"n":` + itoa(int64(i)) + "}\n")
		}
		start := time.Now()
		code, out, _ := run(t, Run, in.String(), "--root", root)
		require.Equal(t, cli.ExitInvalid, code)
		ls := lines(out)
		require.Len(t, ls, 301, "every request before the first that loops is decided, none after")
		require.Equal(t, "ROUTE_EXPR_TIMEOUT", gjson.Get(ls[300], "error.code").String())
		require.Less(t, time.Since(start), 20*time.Second, "one deadline per goroutine, not one per request")
		show := must(t, ledgercmd.Run, "", "show", "--root", root, "--event-type", "ROUTE_DECISION")
		require.Len(t, lines(show), 300)
	})
	t.Run("no policy: the built-in default route", func(t *testing.T) {
		root := newPlane(t, "")
		out := must(t, Run, `{"intent":"x"}`, "--root", root)
		require.Equal(t, "default", gjson.Get(out, "result.handler").String())
		show := must(t, ledgercmd.Run, "", "show", "--root", root, "--event-type", "ROUTE_DECISION")
		require.Equal(t, "built-in default", gjson.Get(show, "metadata.policy_source").String())
		out = must(t, Run, "", "list-handlers", "--root", root)
		require.JSONEq(t, `["default"]`, gjson.Get(out, "result.handlers.#.handler").Raw)
	})
}

// TestFirewall: route is its own action (DESIGN.md §8): a reader and an
// auditor are refused, recorded; a worker routes within its work order; a
// replay is a read.
func TestFirewall(t *testing.T) {
	root := newPlane(t, testPolicy)
	const wo, ses = "WO-20261206-001", "SES-20261206-0a1b2c3d"
	as := func(role string, tiers ...string) cli.RunFunc {
		return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
			cl := &auth.Claims{Subject: role + "-1", Role: role, Tiers: tiers}
			if role == "worker" {
				cl.WorkOrder, cl.Session = wo, ses
			}
			return cli.RunWith(ctx, tool(&router{}), cli.Options{Identity: cli.Identity{Subject: cl.Subject, Auth: auth.AuthToken, Claims: cl}}, args, stdin, stdout, stderr)
		}
	}
	out := must(t, Run, `{"intent":"status"}`, "--root", root)
	seq := gjson.Get(out, "result.decision_seq").Int()
	for _, role := range []string{"reader", "auditor"} {
		code, out, _ := run(t, as(role, "ho3", "ho2", "ho1"), `{"intent":"status"}`, "--root", root)
		require.Equal(t, cli.ExitDenied, code, out)
		require.Equal(t, "FIREWALL_DENIED", gjson.Get(out, "error.code").String())
		// A replay is a read: allowed.
		must(t, as(role, "ho3"), "", "--root", root, "--replay", itoa(seq))
	}
	show := must(t, ledgercmd.Run, "", "show", "--root", root, "--event-type", "AUTHZ_DENIED")
	require.Contains(t, show, `"action":"route"`)
	// A worker routes at HO1 within its work order (its token's session
	// and work order filled in), not at HO3.
	out = must(t, as("worker", "ho1"), `{"intent":"status"}`, "--root", root, "--plane", "ho1")
	require.Equal(t, ses, gjson.Get(out, "result.session_id").String())
	require.Equal(t, wo, gjson.Get(out, "result.work_order_id").String())
	code, out, _ := run(t, as("worker", "ho1"), `{"intent":"status"}`, "--root", root)
	require.Equal(t, cli.ExitDenied, code, out)
	code, out, _ = run(t, as("worker", "ho1"), `{"intent":"status"}`, "--root", root, "--plane", "ho1", "--wo", "WO-20261206-002")
	require.Equal(t, cli.ExitDenied, code, out)
	// Nor in another session: its limit counts its own.
	code, out, _ = run(t, as("worker", "ho1"), `{"intent":"status"}`, "--root", root, "--plane", "ho1", "--session", "SES-20261206-ffffffff")
	require.Equal(t, cli.ExitDenied, code, out)
	require.Contains(t, gjson.Get(out, "error.message").String(), "its own session")
	out = must(t, as("maintainer", "ho3", "ho2", "ho1"), `{"intent":"status"}`, "--root", root)
	// Written with a token: no _auth stamp (the one above, with auth off, has it).
	show = must(t, ledgercmd.Run, "", "show", "--root", root, "--seq", itoa(gjson.Get(out, "result.decision_seq").Int()))
	require.False(t, gjson.Get(show, "metadata._auth").Exists(), show)
	show = must(t, ledgercmd.Run, "", "show", "--root", root, "--seq", itoa(seq))
	require.Equal(t, "off", gjson.Get(show, "metadata._auth").String(), show)
}

// TestStdinOperation: the request path's other form.
func TestStdinOperation(t *testing.T) {
	clitest.RunCases(t, Run, []clitest.Case{
		{Name: "a plane", Run: installcmd.Run, Args: []string{"bootstrap", "--root", "$DIR/plane"}},
		{Name: "list-handlers by operation", Args: []string{"--root", "$DIR/plane"}, Stdin: `{"operation":"list-handlers"}`, Stdout: []string{`"handler":"default"`}},
		{Name: "list-handlers text", Args: []string{"list-handlers", "--root", "$DIR/plane", "--format", "text"}, Stdout: []string{"default", "(built in)"}},
		{Name: "route text", Args: []string{"--root", "$DIR/plane", "--format", "text"}, Stdin: `{"q":1}`, Stdout: []string{"default\ttools_first\t-\tdecision seq"}},
		{Name: "a bad plane flag", Args: []string{"--root", "$DIR/plane", "--plane", "ho9"}, Exit: cli.ExitUsage, Stdout: []string{"USAGE"}},
		{Name: "a bad plane", Args: []string{"--root", "$DIR/plane"}, Stdin: `{"q":1,"plane":"ho9"}`, Exit: cli.ExitInvalid, Stdout: []string{"SCHEMA_VIOLATION"}},
		{Name: "a bad replay", Args: []string{"--root", "$DIR/plane", "--replay", "x"}, Exit: cli.ExitUsage},
	})
}

func writeFile(t testing.TB, p, s string) {
	t.Helper()
	require.NoError(t, osWriteFile(p, []byte(s)))
}

func itoa(n int64) string { return strings.TrimSpace(jsonNum(n)) }

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestLimitInLargeBatches: a stream whose batches are drafted on the
// workers (speculatively, without the session's count): each decision
// records the count as it stood in order, the llm_assisted route past the
// limit is refused where the count says, not where a draft guessed, and
// the decisions replay.
func TestLimitInLargeBatches(t *testing.T) {
	root := newPlane(t, testPolicy)
	const ses = "SES-20261206-0b0b0b0b"
	var in strings.Builder
	for _, intent := range []string{"status", "deploy", "status", "deploy", "status", "deploy", "status"} {
		n := 300
		if intent == "deploy" {
			n = 1
		}
		for range n {
			in.WriteString(`{"intent":"` + intent + `"}` + "\n")
		}
	}
	code, out, _ := run(t, Run, in.String(), "--root", root, "--session", ses)
	require.Equal(t, cli.ExitDenied, code)
	ls := lines(out)
	require.Len(t, ls, 903, "the stream stops at the refusal")
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", gjson.Get(ls[902], "error.code").String(), ls[902])
	show := must(t, ledgercmd.Run, "", "show", "--root", root, "--event-type", "ROUTE_DECISION")
	es := lines(show)
	require.Len(t, es, 903, "the refusal is recorded too")
	for i, e := range es {
		want := int64(0)
		switch {
		case i > 601:
			want = 2
		case i > 300:
			want = 1
		}
		require.Equal(t, want, gjson.Get(e, "metadata.session_llm_calls").Int(), "decision %d: %s", i, e)
		require.Equal(t, i == 300 || i == 601, gjson.Get(e, "metadata.llm_calls").Int() == 1, "decision %d", i)
	}
	require.Equal(t, "DENIED", gjson.Get(es[902], "decision").String())
	for _, i := range []int{0, 300, 301, 601, 902} {
		out := must(t, Run, "", "--root", root, "--replay", itoa(gjson.Get(es[i], "seq").Int()))
		require.True(t, gjson.Get(out, "result.same").Bool(), out)
	}
}

// TestPipelinedStream: a stream long enough to run in pipelined batches
// (cli.Verb.Pipeline: each batch prepared while the one before is
// committed), mixing tiers and a replay, ending at a denial: every answer
// in order, each ledger's decisions in the requests' order, the replay
// answered in its place, the denial recorded and nothing after it.
func TestPipelinedStream(t *testing.T) {
	root := newPlane(t, testPolicy)
	first := must(t, Run, `{"intent":"deploy"}`, "--root", root)
	seq0 := gjson.Get(first, "result.decision_seq").Int()
	var in strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&in, `{"intent":"status","variables":{"i":%d}}`+"\n", i)
	}
	fmt.Fprintf(&in, `{"replay":%d}`+"\n", seq0)
	for i := range 2000 {
		fmt.Fprintf(&in, `{"intent":"status","plane":"ho2","variables":{"i":%d}}`+"\n", 2000+i)
	}
	in.WriteString(`{"intent":"status","variables":{"i":4000}}` + "\n")
	in.WriteString(`{"intent":"status","user":"mallory"}` + "\n")
	for i := range 3000 {
		fmt.Fprintf(&in, `{"intent":"status","variables":{"i":%d}}`+"\n", 5000+i)
	}
	code, out, errs := run(t, Run, in.String(), "--root", root)
	require.Equal(t, cli.ExitDenied, code, errs)
	ls := lines(out)
	require.Len(t, ls, 4003, "the stream stops at the denial")
	last := map[bool]int64{false: seq0, true: -1} // by ho2
	for i, l := range ls[:4002] {
		require.Equal(t, "ok", gjson.Get(l, "status").String(), "answer %d: %s", i, l)
		if i == 2000 {
			require.True(t, gjson.Get(l, "result.same").Bool(), l)
			continue
		}
		n := i
		if i > 2000 {
			n = i - 1
		}
		require.Equal(t, int64(n), gjson.Get(l, "result.variables.i").Int(), "answer %d in order", i)
		ho2 := i > 2000 && i < 4001
		s := gjson.Get(l, "result.decision_seq").Int()
		require.Greater(t, s, last[ho2], "answer %d", i)
		last[ho2] = s
	}
	require.Equal(t, "ROUTE_DENIED", gjson.Get(ls[4002], "error.code").String(), ls[4002])
	ho3 := lines(must(t, ledgercmd.Run, "", "show", "--root", root, "--event-type", "ROUTE_DECISION"))
	require.Len(t, ho3, 1+2000+1+1, "nothing after the denial is recorded")
	require.Equal(t, "DENIED", gjson.Get(ho3[len(ho3)-1], "decision").String())
	ho2 := lines(must(t, ledgercmd.Run, "", "show", "--root", root, "--plane", "ho2", "--event-type", "ROUTE_DECISION"))
	require.Len(t, ho2, 2000)
}

// countingClassifier is fakeClassifier counting its calls.
type countingClassifier struct {
	fakeClassifier
	calls *atomic.Int64
}

func (c countingClassifier) Classify(ctx context.Context, q route.ClassifyQuery) (string, route.Confidence, map[string]any, error) {
	c.calls.Add(1)
	return c.fakeClassifier.Classify(ctx, q)
}

// TestClassifierAskedOnceUnderLimit: in a limited session the classifier
// is asked before the ledger's lock is taken and its answer kept for the
// decision under it: each request is asked once, the limit (2) spares the
// third, and the decisions record what was asked.
func TestClassifierAskedOnceUnderLimit(t *testing.T) {
	root := newPlane(t, testPolicy)
	var calls atomic.Int64
	clf := countingClassifier{fakeClassifier{handler: "default", conf: "0.9"}, &calls}
	code, out, _ := run(t, with(clf), "{\"intent\":\"chat\"}\n{\"intent\":\"chat\"}\n{\"intent\":\"chat\"}\n", "--root", root, "--session", "SES-20261207-0c1a551f")
	require.Equal(t, 0, code, out)
	ls := lines(out)
	require.Len(t, ls, 3)
	for i, want := range []string{"accepted", "accepted", "limit_reached"} {
		require.Equal(t, want, gjson.Get(ls[i], "evidence.route.classifier.outcome").String(), "decision %d", i)
	}
	require.Equal(t, int64(2), calls.Load(), "asked once for each of the first two, not for the third")
}

// TestSessionCountFromNewest: a process reads a session's count from its
// newest decision when that records one (session_llm_calls, then its own
// llm_calls), and sums the session's decisions when it does not (recorded
// with no limit in force, or not a count): either way the limit (2)
// refuses the llm_assisted route once two calls are spent.
func TestSessionCountFromNewest(t *testing.T) {
	root := newPlane(t, testPolicy)
	forge := func(session string, metas ...map[string]any) {
		t.Helper()
		l, _, err := plane.OpenLedger(root, plane.ForAppend, plane.Actor{Name: "forger"})
		require.NoError(t, err)
		defer l.Close()
		for _, m := range metas {
			_, err := l.Append(context.Background(), []ledger.Draft{{EventType: EventType, SubmissionID: session, Decision: "ROUTED", Metadata: m}})
			require.NoError(t, err)
		}
	}
	deploy := func(session string) string {
		_, out, _ := run(t, Run, `{"intent":"deploy"}`, "--root", root, "--session", session)
		return gjson.Get(out, "error.code").String()
	}
	n := func(i int64) json.Number { return json.Number(itoa(i)) }

	// Two calls, no count recorded: summed.
	forge("SES-20261207-00000a01", map[string]any{"llm_calls": n(1)}, map[string]any{"llm_calls": n(1)})
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", deploy("SES-20261207-00000a01"))
	// The newest records one spent before it and its own: two.
	forge("SES-20261207-00000a02", map[string]any{"llm_calls": n(0), "session_llm_calls": n(0)},
		map[string]any{"llm_calls": n(1), "session_llm_calls": n(1)})
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", deploy("SES-20261207-00000a02"))
	// The newest's count is read alone, not the older decisions: it says
	// one spent in all (the two before it, summed, would say two), so
	// there is room for one more.
	forge("SES-20261207-00000a03", map[string]any{"llm_calls": n(1)}, map[string]any{"llm_calls": n(1)},
		map[string]any{"llm_calls": n(0), "session_llm_calls": n(1)})
	require.Equal(t, "", deploy("SES-20261207-00000a03"))
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", deploy("SES-20261207-00000a03"))
	// A count that is not one: summed.
	forge("SES-20261207-00000a04", map[string]any{"llm_calls": n(1)},
		map[string]any{"llm_calls": n(1), "session_llm_calls": "none"})
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", deploy("SES-20261207-00000a04"))
	forge("SES-20261207-00000a05", map[string]any{"llm_calls": n(1)},
		map[string]any{"llm_calls": n(1), "session_llm_calls": n(-5)})
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", deploy("SES-20261207-00000a05"))
}
