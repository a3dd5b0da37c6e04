package auth

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const fivePolicies = `
@id("no-deploy-after-hours")
forbid (principal, action == Action::"append", resource)
when { principal.role == "worker" && context.event_type == "DEPLOY" && context.hour_utc >= 18 };

@id("mallory-no-llm")
forbid (principal == User::"mallory", action == Action::"llm", resource);

@id("no-weekend-installs")
forbid (principal, action == Action::"install", resource)
when { context.weekday == "Sat" || context.weekday == "Sun" };

@id("no-curl")
forbid (principal, action == Action::"shell", resource)
when { resource == Resource::"curl" };

@id("readers-no-ho1")
forbid (principal, action == Action::"read", resource == Tier::"ho1")
when { principal.role == "reader" && principal.tiers.contains("ho1") };
`

func worker() *Claims { return claimsFor(RoleWorker, []string{"ho1"}) }

func TestPolicyForbids(t *testing.T) {
	p := ParsePolicy([]byte(fivePolicies))
	require.NoError(t, p.Invalid())
	evening := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC) // a Monday
	morning := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	deploy := Access{Action: ActionAppend, Tier: "ho1", Session: "SES-20261206-00000001", EventType: "DEPLOY"}
	err := p.Evaluate(Request{Claims: worker(), Access: deploy, Now: evening})
	requireCode(t, err, CodeDenied)
	require.ErrorContains(t, err, `no-deploy-after-hours`)
	require.Equal(t, "no-deploy-after-hours (line 2)", err.(*Error).Policy)
	require.NoError(t, p.Evaluate(Request{Claims: worker(), Access: deploy, Now: morning}))
	// The event type as the catalogue compares it: another case or a space
	// does not evade the forbid.
	for _, et := range []string{"deploy", "Deploy", " DEPLOY", "DEPLOY\t"} {
		evade := deploy
		evade.EventType = et
		requireCode(t, p.Evaluate(Request{Claims: worker(), Access: evade, Now: evening}), CodeDenied)
	}
	require.NoError(t, p.Evaluate(Request{Claims: claimsFor(RoleAdmin, all3), Access: deploy, Now: evening}))
	m := claimsFor(RoleWorker, []string{"ho1"})
	m.Subject = "mallory"
	requireCode(t, p.Evaluate(Request{Claims: m, Access: Access{Action: ActionLLM}, Now: morning}), CodeDenied)
	requireCode(t, p.Evaluate(Request{Claims: worker(), Access: Access{Action: "shell"}, Resource: "curl", Now: morning}), CodeDenied)
	require.NoError(t, p.Evaluate(Request{Claims: worker(), Access: Access{Action: "shell"}, Resource: "ls", Now: morning}))
}

func TestPolicyPermitRefused(t *testing.T) {
	p := ParsePolicy([]byte(`@id("widen") permit (principal, action, resource);`))
	requireCode(t, p.Invalid(), CodePolicy)
	require.ErrorContains(t, p.Invalid(), "widen")
	require.ErrorContains(t, p.Invalid(), "permit")
	requireCode(t, p.Evaluate(Request{Claims: worker(), Access: Access{Action: ActionAppend, Tier: "ho1"}}), CodePolicy)
	require.NoError(t, p.Evaluate(Request{Claims: worker(), Access: Access{Action: ActionRead, Tier: "ho1"}}))
}

func TestPolicyParseErrorRefusesMutating(t *testing.T) {
	p := ParsePolicy([]byte(`forbid (principal, action, resource) when { `))
	requireCode(t, p.Invalid(), CodePolicy)
	for _, act := range Actions {
		err := p.Evaluate(Request{Claims: claimsFor(RoleAdmin, all3), Access: Access{Action: act, Tier: "ho3"}})
		if act == ActionRead {
			require.NoError(t, err)
			continue
		}
		requireCode(t, err, CodePolicy)
	}
	// A tool-call check is refused too: it decides an agent's action.
	requireCode(t, p.Evaluate(Request{Claims: worker(), Access: Access{Action: ActionRead}, Resource: "x"}), CodePolicy)
}

func TestPolicyErroringForbidDenies(t *testing.T) {
	// context.request.n does not exist: the forbid errors, and so forbids.
	p := ParsePolicy([]byte(`@id("needs-n") forbid (principal, action, resource) when { context.request.n > 3 };`))
	require.NoError(t, p.Invalid())
	err := p.Evaluate(Request{Claims: worker(), Access: Access{Action: ActionRead}, Resource: "r", Context: map[string]any{}})
	requireCode(t, err, CodeDenied)
	require.ErrorContains(t, err, "could not be evaluated")
	require.NoError(t, p.Evaluate(Request{Claims: worker(), Access: Access{Action: ActionRead}, Resource: "r", Context: map[string]any{"n": 1.0}}))
	requireCode(t, p.Evaluate(Request{Claims: worker(), Access: Access{Action: ActionRead}, Resource: "r", Context: map[string]any{"n": 5.0}}), CodeDenied)
}

func TestPolicyNilAllows(t *testing.T) {
	var p *Policy
	require.NoError(t, p.Invalid())
	require.NoError(t, p.Evaluate(Request{Access: Access{Action: ActionInstall}}))
}

// BenchmarkAuthorize is one decision in-process: the table, then five
// Cedar forbid policies, then the tier directory's access(2). Target:
// under 20 µs.
func BenchmarkAuthorize(b *testing.B) {
	g := NewGuard(Config{Now: func() time.Time { return time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC) }})
	root := b.TempDir() // a real tier directory: the decision ends by asking whether it is writable
	if err := os.MkdirAll(filepath.Join(root, "planes", "ho1"), 0o755); err != nil {
		b.Fatal(err)
	}
	g.policy[root] = ParsePolicy([]byte(fivePolicies))
	id := Identity{Subject: "w", Auth: AuthToken, Claims: worker()}
	a := Access{Root: root, Action: ActionAppend, Tier: "ho1", Session: "SES-20261206-00000001", EventType: "NOTE", Tool: "cp-ledger", Verb: "append"}
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Authorize(context.Background(), id, a); err != nil {
			b.Fatal(err)
		}
	}
}
