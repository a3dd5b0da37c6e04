// Package cli is the pipe contract every Control Plane binary follows
// (DESIGN.md §2–3): a request built from a verb and flags or from a JSON
// object on stdin (its "operation" names the verb), validated against the
// verb's embedded JSON Schema, answered by one JSON envelope per request on
// stdout, with upstream envelopes composed, errors mapped to one exit-code
// table and human messages on stderr as "cp-x: error: ...".
//
// A tool declares its verbs in a Tool and calls Run from its own Run; main
// calls Main, the only place os.Exit is called.
package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Version is stamped by the Makefile with -ldflags "-X .../internal/cli.Version=...".
var Version = "devel"

// RunFunc is a tool's entry point: it reads stdin, writes stdout and stderr,
// and returns the exit code. It never calls os.Exit.
type RunFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Main runs a tool as a process: it answers --capabilities from the embedded
// capabilities document, lets the runner cancel the context on SIGINT/SIGTERM
// (see watchSignals), and exits with run's code after deferred cleanup.
func Main(name string, capabilities []byte, run RunFunc) {
	code := func() int {
		ctx, stop := withSignals(context.Background())
		defer stop()
		args := os.Args[1:]
		if len(args) == 1 && (args[0] == "--capabilities" || args[0] == "-capabilities") {
			os.Stdout.Write(capabilities)
			return ExitOK
		}
		return run(ctx, args, os.Stdin, os.Stdout, os.Stderr)
	}()
	os.Exit(code)
}

// Kind is a flag's value type and how it lands in the request.
type Kind int

// Flag kinds.
const (
	String Kind = iota // "x"
	Int                // 12 (json.Number)
	Bool               // true
	List               // "a,b" → ["a","b"]
	JSON               // a JSON value, e.g. --metadata '{"k":1}'
	Multi              // repeatable: --trust-key a --trust-key b → ["a","b"]
)

// Flag is a verb's flag; its value goes into the request field Field
// (default: the flag name in snake_case). Flags override stdin fields.
type Flag struct {
	Name  string
	Kind  Kind
	Usage string
	Field string
}

// Outcome is one request's answer: a result (with optional extra evidence),
// or an error.
type Outcome struct {
	Result any
	Err    error
	// LedgerEntryID and Seq are the evidence of a ledger write: the entry
	// that recorded this request (set LedgerEntryID to print both). A
	// refusal that was recorded may say so instead: an Err with a method
	// RecordedAs() (id string, seq int64) supplies both.
	LedgerEntryID string
	Seq           int64
	// Evidence holds any other evidence fields.
	Evidence map[string]any
}

// Verb is one operation of a tool.
type Verb struct {
	Name string
	// Schema is the file name of the request schema in package schemas.
	Schema string
	Flags  []Flag
	// Args names the request fields filled from positional arguments.
	Args []string
	// Rest, if set, names an array field that collects the positional
	// arguments beyond Args, after any values its flag gave
	// ("--gate G0B G6" as well as "--gate G0B --gate G6").
	Rest string
	// Stream verbs take NDJSON on stdin, one request per line.
	Stream bool
	// Run answers one request.
	Run func(ctx context.Context, c *Call, req Request) Outcome
	// Batch, if set on a stream verb, answers requests that arrived together
	// (group commit). It returns one outcome per request handled; it may
	// stop early, and then its last outcome holds the error.
	Batch func(ctx context.Context, c *Call, reqs []Request) []Outcome
	// Text renders a successful result for people (--format text, the
	// default on a terminal). It is never called for a failure: then the
	// runner writes "error: CODE: message" itself, then the failure's result
	// (if any) by FailedText (see text.go). A verb without Text gets the
	// neutral key/value view, Fields.
	Text func(w io.Writer, result any) error
	// FailedText, if set, renders the result a failure carries (a failed
	// gate's findings, a ledger's issues) under the runner's error line;
	// without it that result is shown by Fields.
	FailedText func(w io.Writer, result any) error
	// Formats render a result in further formats, by --format name (cp-gate:
	// sarif, junit). The rendering replaces the envelope on stdout, for a
	// success and for a negative verdict that carries its result; the error
	// still goes to stderr and sets the exit code.
	Formats map[string]func(w io.Writer, result any) error
	// Raw verbs write their own stdout lines on success (for example
	// NDJSON entries); errors are still enveloped.
	Raw bool
}

