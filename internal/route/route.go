// Package route decides where a request goes (DESIGN.md §9): by the
// declarative rules of config/router_policy.json first, by a classifier
// only when no rule matches, and by the default route otherwise.
//
// A policy is compiled once (Compile): every expression is parsed, vetted
// (Forbidden: nothing that reads outside the request) and compiled; every
// handler it names must be provided by an installed package
// (ROUTE_HANDLER_UNKNOWN) that declares the capabilities the route
// requires (ROUTE_CAPABILITY_MISSING). Decide then answers one request:
// deny rules first (the first that holds denies), then the routes in order
// (the first whose when holds decides), then the classifier if the policy
// configures one (its answer is taken at or above the threshold, 0.8 by
// default, for a known handler, with mode tools_first; below it, or when
// the classifier is unavailable or fails, the default route, and the
// decision says why), then the default route. Each expression runs under
// EvalTimeout. A decision depends only on the request, the policy, the
// session's LLM calls so far and the classifier's answer, all of which the
// decision records, so it can be replayed (Replay).
package route

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"slices"

	"github.com/control-plane/cp/internal/config"
)

// DefaultHandler is the handler every plane provides without a package:
// the built-in default route's ("default": no specialist; the caller
// answers with its own tools). No capability is declared for it.
const DefaultHandler = "default"

// DefaultThreshold is the classifier's confidence threshold when the
// policy sets none (DESIGN.md §9): at or above it the classified handler
// is taken.
const DefaultThreshold = "0.8"

// Modes of a target.
const (
	ModeToolsFirst  = "tools_first"
	ModeLLMAssisted = "llm_assisted"
)

// Handler is a handler an installed package provides, as its
// capabilities.json declares it.
type Handler struct {
	Name         string   `json:"handler"`
	PackageID    string   `json:"package_id"`
	Path         string   `json:"path"` // the capabilities.json that declares it, plane-relative
	Capabilities []string `json:"capabilities"`
	Description  string   `json:"description,omitempty"`
}

// Confidence is a classifier's confidence: an exact decimal in [0, 1]
// ("0.8", "0.79", "1"), compared with the threshold exactly, never
// through a float: 0.8 is at the threshold, 0.79999 below it.
type Confidence string

// decimal reports whether c is "0", "0." and 1 to 18 digits, "1", or
// "1." and 1 to 18 zeros (no regexp: its compilation would cost every
// process that links this package at start-up).
func (c Confidence) decimal() bool {
	s := string(c)
	if s == "" || (s[0] != '0' && s[0] != '1') {
		return false
	}
	if len(s) == 1 {
		return true
	}
	frac := s[2:]
	if s[1] != '.' || len(frac) < 1 || len(frac) > 18 {
		return false
	}
	for i := 0; i < len(frac); i++ {
		if frac[i] < '0' || frac[i] > '9' || (s[0] == '1' && frac[i] != '0') {
			return false
		}
	}
	return true
}

func (c Confidence) rat() (*big.Rat, bool) {
	if !c.decimal() {
		return nil, false
	}
	return new(big.Rat).SetString(string(c))
}

// ClassifyQuery is what a classifier is asked: the router prompt pack, the
// request, and the handlers it may answer with.
type ClassifyQuery struct {
	PromptPackID string
	Request      map[string]any
	Handlers     []string
}

// Classifier classifies a request no rule matched. The gateway (cp-llm's
// engine, the router prompt pack with structured output) is wired in
// through it; evidence is recorded with the decision (the LLM_CALL entry,
// the model).
type Classifier interface {
	Classify(ctx context.Context, q ClassifyQuery) (handler string, confidence Confidence, evidence map[string]any, err error)
}

// AskedClassifier is a Classifier whose call may have been made already,
// before the session's count was read again under the ledger's lock
// (cp-route asks the gateway before it takes the lock). Once asked, its
// answer is the decision's even if the count has since reached the limit:
// the call was made, and the decision records it and counts it.
type AskedClassifier interface {
	Classifier
	Asked() bool
}

