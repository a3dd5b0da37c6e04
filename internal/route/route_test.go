package route

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClassifier answers what it is told, and counts its calls.
type fakeClassifier struct {
	handler string
	conf    Confidence
	err     error
	calls   int
}

func (f *fakeClassifier) Classify(_ context.Context, q ClassifyQuery) (string, Confidence, map[string]any, error) {
	f.calls++
	return f.handler, f.conf, map[string]any{"pack": q.PromptPackID}, f.err
}

var testHandlers = map[string]Handler{
	"deployer": {Name: "deployer", PackageID: "PKG-DEPLOY-001", Capabilities: []string{"deploy", "rollback"}},
	"support":  {Name: "support", PackageID: "PKG-SUPPORT-001", Capabilities: []string{}},
	"billing":  {Name: "billing", PackageID: "PKG-BILLING-001"},
}

const fullPolicy = `{
  "routes": [
    {"name": "deploy", "when": ".intent == \"deploy\"", "handler": "deployer", "mode": "llm_assisted", "prompt_pack_id": "PRM-DEPLOY", "required_capabilities": ["deploy"]},
    {"name": "deploy-too", "when": ".intent == \"deploy\" or .intent == \"ship\"", "handler": "support", "mode": "tools_first"},
    {"when": "(.tags // []) | index(\"billing\") != null", "handler": "billing", "mode": "tools_first", "prompt_pack_id": "PRM-BILL"}
  ],
  "deny": [
    {"when": ".user == \"mallory\"", "reason": "mallory is blocked"},
    {"when": ".intent == \"drop-tables\"", "reason": "destructive"}
  ],
  "limits": {"llm_calls_per_session": 2},
  "classifier": {"prompt_pack_id": "PRM-ROUTER", "threshold": 0.8},
  "default_route": {"handler": "default", "mode": "tools_first"}
}`

func compile(t *testing.T, policy string) *Policy {
	t.Helper()
	p, err := Compile([]byte(policy), testHandlers)
	require.NoError(t, err)
	return p
}