// Tool is one binary.
type Tool struct {
	Name  string
	Usage string
	Verbs []*Verb // the first is the default
	// NoDefault makes a request that names no verb a usage error (for a
	// tool whose default verb, by the design, is not built yet).
	NoDefault bool
}

// Call is the invocation context a verb runs in.
type Call struct {
	Tool      *Tool
	Verb      *Verb
	Stdout    io.Writer
	Stderr    io.Writer
	Format    string
	Verbose   bool
	rootArg   string
	root      string
	rootPlane string
}

// Warnf prints "cp-x: warning: ..." on stderr.
func (c *Call) Warnf(format string, args ...any) {
	fmt.Fprintf(c.Stderr, "%s: warning: %s\n", c.Tool.Name, userMessage(fmt.Sprintf(format, args...)))
}

// Progress returns a function that keeps one progress line up to date on
// stderr, or nil when stderr is not a terminal (pipelines and logs get no
// progress noise). Call the returned done func when finished.
func (c *Call) Progress(what string) (update func(done, total int64), finish func()) {
	if !stderrIsTerminal(c.Stderr) {
		return nil, func() {}
	}
	last := time.Now()
	update = func(done, total int64) {
		if time.Since(last) < 200*time.Millisecond || total == 0 {
			return
		}
		last = time.Now()
		fmt.Fprintf(c.Stderr, "\r%s: %s: %3d%%", c.Tool.Name, what, done*100/total)
	}
	finish = func() { fmt.Fprint(c.Stderr, "\r\033[K") }
	return update, finish
}

// Steps returns a logger for the steps of long work (an install's phases):
// with -v each step is a line on stderr, as Logf prints; otherwise, when
// stderr is a terminal, one line shows the latest step and finish clears
// it; otherwise (a pipeline, a log file) nothing is printed. Call finish
// before the outcome is printed.
func (c *Call) Steps() (step func(format string, args ...any), finish func()) {
	switch {
	case c.Verbose:
		return c.Logf, func() {}
	case !stderrIsTerminal(c.Stderr):
		return func(string, ...any) {}, func() {}
	}
	shown := false
	step = func(format string, args ...any) {
		fmt.Fprintf(c.Stderr, "\r\033[K%s: %s", c.Tool.Name, fmt.Sprintf(format, args...))
		shown = true
	}
	finish = func() {
		if shown {
			fmt.Fprint(c.Stderr, "\r\033[K")
		}
	}
	return step, finish
}

// stderrIsTerminal is isTerminal, replaced by tests.
var stderrIsTerminal = isTerminal

// Logf prints a progress line on stderr when -v was given.
func (c *Call) Logf(format string, args ...any) {
	if c.Verbose {
		fmt.Fprintf(c.Stderr, "%s: %s\n", c.Tool.Name, fmt.Sprintf(format, args...))
	}
}

// Run executes tool with the process-style arguments and streams. It is the
// whole pipe contract: verb and flags or stdin JSON, schema validation,
// envelopes, composition and exit codes.
func Run(ctx context.Context, tool *Tool, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	r := &runner{tool: tool, out: out, stderr: stderr, start: time.Now(), text: isTerminal(stdout)}
	if f := formatArg(args); f != "" {
		r.text = f == "text" // for errors met before the flags are parsed
	}
	return r.run(ctx, args, stdin, stdout)
}

type runner struct {
	tool   *Tool
	out    *bufio.Writer
	stderr io.Writer
	start  time.Time
	call   *Call
	buf    []byte // reused envelope buffer
	// text is stdout being a terminal, or --format text given: text is
	// then the format, for errors met before the flags are parsed too.
	text bool
}