// alreadyAsked reports whether clf's call has been made.
func alreadyAsked(clf Classifier) bool {
	a, ok := clf.(AskedClassifier)
	return ok && a.Asked()
}

// Policy is a compiled router policy.
type Policy struct {
	Doc *config.RouterPolicyDoc
	// Bytes are the policy file's bytes and SHA256 their hash
	// ("sha256:<hex>"): what a decision records and a replay reads back.
	Bytes  []byte
	SHA256 string
	routes []*expr
	deny   []*expr
	// reasons of the routes and deny rules, in words, made once
	routeReasons, denyReasons []string
	// threshold is the classifier's, exact.
	threshold     *big.Rat
	thresholdText string
	handlers      []string // known handlers, sorted: what a classifier may answer
	known         map[string]bool
}

// Compile validates the policy file's bytes (config.ParseRouterPolicy),
// compiles and vets its expressions, and checks its handlers against
// handlers (by name): each route's and the default route's handler must be
// provided, with the capabilities the route requires. handlers nil skips
// that check (a replay judges the decision, not today's packages).
func Compile(b []byte, handlers map[string]Handler) (*Policy, error) {
	doc, err := config.ParseRouterPolicy(b)
	if err != nil {
		return nil, &Error{code: "ROUTE_POLICY_INVALID", msg: err.Error(), hint: policyHint}
	}
	return CompileDoc(doc, b, handlers)
}

// CompileDoc is Compile of a policy whose bytes b internal/config has
// parsed and validated already as doc (config.RouterPolicyFileOwned): a
// process validates its policy once.
func CompileDoc(doc *config.RouterPolicyDoc, b []byte, handlers map[string]Handler) (*Policy, error) {
	h := sha256.Sum256(b)
	p := &Policy{Doc: doc, Bytes: b, SHA256: "sha256:" + hex.EncodeToString(h[:]), thresholdText: DefaultThreshold}
	for i, d := range doc.Deny {
		e, err := compileExpr(fmt.Sprintf("deny/%d/when", i), d.When)
		if err != nil {
			return nil, err
		}
		p.deny = append(p.deny, e)
		p.denyReasons = append(p.denyReasons, fmt.Sprintf("deny rule %d: %s", i, d.Reason))
	}
	for i, r := range doc.Routes {
		e, err := compileExpr(fmt.Sprintf("routes/%d/when", i), r.When)
		if err != nil {
			return nil, err
		}
		p.routes = append(p.routes, e)
		p.routeReasons = append(p.routeReasons, fmt.Sprintf("rule %d%s matched", i, named(r.Name)))
	}
	if c := doc.Classifier; c != nil && c.Threshold != nil {
		p.thresholdText = c.Threshold.String()
	}
	var ok bool
	if p.threshold, ok = new(big.Rat).SetString(p.thresholdText); !ok {
		return nil, policyErr("classifier/threshold", "%q is not a number", p.thresholdText)
	}
	p.known = map[string]bool{DefaultHandler: true}
	for n := range handlers {
		p.known[n] = true
	}
	if handlers != nil {
		if err := checkHandler("default_route", doc.DefaultRoute.Handler, nil, handlers); err != nil {
			return nil, err
		}
		for i, r := range doc.Routes {
			if err := checkHandler(fmt.Sprintf("routes/%d", i), r.Handler, r.RequiredCapabilities, handlers); err != nil {
				return nil, err
			}
		}
	}
	for n := range p.known {
		p.handlers = append(p.handlers, n)
	}
	slices.Sort(p.handlers)
	return p, nil
}

