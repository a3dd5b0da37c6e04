package llmcmd

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/llm"
	"github.com/control-plane/cp/internal/llm/provider"
)

// want is encoding/json's encoding of r without HTML escaping: what the
// envelope held before answer encoded it by hand.
func wantJSON(t testing.TB, r *llm.Result) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(r))
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func i64(v int64) *int64 { return &v }

// TestAnswerJSON: answer's bytes are encoding/json's, for every field
// present and absent.
func TestAnswerJSON(t *testing.T) {
	for _, r := range []*llm.Result{
		{},
		{Text: "hello <b>&</b> \u2028 \x01 \"q\" \\ é \xff", PromptSHA256: "sha256:a", ResponseSHA256: "sha256:b",
			Usage: provider.Usage{InputTokens: 7, OutputTokens: 5}, CostMicroUSD: 96, ReservedMicroUSD: 2562,
			ReservationID: "RSV-0123456789abcdef", ProviderID: "local", Model: "m", RequestModel: "m",
			FinishReasons: []string{"stop"}, Attempts: []provider.Attempt{{Status: 200}}, DurationMS: 1.988,
			LedgerEntryID: "LED-1", Seq: 44},
		{Text: "x", Output: map[string]any{"a": []any{json.Number("1.50"), "<&>", true, nil}}, SystemSHA256: "sha256:s",
			Usage: provider.Usage{InputTokens: 1, OutputTokens: 2, Estimated: true}, FinishReasons: []string{}, Attempts: []provider.Attempt{},
			PromptPackID: "PRM-A", PromptVersion: "1.0.0", WorkOrderID: "WO-1", SessionID: "SES-1",
			Budgets: []llm.Budget{{Scope: "work_order", Key: "WO-1", Limit: llm.Limit{Calls: i64(3), MicroUSD: i64(0)}, Spent: llm.Spend{Calls: 1, Tokens: 2, MicroUSD: 3}},
				{Scope: "plane", Limit: llm.Limit{Tokens: i64(9)}}},
			Bodies:     map[string]string{"response": "sha256:r", "prompt": "sha256:p", "system": "sha256:y"},
			DurationMS: 1e-7, Seq: 1},
		{Attempts: []provider.Attempt{{Status: 429, Error: "slow down", WaitMS: 1500}, {Status: 200}}, DurationMS: 12345678.25},
		{DurationMS: 3e21},
	} {
		require.Equal(t, wantJSON(t, r), string(answer{r}.AppendJSON(nil)))
	}
}

// FuzzAnswerJSON: any text, model and error strings, any numbers.
func FuzzAnswerJSON(f *testing.F) {
	f.Add("hello", "m", "err", int64(5), 1.5)
	f.Add("\u2028<>&\x00\xff\"", "", "", int64(-1), 1e-9)
	f.Fuzz(func(t *testing.T, text, model, errs string, n int64, d float64) {
		r := &llm.Result{Text: text, Model: model, RequestModel: model, FinishReasons: []string{errs},
			Attempts: []provider.Attempt{{Status: int(n % 600), Error: errs, WaitMS: n}}, Usage: provider.Usage{InputTokens: n},
			Budgets: []llm.Budget{{Scope: errs, Key: text, Limit: llm.Limit{Tokens: &n}}}, Bodies: map[string]string{text: errs},
			PromptPackID: text, DurationMS: d, Seq: n}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if enc.Encode(r) != nil {
			return // NaN or an infinity: never a duration
		}
		require.Equal(t, string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), string(answer{r}.AppendJSON(nil)))
	})
}