// TestDecide holds the order of judgement to its contract: deny rules
// first, then the routes in order, then the classifier with its threshold
// (exactly 0.8 is taken, 0.79 is not), then the default route; and the
// session's LLM call limit.
func TestDecide(t *testing.T) {
	p := compile(t, fullPolicy)
	cases := []struct {
		name string
		req  string // a JSON object
		used int64
		clf  *fakeClassifier
		// want: handler, mode, by; denied; calls made to the classifier
		handler, mode, by string
		denied            bool
		rule, deny        int // -1: none
		llmCalls          int64
		classifierOutcome string
		clfCalls          int
		reason            string
	}{
		{name: "the first matching rule decides", req: `{"intent":"deploy"}`, used: -1, handler: "deployer", mode: "llm_assisted", by: "rule", rule: 0, deny: -1, llmCalls: 1},
		{name: "a later rule when the first does not match", req: `{"intent":"ship"}`, used: -1, handler: "support", mode: "tools_first", by: "rule", rule: 1, deny: -1},
		{name: "a rule over an array", req: `{"tags":["x","billing"]}`, used: -1, handler: "billing", mode: "tools_first", by: "rule", rule: 2, deny: -1},
		{name: "deny rules come first", req: `{"intent":"deploy","user":"mallory"}`, used: -1, by: "deny", denied: true, rule: -1, deny: 0, reason: "mallory is blocked"},
		{name: "the second deny rule", req: `{"intent":"drop-tables"}`, used: -1, by: "deny", denied: true, rule: -1, deny: 1},
		{name: "no rule, no classifier wired: default, visibly", req: `{"intent":"chat"}`, used: -1, handler: "default", mode: "tools_first", by: "default", rule: -1, deny: -1,
			classifierOutcome: "unavailable", reason: "classifier is unavailable"},
		{name: "classifier at exactly 0.8 is taken", req: `{"intent":"chat"}`, used: -1, clf: &fakeClassifier{handler: "support", conf: "0.8"},
			handler: "support", mode: "tools_first", by: "classifier", rule: -1, deny: -1, llmCalls: 1, classifierOutcome: "accepted", clfCalls: 1},
		{name: "classifier at 0.80 is taken", req: `{"intent":"chat"}`, used: -1, clf: &fakeClassifier{handler: "support", conf: "0.80"},
			handler: "support", mode: "tools_first", by: "classifier", rule: -1, deny: -1, llmCalls: 1, classifierOutcome: "accepted", clfCalls: 1},
		{name: "classifier at 1 is taken", req: `{"intent":"chat"}`, used: -1, clf: &fakeClassifier{handler: "billing", conf: "1"},
			handler: "billing", mode: "tools_first", by: "classifier", rule: -1, deny: -1, llmCalls: 1, classifierOutcome: "accepted", clfCalls: 1},
		{name: "classifier at 0.79 goes to the default route", req: `{"intent":"chat"}`, used: -1, clf: &fakeClassifier{handler: "support", conf: "0.79"},
			handler: "default", mode: "tools_first", by: "default", rule: -1, deny: -1, llmCalls: 1, classifierOutcome: "below_threshold", clfCalls: 1},
		{name: "classifier at 0.7999999999999999999 (not a float) goes to the default route", req: `{"intent":"chat"}`, used: -1, clf: &fakeClassifier{handler: "support", conf: "0.799999999999999999"},
			handler: "default", mode: "tools_first", by: "default", rule: -1, deny: -1, llmCalls: 1, classifierOutcome: "below_threshold", clfCalls: 1},
		{name: "a confidence that is not a decimal in [0,1]", req: `{"intent":"chat"}`, used: -1, clf: &fakeClassifier{handler: "support", conf: "8e-1"},
			handler: "default", mode: "tools_first", by: "default", rule: -1, deny: -1, llmCalls: 1, classifierOutcome: "invalid_confidence", clfCalls: 1},
		{name: "a confidence over 1", req: `{"intent":"chat"}`, used: -1, clf: &fakeClassifier{handler: "support", conf: "1.5"},
			handler: "default", mode: "tools_first", by: "default", rule: -1, deny: -1, llmCalls: 1, classifierOutcome: "invalid_confidence", clfCalls: 1},
		{name: "a classifier that fails: default, visibly", req: `{"intent":"chat"}`, used: -1, clf: &fakeClassifier{err: errors.New("provider timed out")},
			handler: "default", mode: "tools_first", by: "default", rule: -1, deny: -1, llmCalls: 1, classifierOutcome: "failed", clfCalls: 1, reason: "provider timed out"},
		{name: "a classifier answering an unknown handler", req: `{"intent":"chat"}`, used: -1, clf: &fakeClassifier{handler: "nosuch", conf: "0.99"},
			handler: "default", mode: "tools_first", by: "default", rule: -1, deny: -1, llmCalls: 1, classifierOutcome: "unknown_handler", clfCalls: 1},
		{name: "deny before the classifier", req: `{"user":"mallory"}`, used: -1, clf: &fakeClassifier{handler: "support", conf: "0.9"},
			by: "deny", denied: true, rule: -1, deny: 0},
		{name: "a session under its limit: the llm_assisted route", req: `{"intent":"deploy"}`, used: 1, handler: "deployer", mode: "llm_assisted", by: "rule", rule: 0, deny: -1, llmCalls: 1},
		{name: "a session at its limit: the llm_assisted route refused", req: `{"intent":"deploy"}`, used: 2, handler: "deployer", mode: "llm_assisted", by: "limit", denied: true, rule: 0, deny: -1,
			reason: "spent 2 of its 2"},
		{name: "a session at its limit: a tools_first route still goes", req: `{"intent":"ship"}`, used: 2, handler: "support", mode: "tools_first", by: "rule", rule: 1, deny: -1},
		{name: "a session at its limit: the classifier is not asked", req: `{"intent":"chat"}`, used: 2, clf: &fakeClassifier{handler: "support", conf: "0.9"},
			handler: "default", mode: "tools_first", by: "default", rule: -1, deny: -1, classifierOutcome: "limit_reached"},
		{name: "no session: no limit", req: `{"intent":"deploy"}`, used: -1, handler: "deployer", mode: "llm_assisted", by: "rule", rule: 0, deny: -1, llmCalls: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := decode(t, tc.req)
			var clf Classifier
			if tc.clf != nil {
				clf = tc.clf
			}
			d, err := p.Decide(context.Background(), req, tc.used, clf)
			require.NoError(t, err)
			require.Equal(t, tc.by, d.By, d.Reason)
			require.Equal(t, tc.denied, d.Denied, d.Reason)
			if !tc.denied || tc.by == "limit" {
				require.Equal(t, tc.handler, d.Handler)
				require.Equal(t, tc.mode, d.Mode)
			}
			if tc.rule >= 0 {
				require.NotNil(t, d.Rule)
				require.Equal(t, tc.rule, d.Rule.Index)
				require.True(t, strings.HasPrefix(d.Rule.ExprSHA256, "sha256:"))
			} else {
				require.Nil(t, d.Rule)
			}
			if tc.deny >= 0 {
				require.NotNil(t, d.Deny)
				require.Equal(t, tc.deny, d.Deny.Index)
				require.Error(t, d.Refusal())
			} else {
				require.Nil(t, d.Deny)
			}
			require.Equal(t, tc.llmCalls, d.LLMCalls)
			if tc.classifierOutcome != "" {
				require.NotNil(t, d.Classifier)
				require.Equal(t, tc.classifierOutcome, d.Classifier.Outcome)
				require.Equal(t, "0.8", d.Classifier.Threshold)
			}
			if tc.clf != nil {
				require.Equal(t, tc.clfCalls, tc.clf.calls)
			}
			if tc.reason != "" {
				require.Contains(t, d.Reason, tc.reason)
			}
			if tc.denied {
				var e *Error
				require.ErrorAs(t, d.Refusal(), &e)
				want := "ROUTE_DENIED"
				if tc.by == "limit" {
					want = "ROUTE_LIMIT_EXCEEDED"
				}
				require.Equal(t, want, e.Code())
			} else {
				require.NoError(t, d.Refusal())
			}
		})
	}
}