// checkHandler refuses a target whose handler no installed package
// provides, or that lacks a capability the route requires.
func checkHandler(where, name string, required []string, handlers map[string]Handler) error {
	h, ok := handlers[name]
	if !ok && name == DefaultHandler {
		h, ok = Handler{Name: DefaultHandler}, true
	}
	if !ok {
		return &Error{code: "ROUTE_HANDLER_UNKNOWN", msg: fmt.Sprintf("router policy %s: handler %q is provided by no installed package", where, name),
			hint:    "install the package whose capabilities.json declares the handler (cp-route list-handlers lists them), or route elsewhere",
			details: map[string]any{"rule": where, "handler": name}}
	}
	for _, c := range required {
		if !slices.Contains(h.Capabilities, c) {
			return &Error{code: "ROUTE_CAPABILITY_MISSING", msg: fmt.Sprintf("router policy %s: handler %q (%s) does not declare capability %q the route requires", where, name, orKernel(h.PackageID), c),
				hint:    "route to a handler that declares it (cp-route list-handlers), or declare it in the handler's capabilities.json",
				details: map[string]any{"rule": where, "handler": name, "capability": c}}
		}
	}
	return nil
}

func orKernel(pkg string) string {
	if pkg == "" {
		return "built in"
	}
	return pkg
}

// Handlers returns the handlers a classifier may answer with, sorted.
func (p *Policy) Handlers() []string { return p.handlers }

// Limit returns the policy's per-session LLM call limit, or -1 for none.
func (p *Policy) Limit() int64 {
	if l := p.Doc.Limits; l != nil && l.LLMCallsPerSession != nil {
		return *l.LLMCallsPerSession
	}
	return -1
}

// Rule returns the reference a decision by route i records.
func (p *Policy) Rule(i int) RuleRef {
	return RuleRef{Index: i, Name: p.Doc.Routes[i].Name, ExprSHA256: p.routes[i].hash}
}

// RuleRef names the rule that decided: its index in routes (or deny), its
// name and the hash of its expression.
type RuleRef struct {
	Index      int    `json:"index"`
	Name       string `json:"name,omitempty"`
	ExprSHA256 string `json:"expr_sha256"`
}

// DenyRef names the deny rule that held.
type DenyRef struct {
	Index      int    `json:"index"`
	Reason     string `json:"reason"`
	ExprSHA256 string `json:"expr_sha256"`
}

// Classification is what became of the classifier for one decision.
type Classification struct {
	PromptPackID string `json:"prompt_pack_id"`
	// Called says whether the classifier was asked (an LLM call spent).
	Called     bool       `json:"called"`
	Handler    string     `json:"handler,omitempty"`
	Confidence Confidence `json:"confidence,omitempty"`
	Threshold  string     `json:"threshold"`
	// Outcome is accepted (at or above the threshold, a known handler),
	// below_threshold, unknown_handler, invalid_confidence, failed (the
	// classifier's error), unavailable (no classifier wired in) or
	// limit_reached (the session's LLM calls are spent).
	Outcome  string         `json:"outcome"`
	Error    string         `json:"error,omitempty"`
	Evidence map[string]any `json:"evidence,omitempty"`
}

// Decision is one routing decision.
type Decision struct {
	Handler      string `json:"handler"`
	Mode         string `json:"mode"`
	PromptPackID string `json:"prompt_pack_id,omitempty"`
	// By is what decided: deny, rule, classifier, default or limit.
	By string `json:"by"`
	// Denied is true for a deny rule or a spent limit: the request goes
	// nowhere.
	Denied     bool            `json:"denied"`
	Rule       *RuleRef        `json:"rule,omitempty"`
	Deny       *DenyRef        `json:"deny,omitempty"`
	Classifier *Classification `json:"classifier,omitempty"`
	// LLMCalls is what this decision spends of the session's limit: one
	// for a classifier call, one for a target in mode llm_assisted.
	LLMCalls int64 `json:"llm_calls"`
	// Reason says why, in words.
	Reason string `json:"reason"`
}

// PromptsUsed returns the prompt packs the decision used or sends the
// request to: the classifier's pack if it was asked, then the target's.
func (d Decision) PromptsUsed() []string {
	var ps []string
	if d.Classifier != nil && d.Classifier.Called {
		ps = append(ps, d.Classifier.PromptPackID)
	}
	if d.PromptPackID != "" && !d.Denied && !slices.Contains(ps, d.PromptPackID) {
		ps = append(ps, d.PromptPackID)
	}
	return ps
}

