package llm

import (
	"encoding/json"
	"testing"

	"github.com/control-plane/cp/pkg/ledger"
)

func entry(et string, meta map[string]any) *ledger.Entry {
	return &ledger.Entry{EventType: et, Metadata: meta}
}

// What a budget sums: a settled reservation counts what its LLM_CALL
// charged (a not_called one nothing); one never settled counts in full;
// an LLM_CALL without its reservation still counts what it charged.
func TestLedgerSpend(t *testing.T) {
	ls := newLedgerSpend()
	ls.add(entry(EventReserved, map[string]any{"reservation_id": "RSV-1", "max_tokens_total": json.Number("1000"), "max_cost_micro_usd": json.Number("500"), "session_id": "S1", "provider_id": "p", "subject": "a"}))
	ls.add(entry(EventCall, map[string]any{"reservation_id": "RSV-1", "status": "ok", "gen_ai.usage.input_tokens": json.Number("30"), "gen_ai.usage.output_tokens": json.Number("20"), "cost_micro_usd": json.Number("7")}))
	ls.add(entry(EventReserved, map[string]any{"reservation_id": "RSV-2", "max_tokens_total": int64(900), "max_cost_micro_usd": int64(400), "session_id": "S2", "provider_id": "p", "subject": "b"}))
	ls.add(entry(EventReserved, map[string]any{"reservation_id": "RSV-3", "max_tokens_total": int64(100), "max_cost_micro_usd": int64(10), "session_id": "S1", "provider_id": "q", "subject": "a"}))
	ls.add(entry(EventCall, map[string]any{"reservation_id": "RSV-3", "status": StatusNotCalled, "cost_micro_usd": int64(0)}))
	ls.add(entry(EventCall, map[string]any{"reservation_id": "RSV-9", "status": "ok", "cost_micro_usd": int64(99)}))
	ls.add(entry(EventReserved, map[string]any{"max_tokens_total": int64(5)})) // no reservation id: ignored
	if got, want := ls.total(nil), (Spend{Calls: 3, Tokens: 50 + 900, MicroUSD: 7 + 400 + 99}); got != want {
		t.Fatalf("total %+v, want %+v", got, want)
	}
	if got, want := ls.total(func(r *spendRow) bool { return r.session == "S1" }), (Spend{Calls: 1, Tokens: 50, MicroUSD: 7}); got != want {
		t.Fatalf("session S1 %+v, want %+v", got, want)
	}
	b := Budget{Limit: Limit{Calls: ptr(4), Tokens: ptr(2000)}, Spent: ls.total(nil)}
	if k, _, _ := b.over(Spend{Calls: 1, Tokens: 1050}); k != "" {
		t.Fatalf("a call that fits exactly is refused: %s", k)
	}
	if k, _, would := b.over(Spend{Calls: 1, Tokens: 1051}); k != "tokens" || would != 2001 {
		t.Fatalf("over: %s %d", k, would)
	}
	if k, _, _ := b.over(Spend{Calls: 2}); k != "calls" {
		t.Fatalf("calls: %s", k)
	}

	// As the tally folds them: a second LLM_CALL of one reservation adds
	// (a late caller's beside the judge's settlement in full), and a call
	// whose reservation is not found counts in its own session.
	ls = newLedgerSpend()
	ls.add(entry(EventReserved, map[string]any{"reservation_id": "RSV-1", "max_tokens_total": int64(1000), "max_cost_micro_usd": int64(500), "session_id": "S1"}))
	ls.add(entry(EventCall, map[string]any{"reservation_id": "RSV-1", "status": StatusAbandoned, "gen_ai.usage.input_tokens": int64(1000), "cost_micro_usd": int64(500), "session_id": "S1"}))
	ls.add(entry(EventCall, map[string]any{"reservation_id": "RSV-1", "status": "ok", "gen_ai.usage.input_tokens": int64(40), "cost_micro_usd": int64(9), "session_id": "S1"}))
	ls.add(entry(EventCall, map[string]any{"reservation_id": "RSV-8", "status": "ok", "gen_ai.usage.output_tokens": int64(5), "cost_micro_usd": int64(3), "session_id": "S2"}))
	if got, want := ls.total(func(r *spendRow) bool { return r.session == "S1" }), (Spend{Calls: 2, Tokens: 1040, MicroUSD: 509}); got != want {
		t.Fatalf("S1 with a reservation settled twice: %+v, want %+v", got, want)
	}
	if got, want := ls.total(func(r *spendRow) bool { return r.session == "S2" }), (Spend{Calls: 1, Tokens: 5, MicroUSD: 3}); got != want {
		t.Fatalf("S2, a call without its reservation: %+v, want %+v", got, want)
	}
}
