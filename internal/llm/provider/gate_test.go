package provider

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Gated holds a request whose context has a gate until it opens, refuses
// it when the gate fails or the context ends, and lets a request without
// one through at once.
func TestGated(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	c := &http.Client{Transport: Gated(nil)}
	get := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
		}
		return err
	}
	require.NoError(t, get(context.Background()))
	require.Equal(t, int64(1), hits.Load())

	g := NewGate()
	done := make(chan error, 1)
	go func() { done <- get(WithGate(context.Background(), g)) }()
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, int64(1), hits.Load(), "held at the gate")
	g.Open()
	require.NoError(t, <-done)
	require.Equal(t, int64(2), hits.Load())

	g = NewGate()
	go func() { done <- get(WithGate(context.Background(), g)) }()
	boom := errors.New("not reserved")
	g.Fail(boom)
	require.ErrorIs(t, <-done, boom)
	g.Open() // after a failure: still failed
	require.ErrorIs(t, get(WithGate(context.Background(), g)), boom)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- get(WithGate(ctx, NewGate())) }()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Equal(t, int64(2), hits.Load(), "nothing sent through a gate that never opened")
}
