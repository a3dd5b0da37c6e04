package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm/price"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
)

// Codes of the gateway's refusals (internal/cli: all 1).
const (
	// CodeBudgetExceeded: the call's largest possible spend would pass a
	// budget (the work order's, a session's, a cap).
	CodeBudgetExceeded = "BUDGET_EXCEEDED"
	// CodePackRequired: a worker sent a raw prompt; workers call only
	// through registered prompt packs.
	CodePackRequired = "PROMPT_PACK_REQUIRED"
	// CodePackDisallows: the prompt pack does not allow the provider, the
	// model or the max_tokens asked.
	CodePackDisallows = "PROMPT_LIMIT"
)

// Statuses of an LLM_CALL entry.
const (
	StatusOK            = "ok"
	StatusProviderError = "provider_error"
	StatusCancelled     = "cancelled"
	StatusOutputInvalid = "output_invalid"
	// StatusNotCalled settles a reservation whose call was never made (a
	// stream of calls stopped before it): nothing is charged.
	StatusNotCalled = "not_called"
)

// DefaultMaxTokens is a call's max_tokens when neither the request, the
// prompt pack nor the model's configuration gives one.
const DefaultMaxTokens = 1024

// Pack is the prompt pack a call renders, as its caller resolved and
// checked it (registered, its file hashing to the registered hash).
type Pack struct {
	ID      string `json:"prompt_pack_id"`
	Version string `json:"version"`
	// SHA256 is the registered hash of the pack (prompts_registry.csv).
	SHA256 string `json:"sha256"`
	// Providers and Models the pack allows (empty: any the config lists).
	Providers []string `json:"-"`
	Models    []string `json:"-"`
	// MaxTokens caps a call's max_tokens (0: no cap of the pack's).
	MaxTokens int64 `json:"-"`
}

// Call is one governed completion.
type Call struct {
	// Subject and Role are who calls (the token's sub and role; the OS
	// user and "" while auth is off). A worker calls only with a pack.
	Subject string
	Role    string
	// WorkOrderID and SessionID: the work order whose budget the call
	// spends and the session it is made in ("" for none).
	WorkOrderID string
	SessionID   string
	// Pack is the prompt pack rendered into Request.Prompt; nil for a raw
	// prompt (ungoverned: recorded as a weakened control).
	Pack *Pack
	// ProviderID names the provider ("" for the pack's or the default).
	ProviderID string
	// Request is the model request; Model "" picks one, MaxTokens 0 the
	// default.
	Request provider.Request
	// StoreBodies writes the prompt and the response under blobs/.
	StoreBodies bool
	// Route is the routing decision the call follows, when cp-route's
	// result is the request (handler, mode, decision_seq): recorded.
	Route map[string]any
	// OnDelta, when set, streams the answer: each piece of text as it
	// comes. An error from it (the caller hung up) stops the call, which
	// is charged for the usage so far.
	OnDelta func(provider.Delta) error
}

// Result is a completed call and its evidence.
type Result struct {
	Text   string `json:"text"`
	Output any    `json:"output,omitempty"`
	// PromptSHA256 and ResponseSHA256 are sha256: of the prompt's and the
	// answer's UTF-8 text; SystemSHA256 of the system prompt, if any.
	PromptSHA256   string         `json:"prompt_sha256"`
	SystemSHA256   string         `json:"system_sha256,omitempty"`
	ResponseSHA256 string         `json:"response_sha256"`
	Usage          provider.Usage `json:"usage"`
	CostMicroUSD   int64          `json:"cost_micro_usd"`
	// ReservedMicroUSD is what the reservation held before the call.
	ReservedMicroUSD int64              `json:"reserved_micro_usd"`
	ReservationID    string             `json:"reservation_id"`
	ProviderID       string             `json:"provider_id"`
	Model            string             `json:"model"`
	RequestModel     string             `json:"request_model"`
	FinishReasons    []string           `json:"finish_reasons"`
	Attempts         []provider.Attempt `json:"attempts"`
	PromptPackID     string             `json:"prompt_pack_id,omitempty"`
	PromptVersion    string             `json:"prompt_pack_version,omitempty"`
	WorkOrderID      string             `json:"work_order_id,omitempty"`
	SessionID        string             `json:"session_id,omitempty"`
	// Budgets are the budgets the call was held to, spent or reserved
	// before it (the reservation not included).
	Budgets []Budget `json:"budgets,omitempty"`
	// Bodies are the blobs written (store_bodies), by role.
	Bodies map[string]string `json:"bodies,omitempty"`
	// DurationMS is the provider call's wall time.
	DurationMS    float64      `json:"duration_ms"`
	LedgerEntryID string       `json:"ledger_entry_id"`
	Seq           int64        `json:"seq"`
	Entry         ledger.Entry `json:"-"`
}

