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
	"errors"
	"fmt"
	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/schema"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
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
	// record, on a pipelined stream's refusal, records it (AUTHZ_DENIED)
	// when the batches before it are applied (runBatchLater).
	record func()
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
	// Action and Tier are what the verb does and the tier it does it to,
	// as the firewall judges a request (DESIGN.md §8) and capabilities.json
	// lists them: Tier is "ho3", TierPlane (the tier the request names) or
	// TierNone.
	Action Action
	Tier   string
	// ActionOf, if set, is the action one request takes when it is not
	// always Action: a read that records its verdict in a tier's ledger
	// (cp-gate --record) appends there, and is judged so.
	ActionOf func(req Request) Action
	// AlsoOf, if set, names a second action one request takes beyond its
	// own, and the tier it takes it at (cp-wo start --mint-token also
	// mints a token: token at HO3); "" for none. The firewall judges it
	// after the verb's own, and refuses and records it the same way.
	AlsoOf func(req Request) (Action, string)
	// Scope, if set, says what a request acts on, for the firewall: the HO3
	// root of its plane ("" for none), its tier and HO1 session. A verb
	// whose request may name a file inside a plane by path (cp-ledger
	// --ledger) declares it, so that the file is judged as the tier it
	// really belongs to.
	Scope func(c *Call, req Request) (root, tier, session string, err error)
	// Stream verbs take NDJSON on stdin, one request per line.
	Stream bool
	// SignalEnds, on a verb whose every instant is crash-safe (its kill -9
	// test: what it wrote is wholly there or repaired by the next writer),
	// keeps the default dispositions while it runs, as a one-entry append
	// does: a SIGINT or SIGTERM ends the process at once instead of
	// cancelling the verb's context, and the process does not pay for the
	// handler's thread (see watchSignals).
	SignalEnds bool
	// Run answers one request.
	Run func(ctx context.Context, c *Call, req Request) Outcome
	// Batch, if set on a stream verb, answers requests that arrived together
	// (group commit). It returns one outcome per request handled; it may
	// stop early, and then its last outcome holds the error.
	Batch func(ctx context.Context, c *Call, reqs []Request) []Outcome
	// Pipeline, if set on a stream verb with Batch, is Batch in two steps,
	// so that a stream's batches overlap: it runs on the stream's goroutine
	// what may run ahead of the batches before (work that depends on each
	// request and the run's fixed state alone, and nothing that writes),
	// and returns the function that finishes the batch as Batch would (in
	// order, the group commit included) and returns its outcomes. The
	// stream calls that function on a goroutine of its own, batch
	// after batch in order, while the next batch is read and started; it
	// calls none after a batch that failed, so nothing of a later batch is
	// applied. c is the call as of this batch, the verb's to keep. The
	// first request of a stream, and Dispatch, go through Batch.
	Pipeline func(ctx context.Context, c *Call, reqs []Request) func() []Outcome
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
	// Upstream, if set, turns an upstream envelope's result (DESIGN.md
	// §3: composition) into this verb's request before flags and
	// validation: cp-ledger append keeps another tool's result as its
	// entry's metadata. Without it, the result is the request.
	Upstream func(result Request) Request
	// Plain, if set, reports whether a request (flags merged) has a plain
	// shape that Schema provably accepts: a check by code of a subset of
	// the schema, which the verb's package holds to the compiled schema
	// and to jsonschema/v6 with an agreement fuzz test. A plain request is
	// not validated against the compiled schema, so a process whose
	// requests are plain never compiles it (cp-llm: 0.15 ms of a call);
	// false says nothing, and the schema judges and names what is wrong.
	Plain func(req Request) bool
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
	Tool    *Tool
	Verb    *Verb
	Stdout  io.Writer
	Stderr  io.Writer
	Format  string
	Verbose bool
	// Identity is who asks, admitted by the Guard before the verb runs
	// (the OS user while auth is off); verbs pass Actor() to libraries.
	Identity Identity
	// Env is the Control Plane environment, read once for the request path.
	Env       Env
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
	return RunWith(ctx, tool, Options{}, args, stdin, stdout, stderr)
}

