package cli

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Signal handling is installed per request, not per process: os/signal
// parks a thread in the kernel for as long as any handler is installed, and
// starting it costs about 0.3 ms of the 2 ms a one-entry `cp-ledger append`
// may take over a bare process (issue 2).
// So a verb's context is cancelled on SIGINT or SIGTERM from the moment the
// runner calls watchSignals: before any non-stream verb runs, and in a stream
// once a second request arrives. A cancelled stream stops at once, even
// while it waits on stdin: the acknowledged requests stand, the rest are not
// run, and the answer is CANCELLED (exit 4). A one-request stream (one
// append) keeps the default dispositions: a signal ends the process at once,
// and the ledger's crash safety (a torn tail is repaired, an acknowledged
// entry is durable) covers it as it covers kill -9.

type signalKey struct{}

// withSignals returns a context that watchSignals can arrange to cancel on
// SIGINT or SIGTERM, and the function that releases the handler.
func withSignals(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	w := &signalWatch{cancel: cancel}
	return context.WithValue(ctx, signalKey{}, w), func() { w.stop(); cancel() }
}

type signalWatch struct {
	once   sync.Once
	cancel context.CancelFunc
	mu     sync.Mutex
	ch     chan os.Signal // nil until started
}

// signalGrace is how long a verb has, after the first SIGINT or SIGTERM
// cancelled its context, to answer CANCELLED and return. A verb that does
// not (one blocked in a system call that no context reaches) is then ended
// by the signal itself, as if no handler had been installed: the first
// signal always ends the process. The ledger's crash safety and the
// install journal cover an end at any instant, as they cover kill -9.
const signalGrace = 5 * time.Second

// watchSignals starts cancelling ctx on the first SIGINT or SIGTERM, if ctx
// came from withSignals (tests pass their own contexts: no handler). After
// the first signal the default dispositions return, so a second one ends
// the process as usual, and so does the first after signalGrace.
func watchSignals(ctx context.Context) {
	w, _ := ctx.Value(signalKey{}).(*signalWatch)
	if w == nil {
		return
	}
	w.once.Do(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.ch = make(chan os.Signal, 1)
		signal.Notify(w.ch, os.Interrupt, syscall.SIGTERM)
		go func(ch chan os.Signal) {
			sig, ok := <-ch
			if !ok {
				return
			}
			signal.Stop(ch)
			w.cancel()
			// When the verb returns, the process exits before this wakes.
			time.Sleep(signalGrace)
			if s, ok := sig.(syscall.Signal); ok {
				syscall.Kill(os.Getpid(), s)
			}
		}(w.ch)
	})
}

func (w *signalWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		signal.Stop(w.ch)
		close(w.ch)
		w.ch = nil
	}
}