// Gateway makes governed calls on the plane at Root.
type Gateway struct {
	Root  string
	Actor plane.Actor
	// Options open providers (keys from Getenv, the HTTP client, retries).
	Options Options
	// Exporter, when set, receives one span per call (OTLP); a failed
	// export is a warning, never a failed call.
	Exporter *Exporter
	// Warnf prints a warning (nil: none).
	Warnf func(format string, args ...any)
	// Now is the clock of work-order checks (nil: time.Now).
	Now func() time.Time

	providers    *config.ProvidersDoc
	limits       *config.Limits
	loaded       bool
	limitsLoaded bool
}

func (g *Gateway) warnf(format string, args ...any) {
	if g.Warnf != nil {
		g.Warnf(format, args...)
	}
}

func (g *Gateway) now() time.Time {
	if g.Now != nil {
		return g.Now().UTC()
	}
	return nowUTC()
}

// load reads providers.json once per gateway.
func (g *Gateway) load() error {
	if g.loaded {
		return nil
	}
	doc, _, err := config.Providers(g.Root)
	if err != nil {
		return err
	}
	g.providers, g.loaded = doc, true
	return nil
}

// sessionLimits reads the router policy's limits once per gateway, when a
// call in a session first needs them (a call outside sessions never pays
// for the file).
func (g *Gateway) sessionLimits() (*config.Limits, error) {
	if !g.limitsLoaded {
		rp, _, err := config.RouterPolicy(g.Root)
		if err != nil {
			return nil, err
		}
		g.limits, g.limitsLoaded = rp.Limits, true
	}
	return g.limits, nil
}

// Providers returns the providers configuration in force.
func (g *Gateway) Providers() (*config.ProvidersDoc, error) {
	if err := g.load(); err != nil {
		return nil, err
	}
	return g.providers, nil
}

// Refusal is a call the gateway refused before asking any provider,
// recorded as LLM_REFUSED.
type Refusal struct {
	code     string
	Message  string
	Details  map[string]any
	Recorded *ledger.Entry
	Err      error // a refusal of another package (a work order's), if any
}

func (r *Refusal) Error() string { return r.Message }

// Code returns the refusal's code.
func (r *Refusal) Code() string { return r.code }

// Unwrap returns the underlying refusal, if another package made it.
func (r *Refusal) Unwrap() error { return r.Err }

// ErrorDetails names what was refused.
func (r *Refusal) ErrorDetails() map[string]any { return r.Details }

// ErrorHint says what to do.
func (r *Refusal) ErrorHint() string {
	switch r.code {
	case CodePackRequired:
		return "workers call models only through a registered prompt pack: send prompt_pack_id and variables"
	case CodePackDisallows:
		return "the pack's pack.json lists the providers, models and max_tokens it allows"
	}
	var h interface{ ErrorHint() string }
	if errors.As(r.Err, &h) {
		return h.ErrorHint()
	}
	return ""
}

// RecordedAs names the LLM_REFUSED entry.
func (r *Refusal) RecordedAs() (string, int64) {
	if r.Recorded == nil {
		return "", 0
	}
	return r.Recorded.ID, r.Recorded.Seq
}

// CallError is a call that reached a provider and failed (a provider
// error, a cancelled or cut stream, structured output that does not
// validate): its LLM_CALL entry is recorded and its usage charged.
type CallError struct {
	Err    *provider.Error
	Result *Result // the evidence: usage, cost, the entry
}

func (e *CallError) Error() string { return e.Err.Error() }

// Code returns the provider error's code.
func (e *CallError) Code() string { return e.Err.Code() }

// Unwrap returns the provider error.
func (e *CallError) Unwrap() error { return e.Err }

// ErrorDetails is the provider error's, with the charge and the entry.
func (e *CallError) ErrorDetails() map[string]any {
	d := e.Err.ErrorDetails()
	if e.Result != nil {
		d["cost_micro_usd"] = e.Result.CostMicroUSD
		d["reservation_id"] = e.Result.ReservationID
		d["provider_id"] = e.Result.ProviderID
		if e.Result.LedgerEntryID != "" {
			d["llm_call_entry_id"] = e.Result.LedgerEntryID
		}
	}
	return d
}

// ErrorHint is the provider error's.
func (e *CallError) ErrorHint() string { return e.Err.ErrorHint() }

// RecordedAs names the LLM_CALL entry.
func (e *CallError) RecordedAs() (string, int64) {
	if e.Result == nil {
		return "", 0
	}
	return e.Result.LedgerEntryID, e.Result.Seq
}

// prepared is a call resolved and checked, ready to reserve.
type prepared struct {
	call     *Call
	target   *Target
	prov     provider.Provider
	req      provider.Request
	max      Spend
	rid      string
	budgets  []Budget
	approval *workorder.Approval
}

