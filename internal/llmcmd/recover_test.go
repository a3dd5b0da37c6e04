package llmcmd

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/llm"
	"github.com/control-plane/cp/internal/schematest"
)

// TestRecoverHiddenReadShown: a hidden read recover found (a reservation
// made against a work order's sums below the ledger's) is in its JSON
// result, as the response schema has it, and leads its text view, never
// only a warning on stderr beside a clean result.
func TestRecoverHiddenReadShown(t *testing.T) {
	r := &llm.RecoverResult{Settled: []*llm.Settled{}, HiddenReads: []*llm.HiddenRead{{WorkOrderID: "WO-20260101-001",
		ReservationID: "RSV-00000000000000e1", ReservedSeq: 9, Believed: llm.Spend{Calls: 1, Tokens: 100, MicroUSD: 10},
		Ledger: llm.Spend{Calls: 4, Tokens: 400, MicroUSD: 40}}}}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var v any
	require.NoError(t, json.Unmarshal(b, &v))
	s, err := schematest.Oracle("cp-llm.recover.response.json")
	require.NoError(t, err)
	require.NoError(t, s.Validate(v), "%s", b)
	require.Contains(t, string(b), `"hidden_reads":[{"work_order_id":"WO-20260101-001"`)
	var text bytes.Buffer
	require.NoError(t, recoverText(&text, r))
	require.True(t, bytes.HasPrefix(text.Bytes(), []byte("FOUND: work order WO-20260101-001: reservation RSV-00000000000000e1 (HO2 seq 9)")), text.String())
}
