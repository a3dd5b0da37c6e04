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
		return build(in.fromUpstream(verb))
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

	// A stream allocates small, short-lived request maps at a high rate;
	// trading some memory for fewer collections is worth ~15% here.
	defer debug.SetGCPercent(debug.SetGCPercent(800))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := readRequests(ctx, br, second, request)
	acks, stop := r.acknowledge(verb)
	return r.runBatches(ctx, verb, items, acks, stop)
}

// item is one request of a stream, decoded and validated, or the error
// that ends the stream.
type item struct {
	req Request
	err error
}

// readRequests decodes and validates the stream's requests from the second
// on, in a goroutine of its own, and hands them over in order. The channel
// closes at the end of stdin, after the first error, or when ctx ends.
func readRequests(ctx context.Context, br *bufio.Reader, second input, request func(input) (Request, error)) <-chan item {
	items := make(chan item, 8192)
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
	return items
}

// acked is a batch's outcomes, handed to the acknowledging goroutine with
// the batch's clock.
type acked struct {
	outs  []Outcome
	start time.Time
}

// acknowledge starts the goroutine that formats and writes
// acknowledgements, in order, while the next batch is appended: a batch is
// handed over only after runBatch returned, that is after its fsync. stop
// waits for every acknowledgement to be written; the final error (if any)
// is printed after them by the caller.
func (r *runner) acknowledge(verb *Verb) (acks chan<- acked, stop func() int) {
	ch := make(chan acked, 2)
	writerDone := make(chan error, 1)
	go func() {
		var werr error
		for a := range ch {
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
	stop = func() int {
		close(ch)
		if err := <-writerDone; err != nil {
			return ExitUnavailable
		}
		return ExitOK
	}
	return ch, stop
}

// maxBatch is the most requests one batch (one group commit) takes.
const maxBatch = 4096

// runBatches runs the stream's requests in batches of whatever has arrived
// (group commit) until the stream ends, fails or is cancelled.
func (r *runner) runBatches(ctx context.Context, verb *Verb, items <-chan item, acks chan<- acked, stop func() int) int {
	batch := make([]Request, 0, maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	last := 0
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
		start := time.Now() // the batch's clock: from its first request's arrival
		batch = batch[:0]
		var stopErr error
		if it.err != nil {
			stopErr = it.err
		} else {
			batch, stopErr = fill(items, append(batch, it.req), last, timer)
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

// fill adds to batch the requests that have already arrived, up to
// maxBatch, and returns it with the error that ends the stream, if one
// came. Under a flood (the last batch was large) it lingers up to a
// millisecond for the batch to fill, so that one fsync covers thousands of
// entries; a caller sending one request at a time never waits.
func fill(items <-chan item, batch []Request, last int, timer *time.Timer) ([]Request, error) {
	const floodBatch, linger = 256, time.Millisecond
	var deadline <-chan time.Time
	if last >= floodBatch {
		timer.Reset(linger)
		deadline = timer.C
		// Since Go 1.23 a stopped timer delivers no stale value: no drain
		// (a drain could block forever).
		defer timer.Stop()
	}
	for len(batch) < maxBatch {
		var it item
		var ok bool
		select {
		case it, ok = <-items:
		default:
			if deadline == nil {
				return batch, nil
			}
			select {
			case it, ok = <-items:
			case <-deadline:
				return batch, nil
			}
		}
		if !ok {
			return batch, nil
		}
		if it.err != nil {
			return batch, it.err
		}
		batch = append(batch, it.req)
	}
	return batch, nil
}
