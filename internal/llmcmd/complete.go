package llmcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/llm"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/internal/prompt"
)

// resolvedPrompt is a prompt pack rendered with a call's variables, as the
// gateway needs it: the text to send and the pack's evidence and limits.
// Its fields are internal/prompt's Rendered.
type resolvedPrompt struct {
	PromptPackID string
	Version      string
	SHA256       string // the registered pack digest
	Text         string
	TextSHA256   string
	Providers    []string
	Models       []string
	MaxTokens    int64
}

// packResolver loads the registered pack id of the plane at root, checks
// it against its registered hash now (PROMPT_HASH_MISMATCH), and renders
// it with vars (strict: a missing variable is an error).
type packResolver func(ctx context.Context, root, id string, vars map[string]any) (*resolvedPrompt, error)

// resolvePack is the resolver complete uses: internal/prompt loads the
// pack, re-hashing its files against the registered digest now
// (PROMPT_NOT_FOUND, PROMPT_HASH_MISMATCH), and renders it with vars
// (PROMPT_VARIABLES_INVALID, PROMPT_RENDER_FAILED). The pack's limits are
// checked by the gateway once the provider and model are resolved
// (PROMPT_LIMIT).
var resolvePack packResolver = func(_ context.Context, root, id string, vars map[string]any) (*resolvedPrompt, error) {
	p, err := prompt.Load(root, id)
	if err != nil {
		return nil, err
	}
	r, err := p.Render(vars)
	if err != nil {
		return nil, err
	}
	rp := resolvedPrompt(*r)
	return &rp, nil
}

// getenv reads the gateway process's environment: the providers' keys
// and the OTLP exporter's settings (only this package reads them, and
// hands them to internal/llm through its options).
var getenv = os.Getenv

// state is one run's: whether a call has already been answered (only the
// first call of a run may stream deltas: after it, envelopes are written
// by the runner while the next calls run).
type state struct {
	mu      sync.Mutex
	calls   int
	gateway *llm.Gateway
	// process is set by Run, cp-llm's own process (never by Dispatch: an
	// in-process caller, cp-mcp or cp-route's classifier, keeps its own
	// signal handling); signals is the context watchSignals cancels.
	process    bool
	signalOnce sync.Once
	signals    context.Context
}

// watchSignals returns a context cancelled on the first SIGINT or SIGTERM
// this process receives, installing the handler once per process, the
// first time a call is made (list-providers, load-prompt and -h never pay
// for it): a call is charged for what it used even when its caller stops
// it. After that first signal the handler is gone, so a second one ends
// the process as usual. Only Run's state calls it: a handler inside an
// in-process caller would take its signals from it.
func (s *state) watchSignals() context.Context {
	s.signalOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-ch
			signal.Stop(ch)
			cancel()
		}()
		s.signals = ctx
	})
	return s.signals
}

func (s *state) complete(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return s.completeBatch(ctx, c, []cli.Request{req})[0]
}

// gatewayFor returns the run's gateway (one per run: the configuration is
// read once for a stream of calls).
func (s *state) gatewayFor(c *cli.Call, root string) (*llm.Gateway, error) {
	if s.gateway != nil && s.gateway.Root == root {
		s.gateway.Actor = c.Actor()
		return s.gateway, nil
	}
	exp, err := llm.NewExporter(getenv, "cp-llm")
	if err != nil {
		c.Warnf("%v: no spans are exported", err)
	}
	s.gateway = &llm.Gateway{Root: root, Actor: c.Actor(), Options: llm.Options{Getenv: getenv}, Exporter: exp, Warnf: c.Warnf}
	return s.gateway, nil
}

// completeBatch answers calls that arrived together: one gateway batch,
// its reservations and its evidence each one append.
func (s *state) completeBatch(ctx context.Context, c *cli.Call, reqs []cli.Request) []cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return []cli.Outcome{{Err: err}}
	}
	g, err := s.gatewayFor(c, root)
	if err != nil {
		return []cli.Outcome{{Err: err}}
	}
	if s.process {
		// cp-llm's own process: SIGINT and SIGTERM cancel the call, which
		// ends CANCELLED, recorded and charged (see watchSignals).
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.watchSignals(), cancel)()
	}

	calls := make([]*llm.Call, 0, len(reqs))
	var stopErr error
	for _, req := range reqs {
		s.mu.Lock()
		first := s.calls == 0
		s.calls++
		s.mu.Unlock()
		call, err := s.callOf(ctx, c, root, req, first)
		if err != nil {
			stopErr = err
			break
		}
		calls = append(calls, call)
	}
	var outs []cli.Outcome
	if len(calls) > 0 {
		results, err := g.CompleteBatch(ctx, calls)
		for _, r := range results {
			outs = append(outs, cli.Outcome{Result: answer{r}, LedgerEntryID: r.LedgerEntryID, Seq: r.Seq})
		}
		if err != nil {
			return append(outs, cli.Outcome{Err: err})
		}
	}
	if stopErr != nil {
		outs = append(outs, cli.Outcome{Err: stopErr})
	}
	return outs
}

