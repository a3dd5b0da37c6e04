package cli

import (
	"bufio"
	"context"
	"runtime/debug"
	"time"
)

// stream answers NDJSON requests. The first runs by itself, answered and
// flushed before stdin is read again: most streams are one request (an
// agent appending one event per process), and those then start no
// goroutine, and a coprocess gets its first answer as soon as it can. From
// the second request on, a reader goroutine decodes and validates lines
// (on the second core) while this one runs them in batches of whatever has
// already arrived, so a verb with Batch can group-commit. The stream stops
// at the first failed request; its exit code is that failure's.
func (r *runner) stream(ctx context.Context, verb *Verb, br *bufio.Reader, first input, build func(Request) (Request, error)) int {
	// request turns one decoded input into a validated request.
	request := func(in input) (Request, error) {
		if in.passthrough != nil {
			return nil, in.passthrough
		}
		if op, err := takeOperation(in.req); err != nil {
			return nil, err
		} else if op != "" && op != verb.Name {
			return nil, Usagef("stream of %q holds operation %q", verb.Name, op)
		}
		return build(in.req)
	}
	req, err := request(first)
	if err != nil {
		return r.fail(err)
	}
	if code := r.finish(verb, r.runBatch(ctx, verb, []Request{req})[0]); code != ExitOK {
		return code
	}
	if err := r.out.Flush(); err != nil {
		return ExitUnavailable
	}
	line, err := readLine(br)
	if err != nil {
		return r.fail(err)
	}
	if line == nil {
		return ExitOK
	}
	watchSignals(ctx) // a second request: this stream may run long
	r.start = time.Now()
	second, err := parseInput(line)
	if err != nil {
		return r.fail(err)
	}

	type item struct {
		req Request
		err error
	}
	// A stream allocates small, short-lived request maps at a high rate;
	// trading some memory for fewer collections is worth ~15% here.
	defer debug.SetGCPercent(debug.SetGCPercent(800))
	items := make(chan item, 8192)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(items)
		send := func(it item) bool {
			select {
			case items <- it:
				return it.err == nil
			case <-ctx.Done():
				return false
			}
		}
		handle := func(in input) bool {
			req, err := request(in)
			return send(item{req: req, err: err})
		}
		if !handle(second) {
			return
		}
		for {
			line, err := readLine(br)
			if err != nil {
				send(item{err: err})
				return
			}
			if line == nil {
				return
			}
			in, err := parseInput(line)
			if err != nil {
				send(item{err: err})
				return
			}
			if !handle(in) {
				return
			}
		}
	}()

	const maxBatch = 4096
	// Acknowledgements are formatted and written by their own goroutine,
	// in order, while the next batch is appended: a batch is handed over
	// only after runBatch returned, that is after its fsync.
	type acked struct {
		outs  []Outcome
		start time.Time
	}
	acks := make(chan acked, 2)
	writerDone := make(chan error, 1)
	go func() {
		var werr error
		for a := range acks {
			if werr != nil {
				continue
			}
			r.start = a.start
			for _, o := range a.outs {
				r.finish(verb, o)
			}
			werr = r.out.Flush()
		}
		writerDone <- werr
	}()
	// stop waits for every acknowledgement to be written; the final error
	// (if any) is printed after them by the caller.
	stop := func() int {
		close(acks)
		if err := <-writerDone; err != nil {
			return ExitUnavailable
		}
		return ExitOK
	}
	// Group commit: a batch is whatever requests have arrived. Under a
	// flood (the last batch was large) the loop lingers up to a millisecond
	// for the batch to fill, so that one fsync covers thousands of entries;
	// a caller sending one request at a time never waits.
	const floodBatch, linger = 256, time.Millisecond
	batch := make([]Request, 0, maxBatch)
	var start time.Time
	last := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var it item
		var ok bool
		select {
		case it, ok = <-items:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			// SIGINT or SIGTERM (see watchSignals): every acknowledged
			// request stands; requests read but not run are not applied.
			if code := stop(); code != ExitOK {
				return code
			}
			return r.fail(Errorf(ExitUnavailable, "CANCELLED", "%s stream interrupted: the requests acknowledged above were applied, none after them", verb.Name))
		}
		if !ok {
			return stop()
		}
		start = time.Now() // the batch's clock: from its first request's arrival
		batch = batch[:0]
		var stopErr error
		if it.err != nil {
			stopErr = it.err
		} else {
			batch = append(batch, it.req)
			var deadline <-chan time.Time
			if last >= floodBatch {
				timer.Reset(linger)
				deadline = timer.C
			}
		drain:
			for len(batch) < maxBatch {
				select {
				case it, ok = <-items:
				default:
					if deadline == nil {
						break drain
					}
					select {
					case it, ok = <-items:
					case <-deadline:
						deadline = nil
						break drain
					}
				}
				if !ok {
					break drain
				}
				if it.err != nil {
					stopErr = it.err
					break drain
				}
				batch = append(batch, it.req)
			}
			if deadline != nil {
				// Since Go 1.23 a stopped timer delivers no stale value:
				// no drain (a drain could block forever).
				timer.Stop()
			}
		}
		last = len(batch)
		if len(batch) > 0 {
			outs := r.runBatch(ctx, verb, batch)
			if n := len(outs); n > 0 && outs[n-1].Err != nil {
				acks <- acked{outs[:n-1], start}
				if code := stop(); code != ExitOK {
					return code
				}
				r.start = start
				return r.finish(verb, outs[n-1])
			}
			acks <- acked{outs, start}
		}
		if stopErr != nil {
			if code := stop(); code != ExitOK {
				return code
			}
			return r.fail(stopErr)
		}
	}
}