func (r *runner) run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) int {
	// -h and -version as the first argument (or right after the verb); in
	// any other place flag parsing sees them, so a flag's value "-h" is a
	// value, not a request for help.
	for i, a := range args {
		if i > 1 || (i == 1 && strings.HasPrefix(args[0], "-")) {
			break
		}
		switch a {
		case "-h", "-help", "--help":
			fmt.Fprint(r.stderr, r.tool.Usage)
			return ExitOK
		case "-version", "--version":
			r.emitOK(map[string]any{"name": r.tool.Name, "version": Version, "go": runtime.Version()}, nil)
			return ExitOK
		}
	}
	var verb *Verb
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if v, n := r.tool.verbAt(args, 0); v != nil {
			verb, args = v, args[n:]
		} else if r.tool.defaultTakes(args[0]) {
			// The default verb's first argument (cp-pkg PKG-X-001 --spec S):
			// the verb is fixed, so a stdin "operation" naming another one
			// disagrees rather than inheriting the argument.
			verb = r.tool.Verbs[0]
		} else {
			return r.fail(Usagef("unknown verb %q (verbs: %s)", args[0], r.tool.verbNames()).WithHint("%s", r.tool.nearVerb(args[0])))
		}
	} else if i := afterCommonFlags(args); i < len(args) {
		// "cp-x --root P verb ...": the verb may follow the common flags.
		if v, n := r.tool.verbAt(args, i); v != nil {
			verb, args = v, append(args[:i:i], args[i+n:]...)
		}
	}

	// Read the first stdin request before parsing flags: its "operation" may
	// name the verb. Stream verbs read NDJSON line by line; a first line that
	// is not a whole JSON text is taken to start a pretty-printed document,
	// and all of stdin is then one request.
	var br *bufio.Reader
	var firstIn *input
	if hasInput(stdin) {
		br = bufio.NewReaderSize(stdin, 256<<10)
		var doc []byte
		var err error
		whole := verb != nil && !verb.Stream
		if whole {
			doc, err = readAllTrim(br, MaxRequest)
		} else {
			doc, err = readLine(br)
		}
		if err != nil {
			return r.fail(err)
		}
		// A request's clock (duration_ms) starts once it has been read: a
		// caller that takes its time to send it is not the verb's time.
		r.start = time.Now()
		if doc != nil {
			in, perr := parseInput(doc)
			if perr != nil && !whole {
				// doc may point into br's buffer, which the next read
				// overwrites: keep a copy of it.
				doc = bytes.Clone(doc)
				rest, err := readAllTrim(br, MaxRequest-len(doc))
				if err != nil {
					return r.fail(err)
				}
				if rest != nil {
					whole = true
					in, perr = parseInput(append(doc, rest...))
				}
			}
			if perr != nil {
				return r.fail(perr)
			}
			if in.passthrough != nil {
				return r.fail(in.passthrough)
			}
			op, err := takeOperation(in.req)
			if err != nil {
				return r.fail(err)
			}
			if op != "" {
				v := r.tool.verb(op)
				if v == nil {
					return r.fail(Usagef("unknown operation %q (operations: %s)", op, r.tool.verbNames()))
				}
				if verb != nil && verb != v {
					return r.fail(Usagef("verb %q and stdin operation %q disagree", verb.Name, op))
				}
				verb = v
			}
			if verb == nil && !r.tool.NoDefault {
				verb = r.tool.Verbs[0] // the default verb; known before checking for more input
			}
			if verb != nil && !verb.Stream && !whole {
				if rest, err := readAllTrim(br, MaxRequest); err != nil {
					return r.fail(err)
				} else if rest != nil {
					return r.fail(Invalidf("INVALID_INPUT", "%s takes one request object; stdin holds more", verb.Name))
				}
			}
			if whole {
				br = nil
			}
			firstIn = &in
		}
	}
	if verb == nil && r.tool.NoDefault {
		return r.fail(Usagef("%s needs a verb (%s)", r.tool.Name, r.tool.verbNames()).WithHint("run %s -h", r.tool.Name))
	}
	if verb == nil {
		verb = r.tool.Verbs[0]
	}

	flagReq, common, err := r.parseFlags(verb, args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(r.stderr, r.tool.Usage)
		return ExitOK
	}
	if err != nil {
		return r.fail(err)
	}
	r.call = &Call{Tool: r.tool, Verb: verb, Stdout: r.out, Stderr: r.stderr, Format: common.format,
		Verbose: common.verbose, rootArg: common.root}
	if r.call.Format == "" {
		r.call.Format = "json"
		if r.text {
			r.call.Format = "text"
		}
	}
	if _, extra := verb.Formats[r.call.Format]; !extra && r.call.Format != "json" && r.call.Format != "text" {
		names := "json or text"
		for _, n := range slices.Sorted(maps.Keys(verb.Formats)) {
			names += ", " + n
		}
		return r.fail(Usagef("--format must be %s, got %q", names, r.call.Format))
	}
	schema, err := compileSchema(verb.Schema)
	if err != nil {
		return r.fail(err)
	}
	// build merges the flags into a request freshly decoded from stdin (it
	// is ours to change: no copy) and validates it.
	build := func(base Request) (Request, error) {
		fromFlags := base == nil
		req := base
		if req == nil {
			req = Request{}
		}
		for k, v := range flagReq {
			req[k] = v
		}
		if err := validate(schema, verb, req); err != nil {
			if fromFlags { // a missing or bad flag: a usage error
				e := AsError(flagBlame(err, flagReq))
				e.Exit, e.Code = ExitUsage, "USAGE"
				e.Hint = "run " + r.tool.Name + " -h"
				return nil, e
			}
			return nil, flagBlame(err, flagReq)
		}
		return req, nil
	}

	if verb.Stream && br != nil && firstIn != nil {
		return r.stream(ctx, verb, br, *firstIn, build)
	}
	var base Request
	if firstIn != nil {
		base = firstIn.req
	}
	req, err := build(base)
	if err != nil {
		return r.fail(err)
	}
	watchSignals(ctx)
	return r.finish(verb, r.runBatch(ctx, verb, []Request{req})[0])
}