// Decide routes one request. used is the LLM calls the request's session
// has spent (under the policy's limit), or -1 when the request names no
// session (no limit applies). clf may be nil: then a policy with a
// classifier falls back to the default route, and the decision says the
// classifier was unavailable. An error is an expression that failed
// (ROUTE_EXPR_TIMEOUT, ROUTE_EXPR_ERROR) or a cancelled context: nothing
// was decided. Decide is Match, then Finish.
func (p *Policy) Decide(ctx context.Context, req map[string]any, used int64, clf Classifier) (Decision, error) {
	m, err := p.Match(ctx, req)
	if err != nil {
		return Decision{}, err
	}
	return p.Finish(ctx, m, req, used, clf)
}

// Match is what the rules say of a request: the deny rule or route that
// holds, if any.
type Match struct {
	d       Decision
	decided bool
}

// Decided reports whether a deny rule or a route holds: Finish then asks
// no classifier, and its decision depends on the session's count alone.
func (m Match) Decided() bool { return m.decided }

// Match applies the deny rules, then the routes, under one deadline. It
// depends on the request and the policy alone, so requests may be matched
// on several goroutines at once (a stream's batch is); Finish then applies
// what depends on the session, in order.
func (p *Policy) Match(ctx context.Context, req map[string]any) (Match, error) {
	if len(p.deny)+len(p.routes) == 0 {
		return Match{}, nil
	}
	if err := ctx.Err(); err != nil {
		return Match{}, err // cancelled: a signal
	}
	dl := &deadline{parent: ctx}
	defer dl.stop()
	d, decided, err := p.rules(dl, req)
	return Match{d: d, decided: decided}, err
}

// Finish completes a match for a session that has spent used LLM calls
// (-1: no session): a route's llm_assisted call counted against the limit;
// without a rule, the classifier or the default route.
func (p *Policy) Finish(ctx context.Context, m Match, req map[string]any, used int64, clf Classifier) (Decision, error) {
	if m.decided {
		if m.d.Denied {
			return m.d, nil
		}
		return p.spend(m.d, used, p.limitFor(used)), nil
	}
	return p.fallback(ctx, req, used, clf)
}

// rules applies the deny rules, then the routes; decided is false when
// none holds.
func (p *Policy) rules(dl *deadline, req map[string]any) (Decision, bool, error) {
	for i, e := range p.deny {
		ok, err := e.eval(dl, req)
		if err != nil {
			return Decision{}, false, err
		}
		if ok {
			r := p.Doc.Deny[i]
			return Decision{By: "deny", Denied: true, Deny: &DenyRef{Index: i, Reason: r.Reason, ExprSHA256: e.hash},
				Reason: p.denyReasons[i]}, true, nil
		}
	}
	for i, e := range p.routes {
		ok, err := e.eval(dl, req)
		if err != nil {
			return Decision{}, false, err
		}
		if ok {
			r := p.Doc.Routes[i]
			d := Decision{Handler: r.Handler, Mode: r.Mode, PromptPackID: r.PromptPackID, By: "rule",
				Rule: &RuleRef{Index: i, Name: r.Name, ExprSHA256: e.hash}, Reason: p.routeReasons[i]}
			return d, true, nil
		}
	}
	return Decision{}, false, nil
}

// limitFor is the limit that applies: none without a session.
func (p *Policy) limitFor(used int64) int64 {
	if used < 0 {
		return -1 // no session: nothing to count against
	}
	return p.Limit()
}