// RunWith is Run under opts: a given identity, environment, firewall and
// refusal recorder.
func RunWith(ctx context.Context, tool *Tool, opts Options, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	r := &runner{tool: tool, opts: opts, out: out, stderr: stderr, start: time.Now(), text: isTerminal(stdout)}
	if f := formatArg(args); f != "" {
		r.text = f == "text" // for errors met before the flags are parsed
	}
	return r.run(ctx, args, stdin, stdout)
}

type runner struct {
	tool *Tool
	opts Options
	// guard admits and judges; admitted holds its Admit per plane root,
	// decisions its decision per access: in a stream each is made once.
	guard     Guard
	admitted  map[string]admission
	decisions map[Access]decision
	out       *bufio.Writer
	stderr    io.Writer
	start     time.Time
	call      *Call
	buf       []byte // reused envelope buffer
	// text is stdout being a terminal, or --format text given: text is
	// then the format, for errors met before the flags are parsed too.
	text bool

	// deferRecord: a refusal is recorded later, in order (Verb.Pipeline).
	deferRecord bool
}

// run is the request path of one invocation, in steps: the verb the
// arguments name, the first request on stdin (its "operation" may name
// the verb), the flags, the call, then one request, or a stream, through
// runBatch (the firewall, then the verb) and finish.
func (r *runner) run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) int {
	if code, done := r.helpOrVersion(args); done {
		return code
	}
	verb, args, err := r.verbOfArgs(args)
	if err != nil {
		return r.fail(err)
	}
	verb, br, firstIn, err := r.readFirst(verb, stdin)
	if err != nil {
		return r.fail(err)
	}
	if verb == nil && r.tool.NoDefault {
		return r.fail(Usagef("%s needs a verb (%s)", r.tool.Name, r.tool.verbNames()).WithHint("run %s -h", r.tool.Name))
	}
	if verb == nil {
		verb = r.tool.Verbs[0]
	}

	flagReq, common, err := r.parseFlags(verb, args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(r.stderr, r.tool.help())
		return ExitOK
	}
	if err != nil {
		return r.fail(err)
	}
	if err := r.newCall(verb, common); err != nil {
		return r.fail(err)
	}
	build, err := r.builder(verb, flagReq)
	if err != nil {
		return r.fail(err)
	}
	if verb.Stream && br != nil && firstIn != nil {
		return r.stream(ctx, verb, br, *firstIn, build)
	}
	var base Request
	if firstIn != nil {
		base = firstIn.fromUpstream(verb)
	}
	req, err := build(base)
	if err != nil {
		return r.fail(err)
	}
	if !verb.SignalEnds {
		watchSignals(ctx)
	}
	return r.finish(verb, r.runBatch(ctx, verb, []Request{req})[0])
}

// helpOrVersion answers -h and -version as the first argument (or right
// after the verb); in any other place flag parsing sees them, so a flag's
// value "-h" is a value, not a request for help.
func (r *runner) helpOrVersion(args []string) (code int, done bool) {
	for i, a := range args {
		if i > 1 || (i == 1 && strings.HasPrefix(args[0], "-")) {
			break
		}
		switch a {
		case "-h", "-help", "--help":
			fmt.Fprint(r.stderr, r.tool.help())
			return ExitOK, true
		case "-version", "--version":
			r.emitOK(map[string]any{"name": r.tool.Name, "version": Version, "go": runtime.Version()}, nil)
			return ExitOK, true
		}
	}
	return 0, false
}