// finish prints one outcome and returns its exit code.
func (r *runner) finish(verb *Verb, o Outcome) int {
	if o.Err != nil {
		var rec interface{ RecordedAs() (id string, seq int64) }
		if o.LedgerEntryID == "" && errors.As(o.Err, &rec) {
			o.LedgerEntryID, o.Seq = rec.RecordedAs()
		}
		return r.failWith(AsError(o.Err), o)
	}
	if verb.Raw {
		return ExitOK
	}
	if render, ok := verb.Formats[r.call.Format]; ok {
		if err := render(r.out, o.Result); err != nil {
			return r.fail(err)
		}
		return ExitOK
	}
	if r.call.Format == "text" && (o.Result == nil || r.renderText(verb, o.Result, nil, o)) {
		return ExitOK // nothing to say is said with silence
	}
	r.writeEnvelope("ok", o.Result, nil, o)
	return ExitOK
}

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

func (r *runner) runBatch(ctx context.Context, verb *Verb, reqs []Request) []Outcome {
	if verb.Batch != nil {
		return verb.Batch(ctx, r.call, reqs)
	}
	outs := make([]Outcome, 0, len(reqs))
	for _, req := range reqs {
		o := verb.Run(ctx, r.call, req)
		outs = append(outs, o)
		if o.Err != nil {
			break
		}
	}
	return outs
}

// flagBlame turns a schema violation in a field that a flag set into a
// usage error (exit 2): a bad argument, not bad input.
func flagBlame(err error, flagReq Request) error {
	e := AsError(err)
	probs, _ := e.Details["problems"].([]any)
	if len(probs) == 0 {
		return err
	}
	path, _ := probs[0].(map[string]any)["path"].(string)
	field, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if _, ok := flagReq[field]; !ok || field == "" {
		return err
	}
	e.Exit, e.Code = ExitUsage, "USAGE"
	e.Message = strings.Replace(e.Message, "/"+field, "--"+strings.ReplaceAll(field, "_", "-"), 1)
	return e
}