// TestDecidePromptsUsed: the classifier's pack when it was asked, then the
// target's.
func TestDecidePromptsUsed(t *testing.T) {
	p := compile(t, fullPolicy)
	d, err := p.Decide(context.Background(), decode(t, `{"intent":"deploy"}`), -1, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"PRM-DEPLOY"}, d.PromptsUsed())
	d, err = p.Decide(context.Background(), decode(t, `{"intent":"chat"}`), -1, &fakeClassifier{handler: "support", conf: "0.9"})
	require.NoError(t, err)
	require.Equal(t, []string{"PRM-ROUTER"}, d.PromptsUsed())
}

// TestThresholdDefault: a classifier without a threshold uses 0.8.
func TestThresholdDefault(t *testing.T) {
	p := compile(t, `{"classifier":{"prompt_pack_id":"PRM-R"},"default_route":{"handler":"default","mode":"tools_first"}}`)
	for conf, want := range map[Confidence]string{"0.8": "support", "0.79": "default", "0.81": "support", "0": "default"} {
		d, err := p.Decide(context.Background(), map[string]any{}, -1, &fakeClassifier{handler: "support", conf: conf})
		require.NoError(t, err)
		require.Equal(t, want, d.Handler, "confidence %s", conf)
	}
	p = compile(t, `{"classifier":{"prompt_pack_id":"PRM-R","threshold":0.5},"default_route":{"handler":"default","mode":"tools_first"}}`)
	d, err := p.Decide(context.Background(), map[string]any{}, -1, &fakeClassifier{handler: "support", conf: "0.5"})
	require.NoError(t, err)
	require.Equal(t, "support", d.Handler)
}