// Complete makes one governed call (see CompleteBatch).
func (g *Gateway) Complete(ctx context.Context, c *Call) (*Result, error) {
	rs, err := g.CompleteBatch(ctx, []*Call{c})
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// CompleteBatch makes calls in order, their evidence group-committed: it
// checks each (a worker only with a pack; the pack's providers, models and
// max_tokens; the work order approved, the session one of its own, the
// pack in its scope), then, holding the budget ledger's lock, sums what
// every budget has spent or holds reserved (from the ledger's index) and
// appends one LLM_RESERVED per call whose largest possible spend
// (Target.MaxCost, max_tokens plus the input bound) fits every budget;
// releases the lock; calls the providers one by one; and appends one
// LLM_CALL per call, settling its reservation to the usage reported (a
// call that failed part-way: the usage so far). A reservation never
// settled (a caller killed) counts in full in every later sum.
//
// It returns the results of the calls that succeeded, in order, and the
// error of the first that did not (nil when all did): the calls after it
// are not made (their reservations settled as not_called). A refusal is
// recorded as LLM_REFUSED; a provider's failure as the LLM_CALL it is.
func (g *Gateway) CompleteBatch(ctx context.Context, calls []*Call) ([]*Result, error) {
	if err := g.load(); err != nil {
		return nil, err
	}
	dir := BudgetLedgerDir(g.Root)
	store, tier, err := plane.OpenLedger(dir, plane.ForAppend, g.Actor)
	if err != nil {
		return nil, err
	}
	defer store.Close()

	ps := make([]*prepared, 0, len(calls))
	var stop error
	for _, c := range calls {
		p, err := g.prepare(ctx, c)
		if err != nil {
			stop = g.recordRefusal(ctx, store, c, p, err)
			break
		}
		ps = append(ps, p)
	}
	// The batch's in-flight marks, released when it returns: after its
	// LLM_CALLs are durable (see inflight.go).
	var marks *inflightHolder
	if inflightSupported && bootID() != "" && len(ps) > 0 {
		if marks, err = openInflight(dir); err != nil {
			g.warnf("%s: %v: this call's reservation is not marked in flight (if its caller is killed, it counts in full and is never settled)", inflightFile(dir), err)
			marks = nil
		} else {
			defer marks.close()
		}
	}
	// While the reservations are made durable, the first call's provider
	// does its SDK's first-use work on the other core (provider.Warmer).
	warmed := warm(ps)
	ps, rerr := g.reserve(ctx, dir, tier, store, ps, marks)
	warmed()
	if rerr != nil {
		stop = rerr
	}
	if len(ps) == 0 {
		return nil, stop
	}
	results, cerr := g.run(ctx, store, ps)
	if cerr != nil {
		stop = cerr
	}
	return results, stop
}

// warmed holds the kinds of provider (Name) whose SDK this process has
// warmed: the SDK's caches are the process's, so once is enough.
var warmed sync.Map

// warm starts the first call's provider.Warmer, if its provider is one, on
// a goroutine of its own, and returns what waits for it to end: called
// before the calls are made, so the goroutine never outlives the batch
// (what it has not finished by then the call would have done itself).
func warm(ps []*prepared) (wait func()) {
	if len(ps) == 0 {
		return func() {}
	}
	w, ok := ps[0].prov.(provider.Warmer)
	if !ok {
		return func() {}
	}
	if _, done := warmed.LoadOrStore(ps[0].prov.Name(), true); done {
		return func() {} // a stream's later batches: the SDK is warm
	}
	done := make(chan struct{})
	req := ps[0].req
	go func() {
		defer close(done)
		w.Warm(req)
	}()
	return func() { <-done }
}

// refusal wraps a check's error as a Refusal to record.
func refusal(code, format string, args ...any) *Refusal {
	return &Refusal{code: code, Message: fmt.Sprintf(format, args...)}
}

// packLimit is PROMPT_LIMIT: the call's resolved provider, model or
// max_tokens (field, requested) is outside its prompt pack's limits. This
// is the one check of a pack's limits: it runs here, once the provider and
// model a call goes to are known, and is recorded as LLM_REFUSED.
func packLimit(field string, requested any, format string, args ...any) *Refusal {
	r := refusal(CodePackDisallows, format, args...)
	r.Details = map[string]any{"field": field, "requested": requested}
	return r
}

// prepare resolves and checks one call, before any budget is touched.
// The *prepared it returns with an error holds what is known (for the
// refusal's record).
func (g *Gateway) prepare(ctx context.Context, c *Call) (*prepared, error) {
	p := &prepared{call: c, req: c.Request}
	if c.Pack == nil && c.Role == "worker" {
		return p, refusal(CodePackRequired, "a worker calls models only through a registered prompt pack: a raw prompt is refused")
	}
	if c.Role == "worker" && c.WorkOrderID == "" {
		return p, refusal("WO_REQUIRED", "a worker calls models only under its work order")
	}
	pid, model := c.ProviderID, p.req.Model
	if pk := c.Pack; pk != nil {
		if pid == "" && len(pk.Providers) > 0 && !slices.Contains(pk.Providers, g.providers.DefaultProvider) {
			pid = pk.Providers[0]
		}
		if model == "" && len(pk.Models) > 0 {
			id := pid
			if id == "" {
				id = g.providers.DefaultProvider
			}
			if pv := g.providers.Provider(id); pv != nil {
				for _, m := range pv.Models {
					if slices.Contains(pk.Models, m.ID) {
						model = m.ID
						break
					}
				}
			}
		}
	}
	t, err := Resolve(g.providers, pid, model)
	if err != nil {
		return p, err
	}
	p.target = t
	p.req.Model = t.Model.ID
	if p.req.MaxTokens == 0 {
		switch {
		case c.Pack != nil && c.Pack.MaxTokens > 0:
			p.req.MaxTokens = c.Pack.MaxTokens
		case t.Model.MaxTokens > 0:
			p.req.MaxTokens = min(t.Model.MaxTokens, DefaultMaxTokens)
		default:
			p.req.MaxTokens = DefaultMaxTokens
		}
	}
	if pk := c.Pack; pk != nil {
		switch {
		case len(pk.Providers) > 0 && !slices.Contains(pk.Providers, t.Provider.ID):
			return p, packLimit("provider", t.Provider.ID, "prompt pack %s allows providers %v, not %s", pk.ID, pk.Providers, t.Provider.ID)
		case len(pk.Models) > 0 && !slices.Contains(pk.Models, t.Model.ID):
			return p, packLimit("model", t.Model.ID, "prompt pack %s allows models %v, not %s", pk.ID, pk.Models, t.Model.ID)
		case pk.MaxTokens > 0 && p.req.MaxTokens > pk.MaxTokens:
			return p, packLimit("max_tokens", p.req.MaxTokens, "prompt pack %s allows max_tokens up to %d, not %d", pk.ID, pk.MaxTokens, p.req.MaxTokens)
		}
	}
	if err := t.Check(&p.req); err != nil {
		return p, err
	}
	if err := p.req.Check(); err != nil {
		return p, err
	}
	if p.req.Schema != nil {
		if _, err := provider.CompileSchema(p.req.Schema); err != nil {
			return p, err
		}
	}
	maxCost, err := t.MaxCost(&p.req)
	if err != nil {
		return p, err
	}
	p.max = Spend{Calls: 1, Tokens: provider.InputTokenBound(&p.req) + p.req.MaxTokens, MicroUSD: maxCost}
	if c.WorkOrderID != "" {
		if err := g.checkWorkOrder(ctx, p); err != nil {
			return p, err
		}
	}
	if p.prov, err = Open(t, g.Options); err != nil {
		return p, err
	}
	return p, nil
}

// checkWorkOrder holds a call to its work order: approved (G2's checks),
// started when a session is named, the session one it opened, the pack
// in its scope.prompt_packs.
func (g *Gateway) checkWorkOrder(ctx context.Context, p *prepared) error {
	c := p.call
	// One read of the work order's state for both checks: it grows with
	// the work order's entries (its LLM calls among them).
	a, st, err := workorder.ApprovedState(ctx, g.Root, c.WorkOrderID, g.now())
	if err != nil {
		return &Refusal{code: codeOf(err), Message: err.Error(), Err: err}
	}
	p.approval = a
	if c.SessionID != "" {
		if !slices.ContainsFunc(st.Sessions, func(s workorder.Session) bool { return s.ID == c.SessionID }) {
			return refusal(workorder.CodeSessionMismatch, "session %s was not started under work order %s", c.SessionID, c.WorkOrderID)
		}
	}
	if c.Pack != nil && !slices.Contains(a.WorkOrder.Scope.PromptPacks, c.Pack.ID) {
		return refusal(workorder.CodeScope, "prompt pack %s is not in work order %s's scope.prompt_packs %v", c.Pack.ID, c.WorkOrderID, a.WorkOrder.Scope.PromptPacks)
	}
	return nil
}

func codeOf(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return "INTERNAL"
}

// recordRefusal records a refused call as LLM_REFUSED and returns the
// error to answer. Errors that are not refusals (a bad request, a missing
// key, a configuration that does not load) are returned unrecorded: no
// decision was made about the call.
func (g *Gateway) recordRefusal(ctx context.Context, store ledger.Store, c *Call, p *prepared, err error) error {
	var r *Refusal
	if !errors.As(err, &r) {
		var le *Error
		if !errors.As(err, &le) || le.code == CodeKeyMissing {
			return err
		}
		// A provider or model the configuration does not list: refused.
		r = &Refusal{code: le.code, Message: le.Message, Err: err}
	}
	meta := baseMeta(c, p)
	meta["code"] = r.code
	es, aerr := store.Append(context.WithoutCancel(ctx), []ledger.Draft{{EventType: EventRefused, SubmissionID: c.WorkOrderID,
		Decision: "REFUSED", Reason: r.Message, PromptsUsed: promptsUsed(c.Pack), Metadata: meta}})
	if aerr != nil {
		return errors.Join(r, fmt.Errorf("recording the refusal: %w", aerr))
	}
	r.Recorded = &es[0]
	return r
}

// baseMeta is the metadata every entry of a call carries.
func baseMeta(c *Call, p *prepared) map[string]any {
	m := map[string]any{"_tier": "HO2", "subject": c.Subject}
	if c.Role != "" {
		m["role"] = c.Role
	}
	if c.WorkOrderID != "" {
		m["work_order_id"] = c.WorkOrderID
	}
	if c.SessionID != "" {
		m["session_id"] = c.SessionID
	}
	if c.Pack != nil {
		m["prompts_used"] = []any{map[string]any{"prompt_pack_id": c.Pack.ID, "version": c.Pack.Version, "sha256": c.Pack.SHA256}}
	} else {
		m["prompts_used"] = []any{}
		m["weakened_control"] = "raw_prompt"
	}
	if len(c.Route) > 0 {
		m["route"] = c.Route
	}
	if p != nil && p.target != nil {
		m["provider_id"] = p.target.Provider.ID
		m["gen_ai.provider.name"] = p.target.Provider.Type
		m["gen_ai.request.model"] = p.target.Model.ID
	} else if c.ProviderID != "" {
		m["provider_id"] = c.ProviderID
	}
	return m
}

func promptsUsed(pk *Pack) []string {
	if pk == nil {
		return nil
	}
	return []string{pk.ID + "@" + pk.Version}
}

// budgetsOf lists the budgets call p is held to: its work order's and
// session's spent from wo, the caps' from all.
func (g *Gateway) budgetsOf(p *prepared, wo *woSpend, all *capSpend) ([]Budget, error) {
	var bs []Budget
	c := p.call
	if a := p.approval; a != nil {
		b := a.WorkOrder.Budget
		lim := Limit{Calls: ptr(0), Tokens: ptr(0), MicroUSD: ptr(0)} // absent: nothing of its kind
		if b.LLMCalls != nil {
			lim.Calls = ptr(*b.LLMCalls)
		}
		if b.LLMTokens != nil {
			lim.Tokens = ptr(*b.LLMTokens)
		}
		if b.LLMCostUSD != nil {
			r, err := price.Parse(b.LLMCostUSD.String())
			if err != nil {
				return nil, refusal(CodeBudgetExceeded, "work order %s: budget.llm_cost_usd %s is not a decimal of at most 6 places: nothing can be spent under it", c.WorkOrderID, b.LLMCostUSD)
			}
			lim.MicroUSD = ptr(int64(r))
		}
		bs = append(bs, Budget{Scope: "work_order", Key: c.WorkOrderID, Limit: lim, Spent: wo.ofWorkOrder()})
		if c.SessionID != "" {
			lim, err := g.sessionLimits()
			if err != nil {
				return nil, err
			}
			if lim != nil && lim.LLMCallsPerSession != nil {
				bs = append(bs, Budget{Scope: "session", Key: c.SessionID, Limit: Limit{Calls: ptr(*lim.LLMCallsPerSession)}, Spent: wo.ofSession(c.SessionID)})
			}
		}
	}
	if caps := g.providers.Caps; caps != nil && all != nil {
		if caps.PlaneMicroUSD != nil {
			bs = append(bs, Budget{Scope: "plane", Limit: Limit{MicroUSD: ptr(*caps.PlaneMicroUSD)}, Spent: all.ofPlane()})
		}
		if v, ok := caps.Providers[p.target.Provider.ID]; ok {
			bs = append(bs, Budget{Scope: "provider", Key: p.target.Provider.ID, Limit: Limit{MicroUSD: ptr(v)},
				Spent: all.ofProvider(p.target.Provider.ID)})
		}
		if v, ok := caps.Subjects[c.Subject]; ok {
			bs = append(bs, Budget{Scope: "subject", Key: c.Subject, Limit: Limit{MicroUSD: ptr(v)},
				Spent: all.ofSubject(c.Subject)})
		}
	}
	return bs, nil
}

func ptr(v int64) *int64 { return &v }

// reserve holds the budget ledger, sums, and appends the reservations of
// the calls that fit (and the refusal of the first that does not), as one
// batch. It returns the calls reserved.
//
// The reservations it sums that were never settled and whose callers are
// gone (abandoned: see inflight.go) it settles in full first, in the same
// append (StatusAbandoned): the sums do not change, the charge becomes an
// entry. Each reservation it appends is marked in flight by marks (nil:
// not marked).
func (g *Gateway) reserve(ctx context.Context, dir string, tier plane.Tier, store ledger.Store, ps []*prepared, marks *inflightHolder) ([]*prepared, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	release, err := holdLedger(ctx, dir, store)
	if err != nil {
		return nil, err
	}
	defer release()
	j := newJudge(dir)
	j.store = store
	defer j.close()
	var drafts []ledger.Draft
	spends := map[string]*woSpend{}
	var all *capSpend
	caps := g.providers.Caps
	capped := caps != nil && (caps.PlaneMicroUSD != nil || len(caps.Providers) > 0 || len(caps.Subjects) > 0)
	wos := slices.ContainsFunc(ps, func(p *prepared) bool { return p.call.WorkOrderID != "" })
	// The ledger as the sums read it, once, under the lock.
	var st ledger.State
	if capped || wos {
		if st, err = store.State(ctx); err != nil {
			return nil, err
		}
	}
	if capped {
		// The caps sum the whole ledger: through its tally, O(entries
		// appended since the last call) (tally.go).
		key, err := tallyKey(tier)
		if err != nil {
			return nil, err
		}
		t, _, err := loadTallyAt(ctx, dir, store, st, key, false, g.warnf)
		if err != nil {
			return nil, err
		}
		all = t.spend()
		ds, _ := j.settle(all.open, "next_call")
		drafts = append(drafts, ds...)
	}
	var woKey []byte
	if wos {
		if woKey, err = woTallyKeyOf(tier); err != nil {
			return nil, err
		}
	}
	var stop *BudgetError
	var stopErr error
	n := 0
	for _, p := range ps {
		wo := spends[p.call.WorkOrderID]
		if wo == nil && p.call.WorkOrderID != "" {
			// The work order's sums: through its tally, O(its entries
			// appended since its last call) (wotally.go).
			t, err := loadWOTally(ctx, dir, store, st, woKey, p.call.WorkOrderID, g.warnf)
			if err != nil {
				return nil, err
			}
			wo = t.spend()
			ds, _ := j.settle(wo.open, "next_call")
			drafts = append(drafts, ds...)
			spends[p.call.WorkOrderID] = wo
		}
		bs, err := g.budgetsOf(p, wo, all)
		if err != nil {
			stopErr = err
			break
		}
		p.budgets = bs
		for _, b := range bs {
			if kind, _, would := b.over(p.max); kind != "" {
				stop = &BudgetError{Budget: b, Kind: kind, Would: would, Max: p.max}
				break
			}
		}
		if stop != nil {
			meta := baseMeta(p.call, p)
			meta["code"] = CodeBudgetExceeded
			meta["budget_scope"], meta["budget_kind"] = stop.Budget.Scope, stop.Kind
			meta["max_cost_micro_usd"], meta["max_tokens_total"] = p.max.MicroUSD, p.max.Tokens
			drafts = append(drafts, ledger.Draft{EventType: EventRefused, SubmissionID: p.call.WorkOrderID, Decision: "REFUSED",
				Reason: stop.Error(), PromptsUsed: promptsUsed(p.call.Pack), Metadata: meta})
			break
		}
		p.rid = newReservationID()
		meta := baseMeta(p.call, p)
		meta["reservation_id"] = p.rid
		if wo != nil {
			// What the work order's sums were believed to be: a read
			// hidden from this call (and sealed in its tally) leaves a
			// trace an audit finds (recheckWOTallies).
			meta["wo_spent"] = wo.ofWorkOrder().fields()
		}
		if marks != nil {
			// Marked before it is durable: no judge ever sees it unmarked
			// while its caller lives.
			if err := marks.hold(p.rid); err != nil {
				g.warnf("%s: %v: reservation %s is not marked in flight", inflightFile(dir), err, p.rid)
			} else {
				meta["inflight_boot_id"] = bootID()
				meta["inflight_file"] = marks.id
			}
		}
		meta["max_cost_micro_usd"], meta["max_tokens_total"] = p.max.MicroUSD, p.max.Tokens
		meta["gen_ai.request.max_tokens"] = p.req.MaxTokens
		d := ledger.Draft{EventType: EventReserved, SubmissionID: p.call.WorkOrderID, Decision: "RESERVED",
			Reason: fmt.Sprintf("up to %d micro-USD, %d tokens", p.max.MicroUSD, p.max.Tokens), PromptsUsed: promptsUsed(p.call.Pack), Metadata: meta}
		drafts = append(drafts, d)
		// This batch's reservations count for the calls after it.
		pending := &ledger.Entry{EventType: EventReserved, Metadata: meta}
		if wo != nil {
			wo.open.add(pending)
		}
		if all != nil {
			all.open.add(pending)
		}
		n++
	}
	if len(drafts) == 0 {
		return nil, stopErr
	}
	es, err := store.Append(ctx, drafts)
	if err != nil {
		// Nothing reserved (an append is one batch): nothing to call.
		return nil, err
	}
	if n == 0 && stop == nil {
		return nil, stopErr // settlements only
	}
	if stop != nil {
		stop.Recorded = &es[len(es)-1]
		return ps[:n], stop
	}
	return ps[:n], stopErr
}

// run calls the providers of the reserved calls in order, stopping at the
// first failure, and settles every reservation in one append.
func (g *Gateway) run(ctx context.Context, store ledger.Store, ps []*prepared) ([]*Result, error) {
	results := make([]*Result, 0, len(ps))
	drafts := make([]ledger.Draft, 0, len(ps))
	var failed *CallError
	var stop error
	for _, p := range ps {
		if failed != nil || stop != nil {
			meta := baseMeta(p.call, p)
			meta["reservation_id"], meta["status"] = p.rid, StatusNotCalled
			meta["cost_micro_usd"] = int64(0)
			meta["gen_ai.usage.input_tokens"], meta["gen_ai.usage.output_tokens"] = int64(0), int64(0)
			drafts = append(drafts, ledger.Draft{EventType: EventCall, SubmissionID: p.call.WorkOrderID, Decision: StatusNotCalled,
				Reason: "not called: an earlier call of the stream failed", PromptsUsed: promptsUsed(p.call.Pack), Metadata: meta})
			continue
		}
		r, d, err := g.call(ctx, p)
		if err != nil && d == nil {
			// Nothing reached the provider and nothing is known: release.
			stop = err
			meta := baseMeta(p.call, p)
			meta["reservation_id"], meta["status"] = p.rid, StatusNotCalled
			meta["cost_micro_usd"] = int64(0)
			meta["gen_ai.usage.input_tokens"], meta["gen_ai.usage.output_tokens"] = int64(0), int64(0)
			meta["error"] = err.Error()
			drafts = append(drafts, ledger.Draft{EventType: EventCall, SubmissionID: p.call.WorkOrderID, Decision: StatusNotCalled,
				Reason: "not called: " + err.Error(), PromptsUsed: promptsUsed(p.call.Pack), Metadata: meta})
			continue
		}
		drafts = append(drafts, *d)
		results = append(results, r)
		if err != nil {
			failed = &CallError{Err: err.(*provider.Error), Result: r}
		}
	}
	es, aerr := store.Append(context.WithoutCancel(ctx), drafts)
	for i, r := range results {
		if i < len(es) {
			r.Entry, r.LedgerEntryID, r.Seq = es[i], es[i].ID, es[i].Seq
		}
	}
	if aerr != nil {
		err := fmt.Errorf("recording LLM_CALL: %w", aerr)
		if failed != nil {
			return nil, errors.Join(failed, err)
		}
		return nil, err
	}
	for _, r := range results {
		g.export(ctx, r)
	}
	if failed != nil {
		return results[:len(results)-1], failed
	}
	return results, stop
}

// call asks the provider and builds the LLM_CALL draft. An error with a
// nil draft means nothing reached the provider.
func (g *Gateway) call(ctx context.Context, p *prepared) (*Result, *ledger.Draft, error) {
	c := p.call
	start := time.Now()
	var resp *provider.Response
	var err error
	if c.OnDelta != nil {
		resp, err = p.prov.Stream(ctx, p.req, c.OnDelta)
	} else {
		resp, err = p.prov.Complete(ctx, p.req)
	}
	dur := time.Since(start)
	var perr *provider.Error
	if err != nil && !errors.As(err, &perr) {
		if ctx.Err() != nil {
			perr = &provider.Error{Provider: p.target.Provider.Type, Message: err.Error(), Err: err}
			perr = cancelledError(perr)
		} else {
			return nil, nil, err
		}
	}
	r := &Result{ReservationID: p.rid, ProviderID: p.target.Provider.ID, RequestModel: p.req.Model, Model: p.req.Model,
		ReservedMicroUSD: p.max.MicroUSD, PromptSHA256: sha(p.req.Prompt), WorkOrderID: c.WorkOrderID, SessionID: c.SessionID,
		Budgets: p.budgets, DurationMS: float64(dur.Microseconds()) / 1000}
	if p.req.System != "" {
		r.SystemSHA256 = sha(p.req.System)
	}
	if c.Pack != nil {
		r.PromptPackID, r.PromptVersion = c.Pack.ID, c.Pack.Version
	}
	status := StatusOK
	if resp != nil {
		r.Text, r.Output, r.Usage, r.Attempts = resp.Text, resp.Output, resp.Usage, resp.Attempts
		r.FinishReasons = resp.FinishReasons
		if resp.Model != "" {
			r.Model = resp.Model
		}
	}
	if perr != nil {
		r.Text, r.Usage, r.Attempts = perr.Text, perr.Usage, perr.Attempts
		switch perr.Code() {
		case provider.CodeCancelled:
			status = StatusCancelled
		case provider.CodeOutputInvalid:
			status = StatusOutputInvalid
		default:
			status = StatusProviderError
		}
	}
	if r.FinishReasons == nil {
		r.FinishReasons = []string{}
	}
	if r.Attempts == nil {
		r.Attempts = []provider.Attempt{}
	}
	r.ResponseSHA256 = sha(r.Text)
	cost, cerr := p.target.Cost(r.Usage)
	if cerr != nil {
		cost = p.max.MicroUSD // an overflow: charge the reservation, never less
	}
	r.CostMicroUSD = cost
	if c.StoreBodies {
		bodies, berr := writeBlobs(g.Root, p.req.System, p.req.Prompt, r.Text)
		if berr != nil {
			g.warnf("storing the bodies under blobs/: %v", berr)
		}
		r.Bodies = bodies
	}
	meta := baseMeta(c, p)
	meta["reservation_id"], meta["status"] = p.rid, status
	meta["gen_ai.operation.name"] = "chat"
	meta["gen_ai.response.model"] = r.Model
	meta["gen_ai.usage.input_tokens"], meta["gen_ai.usage.output_tokens"] = r.Usage.InputTokens, r.Usage.OutputTokens
	fr := make([]any, len(r.FinishReasons))
	for i, f := range r.FinishReasons {
		fr[i] = f
	}
	meta["gen_ai.response.finish_reasons"] = fr
	meta["gen_ai.request.max_tokens"] = p.req.MaxTokens
	if p.req.Temperature != nil {
		meta["gen_ai.request.temperature"] = strconv.FormatFloat(*p.req.Temperature, 'f', -1, 64)
	}
	if resp != nil && resp.ID != "" {
		meta["gen_ai.response.id"] = resp.ID
	}
	if r.Usage.Estimated {
		meta["usage_estimated"] = true
	}
	meta["duration_ms"] = strconv.FormatFloat(r.DurationMS, 'f', 3, 64)
	meta["prompt_sha256"], meta["response_sha256"] = r.PromptSHA256, r.ResponseSHA256
	if r.SystemSHA256 != "" {
		meta["system_sha256"] = r.SystemSHA256
	}
	meta["cost_micro_usd"], meta["reserved_micro_usd"] = r.CostMicroUSD, p.max.MicroUSD
	meta["stream"] = c.OnDelta != nil
	if p.req.Schema != nil {
		meta["structured_output"] = true
	}
	as := make([]any, len(r.Attempts))
	for i, a := range r.Attempts {
		m := map[string]any{"status": int64(a.Status)}
		if a.Error != "" {
			m["error"] = a.Error
		}
		if a.WaitMS != 0 {
			m["wait_ms"] = a.WaitMS
		}
		as[i] = m
	}
	meta["attempts"] = as
	if len(r.Bodies) > 0 {
		b := map[string]any{}
		for k, v := range r.Bodies {
			b[k] = v
		}
		meta["bodies"] = b
	}
	reason := fmt.Sprintf("%d input and %d output tokens, %d micro-USD", r.Usage.InputTokens, r.Usage.OutputTokens, r.CostMicroUSD)
	if perr != nil {
		meta["code"] = perr.Code()
		if perr.Status != 0 {
			meta["http_status"] = int64(perr.Status)
		}
		reason = perr.Error() + "; charged " + reason
	}
	d := &ledger.Draft{EventType: EventCall, SubmissionID: c.WorkOrderID, Decision: status, Reason: reason,
		PromptsUsed: promptsUsed(c.Pack), Metadata: meta}
	if perr != nil {
		return r, d, perr
	}
	return r, d, nil
}

// cancelledError turns a context's end into the provider layer's
// CANCELLED.
func cancelledError(e *provider.Error) *provider.Error {
	_, err := provider.Retry{MaxAttempts: 1}.Do(context.Background(), e.Provider, func(context.Context) (*provider.Response, error) {
		return nil, &provider.AttemptError{Message: e.Message, Final: true, Err: errors.Join(provider.ErrStopped, e.Err)}
	})
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe
	}
	return e
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}