// callOf builds the gateway's call from a request (held to
// cp-llm.complete.request.json already): the pack resolved and rendered,
// who calls, the stream's delta writer.
func (s *state) callOf(ctx context.Context, c *cli.Call, root string, req cli.Request, first bool) (*llm.Call, error) {
	call := &llm.Call{Subject: c.Identity.Subject, WorkOrderID: req.String("work_order_id"), SessionID: req.String("session_id"),
		ProviderID: req.String("provider_id"), StoreBodies: req.Bool("store_bodies")}
	if cl := c.Identity.Claims; cl != nil {
		call.Role = cl.Role
	}
	if call.SessionID != "" && call.WorkOrderID == "" {
		// A session spends its work order's budget: it is checked against
		// the sessions that work order opened, so it is named with it.
		return nil, cli.Usagef("--session %s names no work order: give --wo, the work order that started it", call.SessionID)
	}
	r := provider.Request{Model: req.String("model"), System: req.String("system")}
	if n, ok, err := req.Int("max_tokens"); err != nil {
		return nil, err
	} else if ok {
		r.MaxTokens = n
	}
	if v, ok := req["temperature"]; ok {
		f, err := number(v)
		if err != nil {
			return nil, cli.Invalidf("SCHEMA_VIOLATION", "temperature: %v", err)
		}
		r.Temperature = &f
	}
	if req.Has("schema") {
		r.Schema = req.Object("schema")
	}
	if id := req.String("prompt_pack_id"); id != "" {
		rp, err := resolvePack(ctx, root, id, req.Object("variables"))
		if err != nil {
			return nil, err
		}
		r.Prompt = rp.Text
		call.Pack = &llm.Pack{ID: rp.PromptPackID, Version: rp.Version, SHA256: rp.SHA256, Providers: rp.Providers,
			Models: rp.Models, MaxTokens: rp.MaxTokens}
	} else {
		r.Prompt = req.String("prompt")
		if call.Role != "worker" {
			c.Logf("a raw prompt is ungoverned: recorded as a weakened control (weakened_control: raw_prompt); use a registered prompt pack")
		}
	}
	for _, k := range []string{"handler", "mode", "decision_seq"} {
		if v, ok := req[k]; ok {
			if call.Route == nil {
				call.Route = map[string]any{}
			}
			call.Route[k] = v
		}
	}
	call.Request = r
	if req.Bool("stream") {
		if !first {
			return nil, cli.Usagef("stream: deltas are for the first call of a run; a stream of calls is answered one envelope per call")
		}
		call.OnDelta = deltaWriter(c.Stdout)
	}
	return call, nil
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Float64()
	case float64:
		return x, nil
	case string:
		return strconv.ParseFloat(x, 64)
	}
	return 0, fmt.Errorf("not a number")
}

// deltaWriter writes each piece of a streamed answer as one line,
// {"status":"delta","text":...}, flushed at once: a downstream binary skips
// these lines and takes the envelope after them. A write that fails (the
// reader went away) stops the call, which is still recorded and charged.
func deltaWriter(w io.Writer) func(provider.Delta) error {
	f, _ := w.(interface{ Flush() error })
	return func(d provider.Delta) error {
		b, err := json.Marshal(d.Text)
		if err != nil {
			return err
		}
		line := make([]byte, 0, len(b)+32)
		line = append(line, `{"status":"delta","text":`...)
		line = append(line, b...)
		line = append(line, "}\n"...)
		if _, err := w.Write(line); err != nil {
			return err
		}
		if f != nil {
			return f.Flush()
		}
		return nil
	}
}

func completeText(w io.Writer, result any) error {
	r := result.(answer).Result
	fmt.Fprintf(w, "%s\n", r.Text)
	pack := "raw prompt (weakened control)"
	if r.PromptPackID != "" {
		pack = r.PromptPackID + " " + r.PromptVersion
	}
	_, err := fmt.Fprintf(w, "-- %s %s (%s): %d in, %d out, %d micro-USD; %s; LLM_CALL HO2 seq %d\n",
		r.ProviderID, r.Model, r.RequestModel, r.Usage.InputTokens, r.Usage.OutputTokens, r.CostMicroUSD, pack, r.Seq)
	return err
}