// TestForbiddenBuiltins: an expression that reads outside the request is
// refused when the policy is loaded, wherever it hides.
func TestForbiddenBuiltins(t *testing.T) {
	for _, expr := range []string{
		`now > 0`, `env.HOME == "x"`, `$ENV.HOME == "x"`, `input == 1`, `[inputs] == []`, `debug == 1`,
		`stderr == 1`, `halt`, `halt_error`, `halt_error(1)`, `input_filename == null`, `$__loc__.line == 1`,
		`(now | localtime | mktime) > 0`, `(0 | strflocaltime("%H")) == "1"`, `(builtins | length) > 0`,
		`def f: now; f > 0`, `{(now | tostring): 1} | length == 1`, `"\(now)" == ""`, `[.[] | select(now > 0)] == []`,
		`reduce range(3) as $x (0; . + now) > 0`, `try now catch false`, `if now > 0 then true else false end`,
		`.a as $x | $ENV | length > 0`, `input_line_number == 0`, `modulemeta == null`, `get_search_list == []`,
	} {
		t.Run(expr, func(t *testing.T) {
			policy := fmt.Sprintf(`{"routes":[{"when":%q,"handler":"support","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`, expr)
			_, err := Compile([]byte(policy), testHandlers)
			requireCode(t, err, "ROUTE_POLICY_INVALID")
			require.Contains(t, err.Error(), "routes/0/when")
		})
	}
	for _, expr := range []string{`import "a" as a; true`, `include "x"; true`} {
		_, err := Compile([]byte(fmt.Sprintf(`{"deny":[{"when":%q,"reason":"r"}],"default_route":{"handler":"default","mode":"tools_first"}}`, expr)), nil)
		requireCode(t, err, "ROUTE_POLICY_INVALID")
	}
	// Deterministic time functions over the request are fine.
	compile(t, `{"routes":[{"when":"(.ts // 0 | todate | length) > 0 and (.ts // 0 | gmtime | mktime) >= 0","handler":"support","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`)
}

// TestCompileRefusals: what a policy is refused for at load.
func TestCompileRefusals(t *testing.T) {
	cases := []struct{ name, policy, code, says string }{
		{"not JSON", `{`, "ROUTE_POLICY_INVALID", "not JSON"},
		{"no default route", `{"routes":[]}`, "ROUTE_POLICY_INVALID", "default_route"},
		{"an expression that does not parse", `{"routes":[{"when":".a ==","handler":"support","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`, "ROUTE_POLICY_INVALID", "does not parse"},
		{"an unknown function", `{"routes":[{"when":"nosuch(1)","handler":"support","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`, "ROUTE_POLICY_INVALID", "does not compile"},
		{"an unknown handler", `{"routes":[{"when":"true","handler":"ghost","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`, "ROUTE_HANDLER_UNKNOWN", `handler "ghost"`},
		{"an unknown default handler", `{"default_route":{"handler":"ghost","mode":"tools_first"}}`, "ROUTE_HANDLER_UNKNOWN", "default_route"},
		{"a capability the handler lacks", `{"routes":[{"when":"true","handler":"support","mode":"tools_first","required_capabilities":["deploy"]}],"default_route":{"handler":"default","mode":"tools_first"}}`, "ROUTE_CAPABILITY_MISSING", `"deploy"`},
		{"a capability the built-in default lacks", `{"routes":[{"when":"true","handler":"default","mode":"tools_first","required_capabilities":["x"]}],"default_route":{"handler":"default","mode":"tools_first"}}`, "ROUTE_CAPABILITY_MISSING", "built in"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]byte(tc.policy), testHandlers)
			requireCode(t, err, tc.code)
			require.Contains(t, err.Error(), tc.says)
		})
	}
	// Without handlers (a replay), handlers are not judged.
	_, err := Compile([]byte(`{"routes":[{"when":"true","handler":"ghost","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`), nil)
	require.NoError(t, err)
}

