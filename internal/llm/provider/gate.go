package provider

import (
	"context"
	"errors"
	"net/http"
	"sync"
)

// A Gate holds a call's HTTP requests back until the call may reach its
// server: the gateway starts a call (the SDK builds and encodes its
// request: a cold process's first call spends a few hundred microseconds
// there) while its budget reservation is still being made durable, and
// opens the gate only once it is (Open), or fails it (Fail): then no
// request of the call is ever sent. The gate is at the transport
// (Gated): nothing of the call leaves the process, not even a connection,
// before it opens.
type Gate struct {
	ch   chan struct{}
	once sync.Once
	err  error
}

// NewGate returns a closed gate.
func NewGate() *Gate { return &Gate{ch: make(chan struct{})} }

// Open lets the call's requests through.
func (g *Gate) Open() { g.once.Do(func() { close(g.ch) }) }

// Fail refuses every request of the call with err (nil: ErrGateFailed);
// the caller also ends the call's context, so that no retry waits.
func (g *Gate) Fail(err error) {
	if err == nil {
		err = ErrGateFailed
	}
	g.once.Do(func() {
		g.err = err
		close(g.ch)
	})
}

// ErrGateFailed is what a request held by a gate that failed without an
// error of its own answers.
var ErrGateFailed = errors.New("the call was not allowed to reach its server")

type gateKey struct{}

// WithGate returns ctx carrying g: the requests made with it wait for g.
func WithGate(ctx context.Context, g *Gate) context.Context {
	return context.WithValue(ctx, gateKey{}, g)
}

// Gated returns rt (nil: http.DefaultTransport) holding each request whose
// context carries a Gate until that gate opens; a request without one
// goes through at once.
func Gated(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return gated{rt}
}

type gated struct{ rt http.RoundTripper }

func (t gated) RoundTrip(req *http.Request) (*http.Response, error) {
	if g, ok := req.Context().Value(gateKey{}).(*Gate); ok {
		select {
		case <-g.ch:
		case <-req.Context().Done():
			closeBody(req)
			return nil, req.Context().Err()
		}
		if g.err != nil {
			closeBody(req)
			return nil, g.err
		}
	}
	return t.rt.RoundTrip(req)
}

// closeBody closes a request a RoundTripper does not send, as its
// contract asks.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
