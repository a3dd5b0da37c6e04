package llmcmd

import (
	"context"
	"fmt"
	"io"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/llm"
)

// recoverVerb is cp-llm recover: it settles the plane's abandoned
// reservations (an LLM_RESERVED never settled whose caller is gone,
// killed mid-call), each by one LLM_CALL that charges it in full (status
// abandoned), as the next call that sums it would (llm.Gateway.Recover).
// Reservations still in flight, and those no caller here can judge (made
// on another boot or host), are left as they are and counted: they keep
// counting in full. Idempotent: a second run settles nothing more.
//
// It is the plane's maintenance (action recover: admin and maintainer, at
// HO3); what it appends to HO2's budget ledger is that action's
// consequence. Result {settled: [{reservation_id, reserved_seq,
// work_order_id, session_id, subject, provider_id, cost_micro_usd, tokens,
// ledger_entry_id, seq}], in_flight, unjudged}.
func recoverVerb() *cli.Verb {
	return &cli.Verb{Name: "recover", Schema: "cp-llm.recover.request.json", Action: cli.ActionRecover, Tier: cli.TierHO3,
		Run: recoverRun, Text: recoverText}
}

func recoverRun(ctx context.Context, c *cli.Call, _ cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	g := &llm.Gateway{Root: root, Actor: c.Actor(), Warnf: c.Warnf}
	r, err := g.Recover(ctx)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	out := cli.Outcome{Result: r}
	if n := len(r.Settled); n > 0 {
		out.LedgerEntryID, out.Seq = r.Settled[n-1].LedgerEntryID, r.Settled[n-1].Seq
	}
	return out
}

func recoverText(w io.Writer, result any) error {
	r := result.(*llm.RecoverResult)
	for _, h := range r.HiddenReads {
		fmt.Fprintf(w, "FOUND: %s\n", h)
	}
	for _, s := range r.Settled {
		wo := s.WorkOrderID
		if wo == "" {
			wo = "-"
		}
		fmt.Fprintf(w, "settled %s (LLM_RESERVED seq %d, %s, %s): charged in full, %d micro-USD, %d tokens; LLM_CALL HO2 seq %d\n",
			s.ReservationID, s.ReservedSeq, wo, s.ProviderID, s.CostMicroUSD, s.Tokens, s.Seq)
	}
	_, err := fmt.Fprintf(w, "%d abandoned reservations settled; %d in flight; %d not judged here (another boot or host: they count in full)\n",
		len(r.Settled), r.InFlight, r.Unjudged)
	return err
}
