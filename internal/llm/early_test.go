package llm

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm/llmtest"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/pkg/ledger"
)

// heldStore is a budget ledger whose Append waits for the test: it
// answers err, or appends nothing and returns one entry per draft.
type heldStore struct {
	ledger.Store
	appending chan struct{}
	release   chan error
	appended  [][]ledger.Draft
}

func (s *heldStore) Append(_ context.Context, ds []ledger.Draft) ([]ledger.Entry, error) {
	s.appending <- struct{}{}
	if err := <-s.release; err != nil {
		return nil, err
	}
	s.appended = append(s.appended, ds)
	es := make([]ledger.Entry, len(ds))
	for i, d := range ds {
		es[i] = ledger.Entry{EventType: d.EventType, Metadata: d.Metadata, Seq: int64(i + 1), ID: "LED-test"}
	}
	return es, nil
}

func (s *heldStore) Close() error { return nil }

// earlyGateway is a gateway over srv's providers.json and a prepared call
// of local-openai, with s as its budget ledger.
func earlyGateway(t *testing.T, srv *llmtest.Server) (*Gateway, *prepared, string) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "ledger"), 0o755))
	b := []byte(srv.ProvidersJSON(""))
	require.NoError(t, config.Validate(config.ProvidersPath, b))
	var doc config.ProvidersDoc
	require.NoError(t, json.Unmarshal(b, &doc))
	g := &Gateway{Root: dir, Options: Options{Getenv: os.Getenv}, providers: &doc, loaded: true}
	p, err := g.prepare(context.Background(), &Call{Subject: "tester", ProviderID: "local-openai",
		Request: provider.Request{Prompt: "say hi", MaxTokens: 64}})
	require.NoError(t, err)
	return g, p, dir
}

// The call starts while its reservation is appended, but no request of
// it reaches the provider until the append has returned: while the
// append waits, the server sees nothing; once it returns, the call is
// made and settled.
func TestEarlyCallWaitsForReservation(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	g, p, dir := earlyGateway(t, srv)
	s := &heldStore{appending: make(chan struct{}), release: make(chan error)}
	type out struct {
		rs  []*Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		ps, err := g.reserve(context.Background(), dir, s, []*prepared{p}, nil)
		if err != nil {
			done <- out{err: err}
			return
		}
		rs, err := g.run(context.Background(), s, ps)
		done <- out{rs, err}
	}()
	<-s.appending // the reservation's append
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, 0, srv.Calls(), "nothing reaches the provider before the reservation is durable")
	s.release <- nil
	<-s.appending // the evidence's
	require.Equal(t, 1, srv.Calls())
	s.release <- nil
	o := <-done
	require.NoError(t, o.err)
	require.Len(t, o.rs, 1)
	require.Equal(t, "hello from the local server", o.rs[0].Text)
	require.Equal(t, EventReserved, s.appended[0][0].EventType)
	require.Equal(t, EventCall, s.appended[1][0].EventType)
	require.Equal(t, StatusOK, s.appended[1][0].Metadata["status"])
}

// A reservation whose append fails: the call already started is never
// sent, and the error is the append's.
func TestEarlyCallAbortedWithReservation(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	g, p, dir := earlyGateway(t, srv)
	s := &heldStore{appending: make(chan struct{}), release: make(chan error)}
	failed := errors.New("disk full")
	done := make(chan error, 1)
	go func() {
		_, err := g.reserve(context.Background(), dir, s, []*prepared{p}, nil)
		done <- err
	}()
	<-s.appending
	time.Sleep(50 * time.Millisecond)
	s.release <- failed
	require.ErrorIs(t, <-done, failed)
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, 0, srv.Calls(), "the unreserved call never reached the provider")
	require.Empty(t, s.appended)
}
