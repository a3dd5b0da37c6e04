package routecmd

import (
	"testing"

	"github.com/control-plane/cp/internal/route"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/stretchr/testify/require"
)

// TestEvidenceCanonical holds the hand-written evidence.route and the
// once-encoded rule references to what canonical JSON of the plain values
// gives: the bytes a decision answers and records do not depend on the
// shortcut.
func TestEvidenceCanonical(t *testing.T) {
	rule := &route.RuleRef{Index: 1, Name: "deploy \"x\"", ExprSHA256: "sha256:ab"}
	raw, err := jcs.MarshalRaw(ruleMeta(rule))
	require.NoError(t, err)
	cases := []route.Decision{
		{By: "rule", Handler: "h", Mode: "tools_first", Rule: rule, Reason: "rule 1 (deploy) matched"},
		{By: "deny", Denied: true, Deny: &route.DenyRef{Index: 0, Reason: "no <é>", ExprSHA256: "sha256:cd"}, Reason: "deny rule 0: no"},
		{By: "classifier", Handler: "h", Mode: "tools_first", Reason: "classified\n", LLMCalls: 1,
			Classifier: &route.Classification{PromptPackID: "PRM-R", Called: true, Handler: "h", Confidence: "0.9", Threshold: "0.8", Outcome: "accepted",
				Evidence: map[string]any{"llm_call_seq": int64(4), "model": "m"}}},
		{By: "default", Handler: "default", Mode: "tools_first", Reason: "no rule"},
	}
	for _, d := range cases {
		plain := decisionMeta(d, map[string]any{}, nil)
		fast := decisionMeta(d, map[string]any{}, []jcs.Raw{{}, raw})
		pb, err := jcs.Marshal(plain)
		require.NoError(t, err)
		fb, err := jcs.Marshal(fast)
		require.NoError(t, err)
		require.Equal(t, string(pb), string(fb), "metadata of %s", d.By)

		ev := map[string]any{"by": d.By, "reason": d.Reason, "policy_sha256": "sha256:p", "request_sha256": "sha256:r"}
		for _, k := range []string{"rule", "deny", "classifier"} {
			if v, ok := plain[k]; ok {
				ev[k] = v
			}
		}
		want, err := jcs.Marshal(ev)
		require.NoError(t, err)
		got, err := evidenceJSON(d, decisionRefs(d, []jcs.Raw{{}, raw}), "sha256:p", "sha256:r")
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), "evidence of %s", d.By)
	}
}
