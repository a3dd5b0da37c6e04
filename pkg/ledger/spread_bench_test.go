package ledger

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// BenchmarkBuild encodes a group commit of 4,096 entries spread over the
// cores, and the same entries one by one (in batches of spreadFrom-1, which
// build encodes in order), in the same run: small entries (cp-ledger
// append's ~300 bytes, which build keeps in order whatever the batch:
// spreadLine) and large ones (cp-route's ~1 KB decisions).
func BenchmarkBuild(b *testing.B) {
	small := make([]Draft, 4096)
	large := make([]Draft, 4096)
	for i := range small {
		small[i] = Draft{EventType: "TOOL_CALL", SubmissionID: fmt.Sprintf("WO-20261124-%06d", i), Decision: "ALLOW", Reason: "within scope",
			Metadata: map[string]any{"tool": "bash", "n": i}}
		m := map[string]any{"_session_id": "SES-20261206-0a1b2c3d", "_tier": "HO3", "by": "rule", "handler": "default", "limit": 1000000,
			"llm_calls": 0, "mode": "tools_first", "policy_sha256": "sha256:" + strings.Repeat("0d", 32), "policy_source": "PKG-CONFIG-001",
			"prompt_pack_id": "PRM-BILL", "request_sha256": "sha256:" + strings.Repeat("27", 32), "session_llm_calls": i,
			"request": map[string]any{"intent": "chat", "tags": []any{"billing"}, "user": "u49", "variables": map[string]any{"n": i}},
			"rule":    map[string]any{"expr_sha256": "sha256:" + strings.Repeat("67", 32), "index": 2, "name": "billing"}}
		large[i] = Draft{EventType: "ROUTE_DECISION", SubmissionID: "SES-20261206-0a1b2c3d", Decision: "ROUTED", Reason: "rule 2 (billing) matched",
			PromptsUsed: []string{"PRM-BILL"}, Metadata: m}
	}
	for _, c := range []struct {
		name   string
		drafts []Draft
	}{{"small", small}, {"large", large}} {
		for _, spread := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/spread=%v", c.name, spread), func(b *testing.B) {
				opts := Options{Actor: "root"}
				for range b.N {
					var f [64]tlog.Hash
					if spread {
						build(getBuf(0), nil, &f, 0, "", 0, c.drafts, opts)
					} else { // build's own loop, for a batch below spreadFrom
						for i := 0; i < len(c.drafts); i += spreadFrom - 1 {
							buf, _, _, _, _ := build(getBuf(0), nil, &f, int64(i), "", 0, c.drafts[i:min(i+spreadFrom-1, len(c.drafts))], opts)
							putBuf(buf)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(c.drafts)), "ns/entry")
			})
		}
	}
}