// fallback is the decision when no rule holds: the classifier, if the
// policy configures one, else the default route.
func (p *Policy) fallback(ctx context.Context, req map[string]any, used int64, clf Classifier) (Decision, error) {
	limit := p.limitFor(used)
	def := p.Doc.DefaultRoute
	d := Decision{Handler: def.Handler, Mode: def.Mode, PromptPackID: def.PromptPackID, By: "default", Reason: "no rule matched: the default route"}
	c := p.Doc.Classifier
	if c == nil {
		return p.spend(d, used, limit), nil
	}
	cl := &Classification{PromptPackID: c.PromptPackID, Threshold: p.thresholdText}
	d.Classifier = cl
	switch {
	case clf == nil:
		cl.Outcome = "unavailable"
		d.Reason = "no rule matched; the classifier is unavailable (no gateway wired into this binary): the default route"
		return p.spend(d, used, limit), nil
	case limit >= 0 && used+1 > limit && !alreadyAsked(clf):
		cl.Outcome = "limit_reached"
		d.Reason = fmt.Sprintf("no rule matched; the classifier was not asked: the session has spent %d of its %d LLM calls: the default route", used, limit)
		return p.spend(d, used, limit), nil
	}
	cl.Called = true
	d.LLMCalls = 1
	handler, conf, ev, err := clf.Classify(ctx, ClassifyQuery{PromptPackID: c.PromptPackID, Request: req, Handlers: p.handlers})
	if err != nil && ctx.Err() != nil {
		return Decision{}, ctx.Err()
	}
	cl.Handler, cl.Confidence, cl.Evidence = handler, conf, ev
	r, valid := conf.rat()
	switch {
	case err != nil:
		cl.Outcome, cl.Error = "failed", err.Error()
		d.Reason = fmt.Sprintf("no rule matched; the classifier failed (%v): the default route", err)
	case !valid:
		cl.Outcome = "invalid_confidence"
		d.Reason = fmt.Sprintf("no rule matched; the classifier's confidence %q is not a decimal in [0, 1]: the default route", conf)
	case !p.known[handler]:
		cl.Outcome = "unknown_handler"
		d.Reason = fmt.Sprintf("no rule matched; the classifier answered %q, which no installed package provides: the default route", handler)
	case r.Cmp(p.threshold) < 0:
		cl.Outcome = "below_threshold"
		d.Reason = fmt.Sprintf("no rule matched; the classifier answered %s at confidence %s, below the threshold %s: the default route", handler, conf, p.thresholdText)
	default:
		cl.Outcome = "accepted"
		d.Handler, d.Mode, d.PromptPackID, d.By = handler, ModeToolsFirst, "", "classifier"
		d.Reason = fmt.Sprintf("no rule matched; the classifier answered %s at confidence %s (threshold %s)", handler, conf, p.thresholdText)
	}
	return p.spend(d, used, limit), nil
}

func named(n string) string {
	if n == "" {
		return ""
	}
	return " (" + n + ")"
}

// spend counts the LLM call a target in mode llm_assisted will make, and
// turns the decision into a denial (by limit) when the session's calls
// would pass the limit.
func (p *Policy) spend(d Decision, used, limit int64) Decision {
	if d.Mode == ModeLLMAssisted {
		d.LLMCalls++
		if limit >= 0 && used+d.LLMCalls > limit {
			d.LLMCalls-- // refused: the call is not made
			d.Denied, d.By = true, "limit"
			d.Reason = fmt.Sprintf("%s, in mode llm_assisted, but the session has spent %d of its %d LLM calls (limits.llm_calls_per_session)", d.Reason, used+d.LLMCalls, limit)
		}
	}
	return d
}

// Refusal returns the error a denied decision answers with: ROUTE_DENIED
// for a deny rule, ROUTE_LIMIT_EXCEEDED for a spent limit; nil for a
// decision that routes.
func (d Decision) Refusal() error {
	switch {
	case !d.Denied:
		return nil
	case d.By == "limit":
		return &Error{code: "ROUTE_LIMIT_EXCEEDED", msg: d.Reason,
			hint:    "the session's LLM calls are spent (limits.llm_calls_per_session): start a new session under the work order, or route to a tools_first handler",
			details: map[string]any{"handler": d.Handler, "mode": d.Mode}}
	}
	det := map[string]any{}
	if d.Deny != nil {
		det["deny_index"], det["expr_sha256"] = d.Deny.Index, d.Deny.ExprSHA256
	}
	return &Error{code: "ROUTE_DENIED", msg: "request denied by the router policy: " + d.Reason,
		hint: "the policy's deny rules refuse this request; change the request, or the policy through a config package", details: det}
}