// verbOfArgs returns the verb the arguments name, if any, and the
// arguments without it.
func (r *runner) verbOfArgs(args []string) (*Verb, []string, error) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		if v, n := r.tool.verbAt(args, 0); v != nil {
			return v, args[n:], nil
		}
		if r.tool.defaultTakes(args[0]) {
			// The default verb's first argument (cp-pkg PKG-X-001 --spec S):
			// the verb is fixed, so a stdin "operation" naming another one
			// disagrees rather than inheriting the argument.
			return r.tool.Verbs[0], args, nil
		}
		return nil, nil, Usagef("unknown verb %q (verbs: %s)", args[0], r.tool.verbNames()).WithHint("%s", r.tool.nearVerb(args[0]))
	}
	if i := afterCommonFlags(args); i < len(args) {
		// "cp-x --root P verb ...": the verb may follow the common flags.
		if v, n := r.tool.verbAt(args, i); v != nil {
			return v, append(args[:i:i], args[i+n:]...), nil
		}
	}
	return nil, args, nil
}

// readFirst reads the first request on stdin, if stdin may hold one, and
// returns the verb (the one given, else the one its "operation" names,
// else the default) and the reader the rest of a stream is read from (nil
// once stdin is read whole). Stream verbs read NDJSON line by line; a first
// line that is not a whole JSON text is taken to start a pretty-printed
// document, and all of stdin is then one request.
func (r *runner) readFirst(verb *Verb, stdin io.Reader) (*Verb, *bufio.Reader, *input, error) {
	if !hasInput(stdin) {
		return verb, nil, nil, nil
	}
	br := bufio.NewReaderSize(stdin, 256<<10)
	var doc []byte
	var err error
	whole := verb != nil && !verb.Stream
	if whole {
		doc, err = readAllTrim(br, MaxRequest)
	} else {
		doc, err = readLine(br)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	// A request's clock (duration_ms) starts once it has been read: a
	// caller that takes its time to send it is not the verb's time.
	r.start = time.Now()
	if doc == nil {
		return verb, br, nil, nil
	}
	in, perr := parseInput(doc)
	if perr != nil && !whole {
		// doc may point into br's buffer, which the next read overwrites:
		// keep a copy of it.
		doc = bytes.Clone(doc)
		rest, err := readAllTrim(br, MaxRequest-len(doc))
		if err != nil {
			return nil, nil, nil, err
		}
		if rest != nil {
			whole = true
			in, perr = parseInput(append(doc, rest...))
		}
	}
	if perr != nil {
		return nil, nil, nil, perr
	}
	if in.passthrough != nil {
		return nil, nil, nil, in.passthrough
	}
	op, err := takeOperation(in.req)
	if err != nil {
		return nil, nil, nil, err
	}
	if op != "" {
		v := r.tool.verb(op)
		if v == nil {
			return nil, nil, nil, Usagef("unknown operation %q (operations: %s)", op, r.tool.verbNames())
		}
		if verb != nil && verb != v {
			return nil, nil, nil, Usagef("verb %q and stdin operation %q disagree", verb.Name, op)
		}
		verb = v
	}
	if verb == nil && !r.tool.NoDefault {
		verb = r.tool.Verbs[0] // the default verb; known before checking for more input
	}
	if verb != nil && !verb.Stream && !whole {
		if rest, err := readAllTrim(br, MaxRequest); err != nil {
			return nil, nil, nil, err
		} else if rest != nil {
			return nil, nil, nil, Invalidf("INVALID_INPUT", "%s takes one request object; stdin holds more", verb.Name)
		}
	}
	if whole {
		br = nil
	}
	return verb, br, &in, nil
}

// newCall makes the call the verb runs in: its output format, the caller's
// identity and the environment, each settled once here.
func (r *runner) newCall(verb *Verb, common commonFlags) error {
	c := &Call{Tool: r.tool, Verb: verb, Stdout: r.out, Stderr: r.stderr, Format: common.format,
		Verbose: common.verbose, rootArg: common.root}
	r.call = c
	if r.opts.Env != nil {
		c.Env = *r.opts.Env
	} else {
		c.Env = ReadEnv()
	}
	r.guard = r.opts.Guard
	if r.guard == nil {
		r.guard = auth.NewGuard(auth.Config{Token: c.Env.Token, Off: c.Env.AuthOff, OSUser: osUser()})
	}
	if c.Format == "" {
		c.Format = "json"
		if r.text {
			c.Format = "text"
		}
	}
	if _, extra := verb.Formats[c.Format]; !extra && c.Format != "json" && c.Format != "text" {
		names := "json or text"
		for _, n := range slices.Sorted(maps.Keys(verb.Formats)) {
			names += ", " + n
		}
		return Usagef("--format must be %s, got %q", names, c.Format)
	}
	return nil
}

// builder returns the function that merges the flags into a request
// freshly decoded from stdin (it is ours to change: no copy), or into an
// empty one, and validates it against the verb's schema.
func (r *runner) builder(verb *Verb, flagReq Request) (func(Request) (Request, error), error) {
	var compiled *schema.Schema
	if verb.Plain == nil || verb.Schema == "" {
		var err error
		if compiled, err = compileSchema(verb.Schema); err != nil {
			return nil, err
		}
	}
	return func(base Request) (Request, error) {
		fromFlags := base == nil
		req := base
		if req == nil {
			req = Request{}
		}
		for k, v := range flagReq {
			req[k] = v
		}
		if verb.Plain != nil && verb.Plain(req) {
			return req, nil
		}
		s := compiled
		if s == nil {
			// Compiled at the first request that is not plain (cached:
			// compileSchema holds its lock, so a stream's goroutines may
			// call it at once).
			var err error
			if s, err = compileSchema(verb.Schema); err != nil {
				return nil, err
			}
		}
		if err := validate(s, verb, req); err != nil {
			if fromFlags { // a missing or bad flag: a usage error
				e := AsError(flagBlame(err, flagReq, verb.Flags))
				e.Exit, e.Code = ExitUsage, "USAGE"
				e.Hint = "run " + r.tool.Name + " -h"
				return nil, e
			}
			return nil, flagBlame(err, flagReq, verb.Flags)
		}
		return req, nil
	}, nil
}

// runBatch runs requests that passed validation: each is decided by the
// Guard first (the caller admitted, the request authorized), then the verb
// runs as the identity admitted. A refused request ends the batch with its
// refusal; the requests before it run, and nothing of it.
func (r *runner) runBatch(ctx context.Context, verb *Verb, reqs []Request) []Outcome {
	var outs []Outcome
	start := 0 // the first request not run yet
	flush := func(end int) bool {
		if end == start {
			return true
		}
		n := end - start
		o := r.runVerb(ctx, verb, reqs[start:end])
		outs = append(outs, o...)
		start = end
		return len(o) == n && o[n-1].Err == nil
	}
	for i, req := range reqs {
		d := r.decide(ctx, req)
		if d.refusal != nil {
			if !flush(i) {
				return outs
			}
			return append(outs, *d.refusal)
		}
		if d.id != r.call.Identity && i > start {
			// Another plane of a stream admitted another identity: the
			// requests before run as theirs.
			if !flush(i) {
				return outs
			}
		}
		r.call.Identity = d.id
	}
	flush(len(reqs))
	return outs
}

// runVerb runs the verb over requests the firewall allowed.
func (r *runner) runVerb(ctx context.Context, verb *Verb, reqs []Request) []Outcome {
	if len(reqs) == 0 {
		return nil
	}
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

// PlainInt reports whether s is a decimal integer literal without sign,
// fraction, exponent or leading zero, of 1 to max digits: a plain integer
// for a Verb.Plain check (a schema's bounded "integer").
func PlainInt(s string, max int) bool {
	if len(s) < 1 || len(s) > max || s[0] == '0' && len(s) > 1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