// TestEvalBounded: a looping or exploding expression is stopped by its
// deadline; one that answers other than a boolean is an error.
func TestEvalBounded(t *testing.T) {
	defer func(d time.Duration) { EvalTimeout = d }(EvalTimeout)
	EvalTimeout = 50 * time.Millisecond
	for _, expr := range []string{`def f: f; f`, `[range(1e9)] | length > 0`, `last(range(1e12)) > 0`, `[limit(1e12; repeat(1))] | length > 0`} {
		t.Run(expr, func(t *testing.T) {
			p := compile(t, fmt.Sprintf(`{"routes":[{"when":%q,"handler":"support","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`, expr))
			start := time.Now()
			_, err := p.Decide(context.Background(), map[string]any{}, -1, nil)
			requireCode(t, err, "ROUTE_EXPR_TIMEOUT")
			require.Less(t, time.Since(start), 5*time.Second)
		})
	}
	for expr, says := range map[string]string{`.intent`: "a string", `empty`: "no value", `error("boom")`: "boom", `.a.b.c`: "expected an object", `.x + 1`: "cannot add"} {
		t.Run(expr, func(t *testing.T) {
			p := compile(t, fmt.Sprintf(`{"deny":[{"when":%q,"reason":"r"}],"default_route":{"handler":"default","mode":"tools_first"}}`, expr))
			_, err := p.Decide(context.Background(), map[string]any{"intent": "x", "x": "s", "a": "str"}, -1, nil)
			requireCode(t, err, "ROUTE_EXPR_ERROR")
			require.Contains(t, err.Error(), says)
		})
	}
	// A cancelled context is a cancellation, not a timeout.
	p := compile(t, `{"routes":[{"when":"def f: f; f","handler":"support","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Decide(ctx, map[string]any{}, -1, nil)
	require.ErrorIs(t, err, context.Canceled)
}

// TestParseCapabilities: the handlers a capabilities.json declares.
func TestParseCapabilities(t *testing.T) {
	hs, err := ParseCapabilities("modules/x/capabilities.json", "PKG-X-001",
		[]byte(`{"agent_id":"x","package_id":"PKG-X-001","tools":[],"handlers":[{"handler":"deployer","capabilities":["rollback","deploy","deploy"]}],"extra":1}`))
	require.NoError(t, err)
	require.Equal(t, []Handler{{Name: "deployer", PackageID: "PKG-X-001", Path: "modules/x/capabilities.json", Capabilities: []string{"deploy", "rollback"}}}, hs)
	for doc, says := range map[string]string{
		`[]`:                                    "want object",
		`{"handlers":[{"handler":"Bad Name"}]}`: "handlers/0/handler",
		`{"handlers":[{"handler":"a","extra":1}]}`:       "handlers/0",
		`{"handlers":[{"handler":"a"},{"handler":"a"}]}`: "twice",
		`{"package_id":"PKG-OTHER-001"}`:                 "PKG-OTHER-001",
		`{} {}`:                                          "more than one",
	} {
		_, err := ParseCapabilities("modules/x/capabilities.json", "PKG-X-001", []byte(doc))
		requireCode(t, err, "CAPABILITIES_INVALID")
		require.Contains(t, err.Error(), says, doc)
	}
	require.True(t, IsCapabilitiesPath("modules/x/capabilities.json"))
	for _, p := range []string{"modules/capabilities.json", "modules/x/y/capabilities.json", "lib/x/capabilities.json", "modules//capabilities.json"} {
		require.False(t, IsCapabilitiesPath(p), p)
	}
}

func requireCode(t *testing.T, err error, code string) {
	t.Helper()
	require.Error(t, err)
	var c interface{ Code() string }
	require.ErrorAs(t, err, &c, "%v", err)
	require.Equal(t, code, c.Code(), "%v", err)
}

// askedFake is a classifier already asked (route.AskedClassifier).
type askedFake struct {
	fakeClassifier
	asked bool
}

func (a *askedFake) Asked() bool { return a.asked }

// TestAskedClassifierPastLimit: a classifier whose call was made before
// the session's count was read again (cp-route asks it before it takes
// the ledger's lock) is the decision's even when that count has since
// reached the limit, and the call is counted; one not asked is not asked
// past the limit.
func TestAskedClassifierPastLimit(t *testing.T) {
	p := compile(t, fullPolicy)
	req := map[string]any{"intent": "chat"}
	a := &askedFake{fakeClassifier: fakeClassifier{handler: "support", conf: "0.9"}, asked: true}
	d, err := p.Decide(context.Background(), req, 2, a)
	require.NoError(t, err)
	require.Equal(t, "classifier", d.By)
	require.Equal(t, "accepted", d.Classifier.Outcome)
	require.Equal(t, int64(1), d.LLMCalls, "the call made is counted")
	require.Equal(t, 1, a.calls)

	a = &askedFake{fakeClassifier: fakeClassifier{handler: "support", conf: "0.9"}}
	d, err = p.Decide(context.Background(), req, 2, a)
	require.NoError(t, err)
	require.Equal(t, "limit_reached", d.Classifier.Outcome)
	require.Equal(t, int64(0), d.LLMCalls)
	require.Zero(t, a.calls, "not asked past the limit")
}
