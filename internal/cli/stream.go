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
	// trading some memory for fewer collections is worth ~15% here. Not
	// for a pipelined stream: its live heap is its batches in flight,
	// prepared (a decision's draft and evidence, ~3 KB), and at 800 its
	// heap grew to ~1 GB over 200,000 decisions, each fresh page a fault
	// (10-15 us on a machine with shadow paging: a third of its CPU). At
	// Go's default it faults a third less than at 200, for the same CPU.
	gcPercent, queue := 800, 8192
	if verb.Pipeline != nil {
		gcPercent, queue = 100, 2*maxPipelined
	}
	defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := readRequests(ctx, br, second, request, queue)
	return r.runBatches(ctx, verb, items, r.acknowledge(verb))
}

// item is one request of a stream, decoded and validated, or the error
// that ends the stream.
type item struct {
	req Request
	err error
}

// readRequests decodes and validates the stream's requests from the second
// on, in a goroutine of its own, and hands them over in order, up to queue
// ahead of the batches. The channel closes at the end of stdin, after the
// first error, or when ctx ends.
func readRequests(ctx context.Context, br *bufio.Reader, second input, request func(input) (Request, error), queue int) <-chan item {
	items := make(chan item, queue)
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
// the batch's clock; or, for a verb with Pipeline, the function that
// finishes the batch and returns them (later).
type acked struct {
	outs  []Outcome
	later func() []Outcome
	start time.Time
}

// acknowledger is the goroutine that formats and writes acknowledgements
// (and, for a verb with Pipeline, the one before it that finishes the
// batches).
type acknowledger struct {
	ch         chan acked
	writerDone chan error
	// halted is closed when a pipelined batch failed: failed is its
	// failure, to be printed after the acknowledgements, and no batch
	// after it is finished.
	halted      chan struct{}
	failed      *Outcome
	failedStart time.Time
}

// acknowledge starts the goroutine that formats and writes
// acknowledgements, in order, while the next batch is appended: a batch is
// handed over only after runBatch returned, that is after its fsync; a
// pipelined batch (Verb.Pipeline) is finished first, its fsync included,
// on a goroutine of its own, batch after batch in order. stop waits for every acknowledgement to be written; the
// final error (if any) is printed after them by the caller.
func (r *runner) acknowledge(verb *Verb) *acknowledger {
	depth := 2
	if verb.Pipeline != nil {
		// No pipelined batch waits in a queue: each holds its drafts,
		// and one being started, one finished and one written keep the
		// three goroutines busy (a queue of two at each step doubled the
		// heap, for nothing: see stream).
		depth = 0
	}
	k := &acknowledger{ch: make(chan acked, depth), writerDone: make(chan error, 1), halted: make(chan struct{})}
	toWrite := k.ch
	if verb.Pipeline != nil {
		// A goroutine finishes the pipelined batches in order, and hands
		// their outcomes to the writer: the next batch's group commit
		// need not wait for this one's answers to be formatted.
		finished := make(chan acked, depth)
		toWrite = finished
		go func() {
			defer close(finished)
			for a := range k.ch {
				if k.failed != nil {
					continue // nothing after a failure is applied
				}
				if a.later != nil {
					a.outs, a.later = a.later(), nil
					if n := len(a.outs); n > 0 && a.outs[n-1].Err != nil {
						k.failed, k.failedStart = &a.outs[n-1], a.start
						a.outs = a.outs[:n-1]
						close(k.halted)
					}
				}
				finished <- a
			}
		}()
	}
	go func() {
		var werr error
		for a := range toWrite {
			if werr != nil {
				continue
			}
			r.start = a.start
			for _, o := range a.outs {
				r.finish(verb, o)
			}
			werr = r.out.Flush()
		}
		k.writerDone <- werr
	}()
	return k
}

// send hands a batch over; false if a pipelined batch before it failed
// (then it is dropped: stop, and print the failure).
func (k *acknowledger) send(a acked) bool {
	select {
	case k.ch <- a:
		return true
	case <-k.halted:
		return false
	}
}

// stop waits for every acknowledgement to be written.
func (k *acknowledger) stop() int {
	close(k.ch)
	if err := <-k.writerDone; err != nil {
		return ExitUnavailable
	}
	return ExitOK
}

// end stops the acknowledgements, then prints the stream's first failure:
// a pipelined batch's, if one failed, else err's (when set), with its
// batch's clock (errStart; zero: the last batch's). It returns the
// stream's exit code.
func (r *runner) end(verb *Verb, k *acknowledger, err *Outcome, errStart time.Time) int {
	if code := k.stop(); code != ExitOK {
		return code
	}
	if k.failed != nil {
		err, errStart = k.failed, k.failedStart
	}
	if err == nil {
		return ExitOK
	}
	if !errStart.IsZero() { // else the clock of the last batch acknowledged
		r.start = errStart
	}
	return r.finish(verb, *err)
}

// maxBatch is the most requests one batch (one group commit) takes;
// maxPipelined, one of a verb with Pipeline, whose batches are held
// prepared while the one before is committed: a quarter of the memory
// in flight, for an fsync every 1,024 decisions rather than 4,096.
const maxBatch, maxPipelined = 4096, 1024

// runBatches runs the stream's requests in batches of whatever has arrived
// (group commit) until the stream ends, fails or is cancelled.
func (r *runner) runBatches(ctx context.Context, verb *Verb, items <-chan item, k *acknowledger) int {
	limit := maxBatch
	if verb.Pipeline != nil {
		limit = maxPipelined
	}
	batch := make([]Request, 0, limit)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	last := 0
	for {
		var it item
		var ok bool
		select {
		case it, ok = <-items:
		case <-ctx.Done():
		case <-k.halted:
			return r.end(verb, k, nil, time.Time{})
		}
		if ctx.Err() != nil {
			// SIGINT or SIGTERM (see watchSignals): every acknowledged
			// request stands; requests read but not run are not applied.
			cancelled := Outcome{Err: Errorf(ExitUnavailable, "CANCELLED", "%s stream interrupted: the requests acknowledged above were applied, none after them", verb.Name)}
			return r.end(verb, k, &cancelled, time.Time{})
		}
		if !ok {
			return r.end(verb, k, nil, time.Time{})
		}
		start := time.Now() // the batch's clock: from its first request's arrival
		batch = batch[:0]
		var stopErr error
		if it.err != nil {
			stopErr = it.err
		} else {
			batch, stopErr = fill(items, append(batch, it.req), last, limit, timer)
		}
		last = len(batch)
		if len(batch) > 0 && verb.Pipeline != nil {
			later, refused := r.runBatchLater(ctx, verb, batch)
			if !k.send(acked{later: later, start: start}) || refused {
				// A refusal ends the batch, and the stream with it (the
				// finishing goroutine holds the failure).
				return r.end(verb, k, nil, time.Time{})
			}
			// The batch's requests are the pipeline's now: the next
			// batch gets slices of its own.
			batch = make([]Request, 0, limit)
		} else if len(batch) > 0 {
			outs := r.runBatch(ctx, verb, batch)
			if n := len(outs); n > 0 && outs[n-1].Err != nil {
				k.send(acked{outs: outs[:n-1], start: start})
				return r.end(verb, k, &outs[n-1], start)
			}
			k.send(acked{outs: outs, start: start})
		}
		if stopErr != nil {
			return r.end(verb, k, &Outcome{Err: stopErr}, time.Time{})
		}
	}
}

// runBatchLater is runBatch for a verb with Pipeline: the firewall decides
// each request now, and the verb's Pipeline starts each run of requests
// one identity admitted; the function returned finishes them in order
// (and records a refusal that ends the batch, after them), stopping at
// the first failure, as runBatch does. refused reports a refusal: the
// stream reads no further.
func (r *runner) runBatchLater(ctx context.Context, verb *Verb, reqs []Request) (later func() []Outcome, refused bool) {
	var parts []func() []Outcome
	var sizes []int
	start := 0
	flush := func(end int) {
		if end > start {
			c := *r.call // the verb keeps its copy: this goroutine goes on
			parts = append(parts, verb.Pipeline(ctx, &c, reqs[start:end]))
			sizes = append(sizes, end-start)
			start = end
		}
	}
	var refusal *Outcome
	r.deferRecord = true
	for i, req := range reqs {
		d := r.decide(ctx, req)
		if d.refusal != nil {
			flush(i)
			refusal = d.refusal
			break
		}
		if d.id != r.call.Identity && i > start {
			flush(i) // another plane of a stream admitted another identity
		}
		r.call.Identity = d.id
	}
	r.deferRecord = false
	if refusal == nil {
		flush(len(reqs))
	}
	return func() []Outcome {
		var outs []Outcome
		for i, p := range parts {
			o := p()
			outs = append(outs, o...)
			if n := len(o); n != sizes[i] || n > 0 && o[n-1].Err != nil {
				return outs
			}
		}
		if refusal != nil {
			if refusal.record != nil {
				refusal.record()
			}
			outs = append(outs, *refusal)
		}
		return outs
	}, refusal != nil
}

// fill adds to batch the requests that have already arrived, up to
// limit, and returns it with the error that ends the stream, if one
// came. Under a flood (the last batch was large) it lingers up to a
// millisecond for the batch to fill, so that one fsync covers thousands of
// entries; a caller sending one request at a time never waits.
func fill(items <-chan item, batch []Request, last, limit int, timer *time.Timer) ([]Request, error) {
	const floodBatch, linger = 256, time.Millisecond
	var deadline <-chan time.Time
	if last >= floodBatch {
		timer.Reset(linger)
		deadline = timer.C
		// Since Go 1.23 a stopped timer delivers no stale value: no drain
		// (a drain could block forever).
		defer timer.Stop()
	}
	for len(batch) < limit {
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