// takeOperation removes and returns the request's "operation" field.
func takeOperation(req Request) (string, error) {
	v, ok := req["operation"]
	if !ok {
		return "", nil
	}
	delete(req, "operation")
	s, ok := v.(string)
	if !ok {
		return "", Invalidf("SCHEMA_VIOLATION", "operation must be a string, got %s", jsonKind(v))
	}
	return s, nil
}

// errHelp is -h met among a verb's flags.
var errHelp = errors.New("help requested")

type commonFlags struct {
	root, format string
	verbose      bool
}

// parseFlags parses args against the verb's flags plus the common ones
// (--root, --format, -v) and returns the request fields they set.
func (r *runner) parseFlags(verb *Verb, args []string) (Request, commonFlags, error) {
	var common commonFlags
	fs := flag.NewFlagSet(r.tool.Name+" "+verb.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&common.root, "root", "", "plane root")
	fs.StringVar(&common.format, "format", "", "json|text")
	fs.BoolVar(&common.verbose, "v", false, "verbose")
	values := map[string]*string{}
	bools := map[string]*bool{}
	multis := map[string]*[]any{}
	for _, f := range verb.Flags {
		switch f.Kind {
		case Bool:
			bools[f.Name] = fs.Bool(f.Name, false, f.Usage)
		case Multi:
			vals := &[]any{}
			multis[f.Name] = vals
			fs.Func(f.Name, f.Usage, func(v string) error { *vals = append(*vals, v); return nil })
		default:
			values[f.Name] = fs.String(f.Name, "", f.Usage)
		}
	}
	// Positional arguments may come before, between or after flags
	// (cp-pkg stage PKG-X --src dir); "--" ends flag parsing.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, common, errHelp
			}
			msg := err.Error()
			hint := "run " + r.tool.Name + " -h"
			if f, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
				msg = "unknown flag --" + strings.TrimLeft(f, "-")
				var names []string
				fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
				if near := closest(strings.TrimLeft(f, "-"), names); near != "" {
					hint = "did you mean --" + near + "?"
				}
			}
			return nil, common, Usagef("%s %s", verb.Name, msg).WithHint("%s", hint)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	req := Request{}
	for _, f := range verb.Flags {
		if !set[f.Name] {
			continue
		}
		field := f.Field
		if field == "" {
			field = snake(f.Name)
		}
		switch f.Kind {
		case Bool:
			req[field] = *bools[f.Name]
		case Multi:
			req[field] = *multis[f.Name]
		case String:
			req[field] = *values[f.Name]
		case Int:
			s := *values[f.Name]
			if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				return nil, common, Usagef("--%s: want an integer, got %q", f.Name, s)
			}
			req[field] = json.Number(s)
		case List:
			items := []any{}
			for _, p := range strings.Split(*values[f.Name], ",") {
				if p = strings.TrimSpace(p); p != "" {
					items = append(items, p)
				}
			}
			req[field] = items
		case JSON:
			v, err := decodeValue([]byte(*values[f.Name]))
			if err != nil {
				return nil, common, Usagef("--%s is not valid JSON: %s", f.Name, strings.TrimPrefix(AsError(err).Message, "stdin is not valid JSON: "))
			}
			req[field] = v
		}
	}
	if len(pos) > len(verb.Args) && verb.Rest != "" {
		rest, _ := req[verb.Rest].([]any)
		for _, a := range pos[len(verb.Args):] {
			rest = append(rest, a)
		}
		req[verb.Rest], pos = rest, pos[:len(verb.Args)]
	}
	if len(pos) > len(verb.Args) {
		return nil, common, Usagef("%s: unexpected argument %q", verb.Name, pos[len(verb.Args)]).WithHint("run %s -h", r.tool.Name)
	}
	for i, a := range pos {
		req[verb.Args[i]] = a
	}
	return req, common, nil
}

