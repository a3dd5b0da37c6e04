package routecmd

import (
	"fmt"
	"testing"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/route"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
)

// TestDraftCanonical holds a decision's metadata in canonical form (what
// the ledger writes as it is: ledger.Draft.Canonical) to the canonical
// JSON of its metadata map, for every kind of decision, with and without
// a session (and so the limit), a work order, the auth stamp, a large
// request kept under blobs/: the entry's bytes do not depend on the
// shortcut.
func TestDraftCanonical(t *testing.T) {
	for _, limits := range []string{``, `"limits": {"llm_calls_per_session": 7},`} {
		p, err := route.Compile([]byte(`{"routes": [{"name": "deploy \"x\" é", "when": ".intent == \"deploy\"", "handler": "default", "mode": "llm_assisted", "prompt_pack_id": "PRM-D"}],
  "deny": [{"when": ".user == \"mallory\"", "reason": "blocked <é>\n"}], `+limits+`
  "default_route": {"handler": "default", "mode": "tools_first"}}`), nil)
		require.NoError(t, err)
		r := &router{root: t.TempDir(), policy: p, src: config.Source{Package: "PKG-CONFIG-001"}}
		r.rules = make([]jcs.Raw, len(p.Doc.Routes))
		for i := range r.rules {
			ref := p.Rule(i)
			r.rules[i], err = jcs.MarshalRaw(ruleMeta(&ref))
			require.NoError(t, err)
		}
		rule := p.Rule(0)
		decisions := []route.Decision{
			{By: "rule", Handler: "default", Mode: "llm_assisted", PromptPackID: "PRM-D", Rule: &rule, LLMCalls: 1, Reason: "rule 0 matched"},
			{By: "rule", Handler: "default", Mode: "tools_first", Rule: &route.RuleRef{Index: 9, ExprSHA256: "sha256:zz"}, Reason: "a rule of another policy"},
			{By: "deny", Denied: true, Deny: &route.DenyRef{Index: 0, Reason: "blocked <é>\n", ExprSHA256: "sha256:cd"}, Reason: "deny rule 0: blocked"},
			{By: "classifier", Handler: "default", Mode: "tools_first", Reason: "classified", LLMCalls: 1,
				Classifier: &route.Classification{PromptPackID: "PRM-R", Called: true, Handler: "default", Confidence: "0.9", Threshold: "0.8", Outcome: "accepted",
					Evidence: map[string]any{"llm_call_seq": int64(4), "model": "m"}, Error: "x"}},
			{By: "default", Handler: "default", Mode: "tools_first", Reason: "no rule"},
		}
		big := map[string]any{"intent": "chat", "text": string(make([]byte, maxInlineRequest))}
		for _, req := range []map[string]any{
			{"intent": "deploy", "variables": map[string]any{"service": "api"}},
			{"intent": "deploy", "session_id": "SES-20261206-0a1b2c3d", "work_order_id": "WO-20261206-001"},
			{"intent": "x", "session_id": "SES-20261206-0a1b2c3d"},
			big,
		} {
			for _, authOff := range []bool{false, true} {
				for _, d := range decisions {
					t.Run(fmt.Sprintf("%s/%d/%v/%v", d.By, len(req), authOff, limits != ""), func(t *testing.T) {
						canon, err := jcs.MarshalRaw(req)
						require.NoError(t, err)
						pre := prepared{m: req, canon: canon, hash: "sha256:feed"}
						l := &tierLedger{tier: plane.Tier{Tier: "HO2"}, authOff: authOff}
						draft, _, o, err := r.draft(l, req, pre, d, "")
						require.NoError(t, err)
						full := wantMeta(r, l, req, pre, d)
						if req["session_id"] != nil && p.Limit() >= 0 {
							full["session_llm_calls"] = int64(3)
							o.AddInt("session_llm_calls", 3)
						}
						raw, err := o.Raw()
						require.NoError(t, err)
						want, err := jcs.Marshal(full)
						require.NoError(t, err)
						require.Equal(t, string(want), string(raw.Bytes()))
						// The map the ledger reads: the auth stamp and every
						// key the index finds entries by, as in the whole.
						read := map[string]any{}
						for k, v := range full {
							if k == "_auth" || ledger.IndexedKey(k) {
								read[k] = v
							}
						}
						require.Equal(t, read, draft.Metadata)
					})
				}
			}
		}
	}
}

// wantMeta is a decision's whole metadata as a map: what draft's canonical
// form must encode (draft built both until session 30).
func wantMeta(r *router, l *tierLedger, req map[string]any, pre prepared, d route.Decision) map[string]any {
	meta := decisionMeta(d, map[string]any{}, r.rules)
	meta["policy_sha256"] = r.policy.SHA256
	meta["policy_source"] = sourceName(r.src)
	meta["request_sha256"] = pre.hash
	if len(pre.canon.Bytes()) <= maxInlineRequest {
		meta["request"] = pre.canon
	} else {
		meta["request_blob"] = pre.hash
	}
	meta["_tier"] = l.tier.Tier
	if l.authOff {
		meta["_auth"] = "off"
	}
	session, _ := req["session_id"].(string)
	if session != "" {
		meta["_session_id"] = session
	}
	if wo, _ := req["work_order_id"].(string); wo != "" {
		meta["_work_order_id"] = wo
	}
	if session != "" && r.policy.Limit() >= 0 {
		meta["limit"] = r.policy.Limit()
	}
	return meta
}
