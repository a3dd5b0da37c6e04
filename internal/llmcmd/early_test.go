package llmcmd

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/llm"
	"github.com/control-plane/cp/internal/llm/llmtest"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/internal/plane"
)

// A call is started while its reservation is appended, but nothing of it
// reaches the provider before the reservation is in the ledger: when the
// server sees the request, LLM_RESERVED is there; the call then ends
// (cancelled by its caller) and is settled.
func TestReservationBeforeRequest(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	p := newPlane(t)
	p.provide(srv.ProvidersJSON(""))
	srv.Hang(true)
	g := &llm.Gateway{Root: p.root, Actor: plane.Actor{Name: "tester", AuthOff: true}, Options: llm.Options{Getenv: os.Getenv}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := g.Complete(ctx, &llm.Call{Subject: "tester", ProviderID: "local-openai",
			Request: provider.Request{Prompt: "say hi", MaxTokens: 64}})
		done <- err
	}()
	select {
	case <-srv.Arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the call never reached the provider")
	}
	rs := p.entries(llm.EventReserved)
	require.Len(t, rs, 1, "the reservation is in the ledger before the provider sees the call")
	cancel()
	err := <-done
	var ce *llm.CallError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "CANCELLED", ce.Code())
	calls := p.entries(llm.EventCall)
	require.Len(t, calls, 1)
	require.Equal(t, rs[0].Metadata["reservation_id"], calls[0].Metadata["reservation_id"])
}

// A reservation whose append fails (here: the stored checkpoint is not
// the plane's) leaves its call, already started, unsent: the provider
// sees nothing, the ledger holds nothing new.
func TestReservationFailedNothingSent(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	p := newPlane(t)
	p.provide(srv.ProvidersJSON(""))
	g := &llm.Gateway{Root: p.root, Actor: plane.Actor{Name: "tester", AuthOff: true}, Options: llm.Options{Getenv: os.Getenv}}
	call := func() error {
		_, err := g.Complete(context.Background(), &llm.Call{Subject: "tester", ProviderID: "local-openai",
			Request: provider.Request{Prompt: "say hi", MaxTokens: 64}})
		return err
	}
	require.NoError(t, call())
	require.Equal(t, 1, srv.Calls())

	ckpt := filepath.Join(llm.BudgetLedgerDir(p.root), "ledger", "workorder.checkpoint")
	b, err := os.ReadFile(ckpt)
	require.NoError(t, err)
	b[len(b)-20] ^= 1 // the signature no longer holds
	require.NoError(t, os.WriteFile(ckpt, b, 0o644))
	g = &llm.Gateway{Root: p.root, Actor: plane.Actor{Name: "tester", AuthOff: true}, Options: llm.Options{Getenv: os.Getenv}}
	err = call()
	var coded interface{ Code() string }
	require.ErrorAs(t, err, &coded)
	require.Equal(t, "CHECKPOINT_INVALID", coded.Code(), "%v", err)
	time.Sleep(50 * time.Millisecond) // a request sent anyway would have arrived
	require.Equal(t, 1, srv.Calls(), "nothing of the unreserved call reached the provider")
	require.Len(t, p.entries(llm.EventReserved), 1)
}