// formatArg returns the value of a --format flag among args, or "": an
// error met before the flags are parsed is shown in the format asked for.
func formatArg(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "format" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// afterCommonFlags returns the index of the first argument after a run of
// the flags every verb takes (--root DIR, --format F, -v), or len(args).
func afterCommonFlags(args []string) int {
	i := 0
	for i < len(args) {
		name, hasValue := strings.TrimLeft(args[i], "-"), strings.Contains(args[i], "=")
		if !strings.HasPrefix(args[i], "-") {
			return i
		}
		name, _, _ = strings.Cut(name, "=")
		switch {
		case name == "v":
			i++
		case (name == "root" || name == "format") && hasValue:
			i++
		case name == "root" || name == "format":
			i += 2
		default:
			return len(args)
		}
	}
	return len(args)
}

func (t *Tool) verb(name string) *Verb {
	for _, v := range t.Verbs {
		if v.Name == name {
			return v
		}
	}
	return nil
}

// verbAt returns the verb named at args[i] and how many words name it: a
// verb of two words ("trust add") is the verb "trust-add" (DESIGN.md §3).
func (t *Tool) verbAt(args []string, i int) (*Verb, int) {
	if i+1 < len(args) {
		if v := t.verb(args[i] + "-" + args[i+1]); v != nil {
			return v, 2
		}
	}
	return t.verb(args[i]), 1
}

// defaultTakes reports whether word, first on the command line and not a
// verb, is the default verb's first positional argument. A word shaped like
// a verb (lower-case letters and hyphens) never is: a mistyped verb is
// reported as one.
func (t *Tool) defaultTakes(word string) bool {
	if t.NoDefault || len(t.Verbs) == 0 || len(t.Verbs[0].Args) == 0 {
		return false
	}
	for _, c := range word {
		if !('a' <= c && c <= 'z' || c == '-') {
			return true
		}
	}
	return false
}

// nearVerb is the hint for a mistyped verb: the nearest verb, or -h.
func (t *Tool) nearVerb(word string) string {
	names := make([]string, len(t.Verbs))
	for i, v := range t.Verbs {
		names[i] = v.Name
	}
	if near := closest(word, names); near != "" {
		return "did you mean " + t.Name + " " + near + "?"
	}
	return "run " + t.Name + " -h"
}

func (t *Tool) verbNames() string {
	names := make([]string, len(t.Verbs))
	for i, v := range t.Verbs {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}

// MaxRequest is the most bytes one request may take: one NDJSON line, or
// one whole (pretty-printed) document. Decoding costs memory many times a
// request's size, so a larger one is refused (REQUEST_TOO_LARGE, exit 3)
// before it is held whole. Lines shorter than the read buffer (256 KiB,
// every request of a fast stream) are never measured.
const MaxRequest = 16 << 20

func errTooLarge() *Error {
	return Invalidf("REQUEST_TOO_LARGE", "a request on stdin is larger than %d MiB", MaxRequest>>20).
		WithHint("split it: one request per line, each under %d MiB", MaxRequest>>20)
}

// readLine returns the next non-blank line of an NDJSON stream, nil at EOF.
// A line that fits the reader's buffer is returned in place: it is valid
// until the next read, so callers decode it (decoding copies what it
// keeps), or copy it, before reading again.
func readLine(br *bufio.Reader) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: collect it, up to the cap.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(long) > MaxRequest {
					return nil, errTooLarge()
				}
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			if len(bytes.TrimSpace(long)) > MaxRequest {
				return nil, errTooLarge()
			}
			line = long
		}
		if len(bytes.TrimSpace(line)) > 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, Errorf(ExitUnavailable, "IO_ERROR", "reading stdin: %v", err)
			}
			return line, nil
		}
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, Errorf(ExitUnavailable, "IO_ERROR", "reading stdin: %v", err)
		}
	}
}

// hasInput reports whether stdin may hold a request: it is not a terminal
// (or /dev/null, also a character device).
func hasInput(stdin io.Reader) bool {
	if stdin == nil {
		return false
	}
	f, ok := stdin.(*os.File)
	if !ok {
		return true
	}
	st, err := f.Stat()
	if err != nil {
		return false
	}
	return st.Mode()&os.ModeCharDevice == 0
}
