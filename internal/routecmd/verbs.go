package routecmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/route"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/ledger"
)

// EventType is the event every decision is recorded as.
const EventType = "ROUTE_DECISION"

// maxInlineRequest is the largest request (canonical JSON) a decision
// holds in its entry; a larger one is kept under blobs/ by its hash.
const maxInlineRequest = 64 << 10

// router is one run's state: the policy, loaded once, the ledgers the
// decisions go to and, per session, the LLM calls counted so far.
type router struct {
	// clf is a test's classifier; else, with gateway set (the binary,
	// cp-mcp), the gateway classifies as the caller (classifierFor).
	clf     route.Classifier
	gateway bool
	gw      *llm.Gateway
	loaded  bool
	root    string
	policy  *route.Policy
	src     config.Source
	// rules are the policy's routes as a decision's metadata records
	// them (rule), encoded once.
	rules   []jcs.Raw
	loadErr error
	// mu guards ledgers: a stream's batches are started on its goroutine
	// and finished on another (pipeline).
	mu      sync.Mutex
	ledgers map[ledgerKey]*tierLedger
	// counts are the tiers a limited session's count is read across, by
	// plane id (count.go), and totals each session's count as last read.
	counts map[string]*tierCount
	totals map[string]int64
}

type ledgerKey struct {
	plane string
	actor plane.Actor
}

// tierLedger is a tier's ledger open for the run.
type tierLedger struct {
	id      string // its plane: ho3, ho2 or ho1
	store   ledger.Store
	dir     string // the tier's directory (plane.HoldKey)
	tier    plane.Tier
	authOff bool // the ledger stamps _auth "off" (plane.Actor)
}

type span struct{ from, to int64 } // [from, to)

func (r *router) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.ledgers {
		l.store.Close()
	}
	r.ledgers = nil
	for _, tc := range r.counts {
		if tc.closer {
			tc.store.Close()
		}
	}
	r.counts = nil
}

// load reads, compiles and keeps the policy in force, once per run: the
// plane's config/router_policy.json (internal/config: a config package's,
// or the built-in default), checked against the installed handlers, and
// kept under blobs/ by its hash before any decision records that hash.
func (r *router) load(c *cli.Call) error {
	if r.loaded {
		return r.loadErr
	}
	r.loaded = true
	r.loadErr = func() error {
		root, err := c.Root()
		if err != nil {
			return err
		}
		// The ownership rows of the policy and of the modules'
		// capabilities.json, read once for both and checked as Read checks
		// each; the other rows are the gates' to judge (registry.Select).
		owners, err := registry.Select(root, registry.Ownership, func(p string) bool {
			return p == config.RouterPolicyPath || route.IsCapabilitiesPath(p)
		})
		if err != nil {
			return err
		}
		doc, b, src, err := config.RouterPolicyFileOwned(root, owners)
		if err != nil {
			return err
		}
		hs, err := route.HandlersOwned(root, owners)
		if err != nil {
			return err
		}
		p, err := route.CompileDoc(doc, b, hs)
		if err != nil {
			return err
		}
		if _, err := plane.PutBlob(root, b); err != nil {
			return fmt.Errorf("keeping the policy under blobs/: %w", err)
		}
		r.root, r.policy, r.src = root, p, src
		r.rules = make([]jcs.Raw, len(p.Doc.Routes))
		for i := range r.rules {
			ref := p.Rule(i)
			if r.rules[i], err = jcs.MarshalRaw(ruleMeta(&ref)); err != nil {
				return err
			}
		}
		c.Logf("policy %s (%s): %d routes, %d deny rules", p.SHA256, sourceName(src), len(p.Doc.Routes), len(p.Doc.Deny))
		return nil
	}()
	return r.loadErr
}

func sourceName(s config.Source) string {
	if s.Default() {
		return "built-in default"
	}
	return s.Package
}

// ledger returns the tier ledger a request's decision goes to: --plane's,
// else the tier --root names, open for the run.
func (r *router) ledger(c *cli.Call, req cli.Request, a plane.Access) (*tierLedger, error) {
	return r.ledgerIn(r.root, c, req, a)
}

// ledgerIn is ledger in the plane at root: a replay's, which does not
// load the policy in force (r.root is load's: a pipeline's goroutines
// read it).
func (r *router) ledgerIn(root string, c *cli.Call, req cli.Request, a plane.Access) (*tierLedger, error) {
	id := req.String("plane")
	if id == "" {
		id = c.RootPlane()
	}
	k := ledgerKey{plane: id, actor: c.Actor()}
	if a == plane.ForAppend {
		if l := r.open(k); l != nil {
			return l, nil
		}
	}
	dir, err := plane.Dir(root, id)
	if err != nil {
		return nil, cli.Usagef("%v", err)
	}
	s, t, err := plane.OpenLedger(dir, a, c.Actor())
	if err != nil {
		return nil, err
	}
	l := &tierLedger{id: id, store: s, dir: dir, tier: t, authOff: c.Actor().AuthOff}
	if a == plane.ForAppend { // kept for the run; one opened for reading is the caller's to close
		r.mu.Lock()
		if r.ledgers == nil {
			r.ledgers = map[ledgerKey]*tierLedger{}
		}
		r.ledgers[k] = l
		r.mu.Unlock()
	}
	return l, nil
}

// open returns the tier ledger open for appending under k, or nil.
func (r *router) open(k ledgerKey) *tierLedger {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ledgers[k]
}

// sessionLockKey names the locks a limited session's count is read and
// spent under (plane.HoldKey, holdSessions): the lock file beside HO3's
// ledger, and the advisory lock of each tier in PostgreSQL.
const sessionLockKey = "route-session"

// anySession reports whether a request of reqs names a session (its own,
// or the token's: run).
func anySession(reqs []cli.Request) bool {
	for _, req := range reqs {
		if req.String("session_id") != "" {
			return true
		}
	}
	return false
}

// askFirst asks the classifier, before the session's count is locked for
// the run's decisions, for the requests of a run no rule decides: the run
// is planned as decideRun will decide it, up to and including the first of
// them in a limited session with room left for the call. That call is
// reserved first (a ROUTE_RESERVED entry, appended under the route-session
// locks with the count it was judged against), so that no other process
// can count the session's room again while the call is made; then the
// locks are released and the classifier is asked. What each was answered
// is kept for the decision under the locks (askedClassifier); a request
// not asked here is not asked there.
//
// It plans nothing after a decision in a limited session whose target is
// llm_assisted: under the locks, with the count grown, that one may be
// refused by the limit, and the refusal ends the batch, so a call made for
// a request after it would be recorded by no decision. Nor after the
// reserved request, whose answer decides what follows. decideRun ends the
// run before a request it would need the classifier for and that was not
// asked, and the rest of the batch is a run of its own, planned again.
func (r *router) askFirst(ctx context.Context, c *cli.Call, l *tierLedger, reqs []cli.Request, pre []prepared) (map[int]*askedClassifier, error) {
	if !slices.ContainsFunc(pre, func(p prepared) bool { return p.err == nil && p.m != nil && !p.match.Decided() }) {
		return nil, nil // every request decided by a rule (a stream's usual run): nothing to ask
	}
	release, err := r.holdSessions(ctx, c)
	if err != nil {
		return nil, err
	}
	asked, err := r.plan(ctx, c, l, reqs, pre)
	release()
	if err != nil {
		return nil, err
	}
	for i, a := range asked {
		// Asked with no count: the limit was judged under the locks, and
		// the call, when in a limited session, is reserved.
		if _, err := r.policy.Finish(ctx, pre[i].match, pre[i].m, -1, a); err != nil {
			return nil, err // cancelled: the reservation stays spent
		}
	}
	return asked, nil
}

// plan is askFirst's planning of the run under the route-session locks:
// the requests to ask the classifier for, the reservation of the call in a
// limited session appended.
func (r *router) plan(ctx context.Context, c *cli.Call, l *tierLedger, reqs []cli.Request, pre []prepared) (map[int]*askedClassifier, error) {
	asked := map[int]*askedClassifier{}
	inBatch := map[string]int64{}
	for i, req := range reqs {
		if pre[i].err != nil || pre[i].m == nil {
			break
		}
		session := req.String("session_id")
		used := int64(-1)
		if session != "" {
			if _, seen := inBatch[session]; !seen {
				if _, err := r.used(ctx, c, session); err != nil {
					return nil, err
				}
			}
			used = r.totals[session] + inBatch[session]
		}
		var clf route.Classifier // nil, not a nil *planClassifier: "unavailable"
		pc := &planClassifier{}
		var inner route.Classifier
		if !pre[i].match.Decided() {
			if inner = r.classifierFor(c, req); inner != nil {
				clf = pc
			}
		}
		d, err := r.policy.Finish(ctx, pre[i].match, pre[i].m, used, clf)
		if err != nil {
			break // decideRun meets it again, in order
		}
		if pc.called {
			a := &askedClassifier{inner: inner}
			asked[i] = a
			if used < 0 {
				continue // no session: its answer spends no count
			}
			e, err := r.reserve(ctx, l, req, pre[i], used)
			if err != nil {
				return nil, err
			}
			a.reservation = e.ID
			break
		}
		if session != "" {
			inBatch[session] += d.LLMCalls
		}
		if d.Denied || used >= 0 && d.Mode == route.ModeLLMAssisted {
			break
		}
	}
	return asked, nil
}

// planClassifier stands for the classifier while a run is planned: it
// notes that the decision would ask it, and asks nothing.
type planClassifier struct{ called bool }

func (p *planClassifier) Classify(context.Context, route.ClassifyQuery) (string, route.Confidence, map[string]any, error) {
	p.called = true
	return "", "", nil, errors.New("planned")
}

// reserve appends the ROUTE_RESERVED of the classifier call a request in a
// limited session will make, the session having spent used calls.
func (r *router) reserve(ctx context.Context, l *tierLedger, req cli.Request, pre prepared, used int64) (*ledger.Entry, error) {
	session := req.String("session_id")
	meta := map[string]any{
		"_session_id":       session,
		"_tier":             l.tier.Tier,
		"limit":             r.policy.Limit(),
		"llm_calls":         int64(1),
		"policy_sha256":     r.policy.SHA256,
		"request_sha256":    pre.hash,
		"session_llm_calls": used,
	}
	var prompts []string
	if cl := r.policy.Doc.Classifier; cl != nil {
		meta["prompt_pack_id"] = cl.PromptPackID
		prompts = []string{cl.PromptPackID}
	}
	if l.authOff {
		meta["_auth"] = "off"
	}
	if wo := req.String("work_order_id"); wo != "" {
		meta["_work_order_id"] = wo
	}
	es, err := l.store.Append(ctx, []ledger.Draft{{EventType: EventReserved, SubmissionID: session, Decision: "RESERVED",
		Reason:      fmt.Sprintf("no rule matched: a classifier call reserved, the session having spent %d of its %d LLM calls", used, r.policy.Limit()),
		PromptsUsed: prompts, Metadata: meta}})
	if err != nil {
		return nil, err
	}
	e := &es[0]
	r.counts[l.id].wrote(e.Seq, e.Seq+1)
	r.totals[session]++
	return e, nil
}

// askedClassifier is a request's classifier asked at most once, before
// the route-session locks (askFirst): under them it gives the answer it
// got, and one never asked then is not asked under them, where the
// gateway's own appends would wait and other processes with it. It fails
// instead (refused): decideRun then ends the run before that request,
// which a run of its own asks before its locks; for a run's first request
// (askFirst asks it whenever the count leaves room, reserving the call)
// the decision takes the default route and counts the call it would have
// made (fail closed).
type askedClassifier struct {
	inner   route.Classifier
	locked  bool // decideRun holds the route-session locks
	asked   bool
	refused bool // not asked before the locks, and needed under them
	// reservation is the id of the ROUTE_RESERVED that counted the call
	// before it was made ("" for a request in no session).
	reservation string
	answer      struct {
		handler string
		conf    route.Confidence
		ev      map[string]any
		err     error
	}
}

func (a *askedClassifier) Classify(ctx context.Context, q route.ClassifyQuery) (string, route.Confidence, map[string]any, error) {
	if !a.asked {
		if a.locked {
			a.refused = true
			return "", "", nil, errors.New("the classifier was not asked before the session's count was locked")
		}
		a.asked = true
		x := &a.answer
		x.handler, x.conf, x.ev, x.err = a.inner.Classify(ctx, q)
	}
	return a.answer.handler, a.answer.conf, a.answer.ev, a.answer.err
}

// Asked reports whether the call was made (route.AskedClassifier): its
// answer is then the decision's under the lock, even past the limit.
func (a *askedClassifier) Asked() bool { return a.asked }

// routed is what the expressions see and the decision records: the
// request without the fields that steer cp-route itself.
func routed(req cli.Request) map[string]any {
	if _, p := req["plane"]; !p {
		if _, r := req["replay"]; !r {
			return req // nothing to drop: read, never changed
		}
	}
	m := make(map[string]any, len(req))
	for k, v := range req {
		if k != "plane" && k != "replay" {
			m[k] = v
		}
	}
	return m
}

// pending is one decided request of a batch, waiting for its entry.
type pending struct {
	req      cli.Request
	d        route.Decision
	draft    ledger.Draft
	evidence map[string]any
	session  string
	// reserved: its classifier call was counted before it was made, by
	// the ROUTE_RESERVED whose id is reservation.
	reserved    bool
	reservation string
	// metaJSON is the draft's metadata in canonical form but its last
	// member (session_llm_calls, known only in order) and its end.
	metaJSON *jcs.Object
}

// batch decides the requests that arrived together and records their
// decisions in one append per tier ledger (group commit). A denial is
// recorded and ends the batch with its refusal; an expression that fails
// ends it before its request, recording nothing for it.
func (r *router) batch(ctx context.Context, c *cli.Call, reqs []cli.Request) []cli.Outcome {
	return r.batchWith(ctx, c, reqs, nil)
}

// pipeline is batch in two steps (cli.Verb.Pipeline): now, on the
// stream's goroutine, what depends on each request and the policy alone
// (ahead); then, in order on the stream's finishing goroutine while the next
// batch is started, the rest (batchWith: each session's count, the
// classifier, the group commit). Only the runs of requests whose ledger
// this run already holds open are prepared ahead: opening a ledger is
// left to its turn.
func (r *router) pipeline(ctx context.Context, c *cli.Call, reqs []cli.Request) func() []cli.Outcome {
	pre := r.ahead(ctx, c, reqs)
	return func() []cli.Outcome { return r.batchWith(ctx, c, reqs, pre) }
}

// ahead prepares the runs of reqs that decideRun will take (keyed by the
// index of their first request), as decideRun would.
func (r *router) ahead(ctx context.Context, c *cli.Call, reqs []cli.Request) map[int][]prepared {
	if r.load(c) != nil {
		return nil // the batch fails in its turn
	}
	var pre map[int][]prepared
	for i := 0; i < len(reqs); {
		if reqs[i].Has("replay") {
			i++
			continue
		}
		n := r.run(c, reqs[i:])
		if l := r.open(r.key(c, reqs[i])); l != nil {
			if pre == nil {
				pre = map[int][]prepared{}
			}
			pre[i] = r.prepare(ctx, l, reqs[i:i+n])
		}
		i += n
	}
	return pre
}

// key is the key of the tier ledger req's decision goes to.
func (r *router) key(c *cli.Call, req cli.Request) ledgerKey {
	id := req.String("plane")
	if id == "" {
		id = c.RootPlane()
	}
	return ledgerKey{plane: id, actor: c.Actor()}
}

// run returns how many of the leading requests of reqs go to the same
// ledger, up to a replay, giving each the token's session.
func (r *router) run(c *cli.Call, reqs []cli.Request) int {
	n := 0
	for n < len(reqs) && !reqs[n].Has("replay") && reqs[n].String("plane") == reqs[0].String("plane") {
		if cl := c.Identity.Claims; cl != nil && cl.Session != "" && !reqs[n].Has("session_id") {
			// A token's session is the request's, whatever else it names
			// (--plane): the limit counts a worker's calls in its session.
			reqs[n]["session_id"] = cl.Session
		}
		n++
	}
	return n
}

// batchWith is batch with the runs prepared ahead (pipeline).
func (r *router) batchWith(ctx context.Context, c *cli.Call, reqs []cli.Request, ahead map[int][]prepared) []cli.Outcome {
	outs := make([]cli.Outcome, 0, len(reqs))
	at := 0 // reqs[0]'s index in the batch
	for len(reqs) > 0 {
		if reqs[0].Has("replay") {
			o := r.replay(ctx, c, reqs[0])
			outs = append(outs, o)
			if o.Err != nil {
				return outs
			}
			reqs, at = reqs[1:], at+1
			continue
		}
		n, o, stop := r.decideRun(ctx, c, reqs, ahead[at])
		outs = append(outs, o...)
		if stop {
			return outs
		}
		reqs, at = reqs[n:], at+n
	}
	return outs
}

// decideRun decides the leading requests of reqs that go to the same
// ledger (up to a replay), appends their decisions at once and returns how
// many it took, their outcomes, and whether the batch stops. ahead, when
// it is as long as the run, is the run prepared already (pipeline).
func (r *router) decideRun(ctx context.Context, c *cli.Call, reqs []cli.Request, ahead []prepared) (int, []cli.Outcome, bool) {
	fail := func(err error) (int, []cli.Outcome, bool) { return 0, []cli.Outcome{{Err: err}}, true }
	if err := r.load(c); err != nil {
		return fail(err)
	}
	l, err := r.ledger(c, reqs[0], plane.ForAppend)
	if err != nil {
		return fail(err)
	}
	limited := r.policy.Limit() >= 0
	n := r.run(c, reqs)
	pre := ahead
	if len(pre) != n {
		pre = r.prepare(ctx, l, reqs[:n])
	}
	// A session's count is read, and the decisions that spend it appended,
	// under the route-session locks of every tier (count.go): processes
	// deciding in one session at once, in any tier, then each count the
	// others' decisions, and the limit holds (TestRouteSessionLimitRace,
	// TestSessionLimitAcrossTiers). The classifier is asked before the
	// locks, its call reserved (askFirst): it goes through the gateway,
	// which appends to HO2 under a lock of its own, and takes as long as a
	// model does.
	var asked map[int]*askedClassifier
	held := limited && anySession(reqs[:n])
	if held {
		if asked, err = r.askFirst(ctx, c, l, reqs[:n], pre); err != nil {
			return fail(err)
		}
		release, err := r.holdSessions(ctx, c)
		if err != nil {
			return fail(err)
		}
		defer release()
		for _, a := range asked {
			a.locked = true
		}
	}
	ps := make([]pending, 0, n)
	var stopErr error
	inBatch := map[string]int64{} // session → calls decided in this batch
	for i, req := range reqs[:n] {
		if pre[i].err != nil || pre[i].m == nil { // skipped: after a failure
			stopErr = pre[i].err
			break
		}
		p := pending{req: req, session: req.String("session_id")}
		used := int64(-1)
		if limited && p.session != "" {
			if _, seen := inBatch[p.session]; !seen {
				if _, err := r.used(ctx, c, p.session); err != nil {
					stopErr = err
					break
				}
			}
			used = r.totals[p.session] + inBatch[p.session]
		}
		var clf route.Classifier // asked only when no rule decides
		a := asked[i]
		reserved := a != nil && a.reservation != ""
		if reserved {
			used-- // the count holds the call: the decision counts it once
		}
		if a == nil && held && !pre[i].match.Decided() {
			// Not asked before the lock (askFirst stopped before it):
			// never asked under it.
			if inner := r.classifierFor(c, req); inner != nil {
				a = &askedClassifier{inner: inner, locked: true}
			}
		}
		if a != nil {
			clf = a
		} else if !pre[i].match.Decided() {
			clf = r.classifierFor(c, req)
		}
		d, err := r.policy.Finish(ctx, pre[i].match, pre[i].m, used, clf)
		if err != nil {
			stopErr = err
			break
		}
		if a != nil && a.refused && len(ps) > 0 {
			// askFirst stopped asking before this request (after one
			// that spends the session's calls): the run ends here, and
			// the rest of the batch is decided in a run of its own,
			// its classifier asked before that run's lock.
			break
		}
		if p.session != "" {
			inBatch[p.session] += d.LLMCalls
			if reserved {
				inBatch[p.session]--
			}
		}
		p.d, p.reserved = d, reserved
		if reserved {
			p.reservation = a.reservation
		}
		if pr := &pre[i]; pr.spec != nil && sameDecision(d, *pr.spec) {
			p.draft, p.evidence, p.metaJSON = pr.draft, pr.evidence, pr.metaJSON // made on the workers
		} else if p.draft, p.evidence, p.metaJSON, err = r.draft(l, req, *pr, d, p.reservation); err != nil {
			stopErr = err
			break
		}
		if used >= 0 {
			p.metaJSON.AddInt("session_llm_calls", used)
		}
		raw, err := p.metaJSON.Raw()
		if err != nil {
			// The draft's map holds only what the ledger reads: never
			// let it encode that in place of the metadata.
			stopErr = fmt.Errorf("encoding the decision's metadata: %w", err)
			break
		}
		p.draft.Canonical = raw
		ps = append(ps, p)
		if d.Denied {
			break
		}
	}
	var outs []cli.Outcome
	if len(ps) > 0 {
		drafts := make([]ledger.Draft, len(ps))
		for i := range ps {
			drafts[i] = ps[i].draft
		}
		es, err := l.store.Append(ctx, drafts)
		if tc := r.counts[l.id]; len(es) > 0 && tc != nil {
			tc.wrote(es[0].Seq, es[len(es)-1].Seq+1)
		}
		for i, e := range es {
			p := ps[i]
			if _, counted := r.totals[p.session]; counted {
				r.totals[p.session] += p.d.LLMCalls
				if p.reserved {
					r.totals[p.session]--
				}
			}
			if rerr := p.d.Refusal(); rerr != nil {
				outs = append(outs, cli.Outcome{Err: rerr, LedgerEntryID: e.ID, Seq: e.Seq, Evidence: p.evidence})
				return len(ps), outs, true
			}
			outs = append(outs, cli.Outcome{Result: result(p.req, p.d, e.Seq), LedgerEntryID: e.ID, Seq: e.Seq, Evidence: p.evidence})
		}
		if err != nil {
			return len(es), append(outs, cli.Outcome{Err: err}), true
		}
		c.Logf("recorded %d decisions in %s", len(es), l.tier.Tier)
	}
	if stopErr != nil {
		return len(ps), append(outs, cli.Outcome{Err: stopErr}), true
	}
	return len(ps), outs, false
}

// prepared is a request made ready to decide: what the expressions see,
// its canonical form and hash, and what the rules say of it.
type prepared struct {
	m     map[string]any
	canon jcs.Raw
	hash  string
	match route.Match
	err   error
	// spec is the decision a matched request gets when the session's
	// limit does not change it, with its draft (but the session's count)
	// and evidence made on the workers; the decision in order takes them
	// when it is the same (sameDecision).
	spec     *route.Decision
	draft    ledger.Draft
	evidence map[string]any
	metaJSON *jcs.Object
}

// sameDecision reports whether a decision made in order is the
// speculative one: the limit left it as it was.
func sameDecision(d, spec route.Decision) bool {
	return d.By == spec.By && d.Denied == spec.Denied && d.LLMCalls == spec.LLMCalls && d.Reason == spec.Reason &&
		d.Handler == spec.Handler && d.Mode == spec.Mode && d.PromptPackID == spec.PromptPackID &&
		d.Rule == spec.Rule && d.Deny == spec.Deny && d.Classifier == nil && spec.Classifier == nil
}

// parallelFrom is the batch size from which requests are matched and
// hashed on every core: the rules depend on the request and the policy
// alone, so only what depends on the session (Finish) runs in order.
const parallelFrom = 256

// prepare matches and hashes reqs, on every core for a large batch, and
// drafts the entries of those a rule decides.
func (r *router) prepare(ctx context.Context, l *tierLedger, reqs []cli.Request) []prepared {
	pre := make([]prepared, len(reqs))
	one := func(i int) {
		p := &pre[i]
		p.m = routed(reqs[i])
		var err error
		if p.canon, err = jcs.MarshalRaw(p.m); err != nil {
			p.err = cli.Invalidf("INVALID_INPUT", "the request has no canonical JSON form: %v", err)
			return
		}
		h := sha256.Sum256(p.canon.Bytes())
		p.hash = "sha256:" + hex.EncodeToString(h[:])
		if p.match, p.err = r.policy.Match(ctx, p.m); p.err != nil || !p.match.Decided() || len(p.canon.Bytes()) > maxInlineRequest {
			return // the classifier is asked in order; a large request's blob is written in order
		}
		d, err := r.policy.Finish(ctx, p.match, p.m, -1, nil)
		if err != nil {
			return
		}
		if p.draft, p.evidence, p.metaJSON, err = r.draft(l, reqs[i], *p, d, ""); err == nil {
			p.spec = &d
		}
	}
	// Each goroutine stops at its first failure, and skips what comes after
	// the first failure seen: the batch stops there, and a policy whose
	// rule loops costs one deadline per goroutine, not one per request.
	var failed atomic.Int64
	failed.Store(int64(len(reqs)))
	span := func(from, to int) {
		for i := from; i < to && int64(i) < failed.Load(); i++ {
			if one(i); pre[i].err != nil {
				for f := failed.Load(); int64(i) < f && !failed.CompareAndSwap(f, int64(i)); f = failed.Load() {
				}
				return
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(reqs)/parallelFrom*2)
	if workers < 2 {
		span(0, len(reqs))
		return pre
	}
	var wg sync.WaitGroup
	chunk := (len(reqs) + workers - 1) / workers
	for w := range workers {
		wg.Add(1)
		go func(from, to int) {
			defer wg.Done()
			span(from, to)
		}(w*chunk, min((w+1)*chunk, len(reqs)))
	}
	wg.Wait()
	return pre
}

// routeResult is a decision's answer: a cp-llm complete request (DESIGN.md
// §9), with the decision's seq.
type routeResult struct {
	Handler      string         `json:"handler"`
	Mode         string         `json:"mode"`
	PromptPackID string         `json:"prompt_pack_id,omitempty"`
	Variables    map[string]any `json:"variables"`
	DecisionSeq  int64          `json:"decision_seq"`
	SessionID    string         `json:"session_id,omitempty"`
	WorkOrderID  string         `json:"work_order_id,omitempty"`
}

// AppendJSON writes the result (cli.JSONAppender): a stream writes one
// per decision.
func (r routeResult) AppendJSON(b []byte) []byte {
	b = append(b, `{"handler":`...)
	b, _ = jcs.AppendString(b, r.Handler)
	b = append(b, `,"mode":`...)
	b, _ = jcs.AppendString(b, r.Mode)
	if r.PromptPackID != "" {
		b = append(b, `,"prompt_pack_id":`...)
		b, _ = jcs.AppendString(b, r.PromptPackID)
	}
	b = append(b, `,"variables":`...)
	n := len(b)
	b, err := jcs.Append(b, r.Variables)
	if err != nil { // a value canonical JSON refuses (the draft refused it first)
		b = append(b[:n], "{}"...)
	}
	b = append(b, `,"decision_seq":`...)
	b = strconv.AppendInt(b, r.DecisionSeq, 10)
	if r.SessionID != "" {
		b = append(b, `,"session_id":`...)
		b, _ = jcs.AppendString(b, r.SessionID)
	}
	if r.WorkOrderID != "" {
		b = append(b, `,"work_order_id":`...)
		b, _ = jcs.AppendString(b, r.WorkOrderID)
	}
	return append(b, '}')
}

// MarshalJSON makes the result printable by encoding/json too.
func (r routeResult) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

// rawJSON is JSON already encoded (cli.JSONAppender).
type rawJSON []byte

func (r rawJSON) AppendJSON(b []byte) []byte { return append(b, r...) }

// MarshalJSON returns the bytes.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func result(req cli.Request, d route.Decision, seq int64) routeResult {
	vars := req.Object("variables")
	if vars == nil {
		vars = map[string]any{}
	}
	return routeResult{Handler: d.Handler, Mode: d.Mode, PromptPackID: d.PromptPackID, Variables: vars, DecisionSeq: seq,
		SessionID: req.String("session_id"), WorkOrderID: req.String("work_order_id")}
}

// draft is a decision's ROUTE_DECISION entry, and the evidence its answer
// carries; reservation is the id of the ROUTE_RESERVED that counted its
// classifier call, if one did. The entry's metadata is made in canonical form, member by
// member in key order (jcs.Object: no map built, sorted and encoded), but
// for session_llm_calls, which the decision in order adds (when limited)
// before ending it (decideRun). The draft's Metadata holds only what the
// ledger reads of it (ledger.Draft.Canonical): the auth stamp and the
// work order the index finds entries by. Building the whole map as well
// cost a fifth of a stream's allocations and 3-4 µs of CPU a decision
// (README, cp-route's section, session 30); TestDraftCanonical holds the
// canonical form to the map it stands for.
func (r *router) draft(l *tierLedger, req cli.Request, pre prepared, d route.Decision, reservation string) (ledger.Draft, map[string]any, *jcs.Object, error) {
	canon, reqHash := pre.canon, pre.hash
	source := sourceName(r.src)
	inline := len(canon.Bytes()) <= maxInlineRequest
	if !inline {
		if _, err := plane.PutBlob(r.root, canon.Bytes()); err != nil {
			return ledger.Draft{}, nil, nil, fmt.Errorf("keeping the request under blobs/: %w", err)
		}
	}
	meta := map[string]any{} // what the ledger reads
	if l.authOff {
		// The stamp the ledger adds (DESIGN.md §8), written here so that
		// the ledger need not copy the map to add it.
		meta["_auth"] = "off"
	}
	sub := reqHash
	session := req.String("session_id")
	if session != "" {
		sub = session
	}
	wo := req.String("work_order_id")
	if wo != "" {
		meta["_work_order_id"] = wo
	}
	limited := session != "" && r.policy.Limit() >= 0
	decision := "ROUTED"
	if d.Denied {
		decision = "DENIED"
	}
	refs := decisionRefs(d, r.rules)
	evb, err := evidenceJSON(d, refs, r.policy.SHA256, reqHash)
	if err != nil {
		return ledger.Draft{}, nil, nil, err
	}

	// The metadata's members, in canonical key order.
	o := &jcs.Object{}
	if inline {
		o.Grow(len(canon.Bytes()) + 768)
	}
	if l.authOff {
		o.AddString("_auth", "off")
	}
	if session != "" {
		o.AddString("_session_id", session)
	}
	o.AddString("_tier", l.tier.Tier)
	if wo != "" {
		o.AddString("_work_order_id", wo)
	}
	o.AddString("by", d.By)
	if refs.classifier != nil {
		o.Add("classifier", refs.classifier)
	}
	if refs.deny != nil {
		o.Add("deny", refs.deny)
	}
	o.AddString("handler", d.Handler)
	if limited {
		o.AddInt("limit", r.policy.Limit())
	}
	o.AddInt("llm_calls", d.LLMCalls)
	o.AddString("mode", d.Mode)
	o.AddString("policy_sha256", r.policy.SHA256)
	o.AddString("policy_source", source)
	if d.PromptPackID != "" {
		o.AddString("prompt_pack_id", d.PromptPackID)
	}
	if inline {
		o.Add("request", canon)
	} else {
		o.AddString("request_blob", reqHash)
	}
	o.AddString("request_sha256", reqHash)
	if reservation != "" {
		o.AddString("reservation", reservation)
	}
	if refs.rule != nil {
		o.Add("rule", refs.rule)
	}
	return ledger.Draft{EventType: EventType, SubmissionID: sub, Decision: decision, Reason: d.Reason,
		PromptsUsed: d.PromptsUsed(), Metadata: meta}, map[string]any{"route": rawJSON(evb)}, o, nil
}

// refs are a decision's rule, deny rule and classifier as metadata
// (values canonical JSON encodes; nil when the decision has none).
type refs struct{ rule, deny, classifier any }

// decisionRefs is decisionMeta's rule, deny and classifier members.
func decisionRefs(d route.Decision, rules []jcs.Raw) refs {
	var rf refs
	if d.Rule != nil && d.Rule.Index >= 0 && d.Rule.Index < len(rules) {
		rf.rule = rules[d.Rule.Index]
	} else if d.Rule != nil {
		rf.rule = ruleMeta(d.Rule)
	}
	if d.Deny != nil || d.Classifier != nil {
		m := decisionMeta(d, map[string]any{}, rules)
		rf.deny, rf.classifier = m["deny"], m["classifier"]
	}
	return rf
}

// evidenceJSON is a decision's evidence.route, canonical: by, the
// classifier, the deny rule, the policy's hash, the reason, the request's
// hash and the rule (rf's values), in that (sorted) order.
func evidenceJSON(d route.Decision, rf refs, policy, request string) ([]byte, error) {
	b := make([]byte, 0, 512)
	var err error
	b = append(b, `{"by":`...)
	if b, err = jcs.AppendString(b, d.By); err != nil {
		return nil, err
	}
	for _, m := range []struct {
		k string
		v any
	}{{"classifier", rf.classifier}, {"deny", rf.deny}} {
		if m.v != nil {
			b = append(b, `,"`+m.k+`":`...)
			if b, err = jcs.Append(b, m.v); err != nil {
				return nil, err
			}
		}
	}
	b = append(b, `,"policy_sha256":`...)
	if b, err = jcs.AppendString(b, policy); err != nil {
		return nil, err
	}
	b = append(b, `,"reason":`...)
	if b, err = jcs.AppendString(b, d.Reason); err != nil {
		return nil, err
	}
	b = append(b, `,"request_sha256":`...)
	if b, err = jcs.AppendString(b, request); err != nil {
		return nil, err
	}
	if rf.rule != nil {
		b = append(b, `,"rule":`...)
		if b, err = jcs.Append(b, rf.rule); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// decisionMeta writes a decision into m as entry metadata (values
// canonical JSON encodes) and returns m. rules, when given, are the
// policy's rule references already encoded (router.rules): the same
// bytes, encoded once per policy rather than once per decision.
func decisionMeta(d route.Decision, m map[string]any, rules []jcs.Raw) map[string]any {
	m["handler"], m["mode"], m["by"], m["llm_calls"] = d.Handler, d.Mode, d.By, d.LLMCalls
	if d.PromptPackID != "" {
		m["prompt_pack_id"] = d.PromptPackID
	}
	if d.Rule != nil {
		if d.Rule.Index >= 0 && d.Rule.Index < len(rules) {
			m["rule"] = rules[d.Rule.Index]
		} else {
			m["rule"] = ruleMeta(d.Rule)
		}
	}
	if d.Deny != nil {
		m["deny"] = map[string]any{"index": d.Deny.Index, "reason": d.Deny.Reason, "expr_sha256": d.Deny.ExprSHA256}
	}
	if cl := d.Classifier; cl != nil {
		cm := map[string]any{"prompt_pack_id": cl.PromptPackID, "called": cl.Called, "threshold": cl.Threshold, "outcome": cl.Outcome}
		if cl.Handler != "" {
			cm["handler"] = cl.Handler
		}
		if cl.Confidence != "" {
			cm["confidence"] = string(cl.Confidence)
		}
		if cl.Error != "" {
			cm["error"] = cl.Error
		}
		if cl.Evidence != nil {
			cm["evidence"] = canonical(cl.Evidence)
		}
		m["classifier"] = cm
	}
	return m
}

// ruleMeta is a rule reference as metadata.
func ruleMeta(r *route.RuleRef) map[string]any {
	rm := map[string]any{"index": r.Index, "expr_sha256": r.ExprSHA256}
	if r.Name != "" {
		rm["name"] = r.Name
	}
	return rm
}

// canonical turns a classifier's evidence into values canonical JSON
// encodes (its own types, whatever they are, through encoding/json).
func canonical(v map[string]any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return map[string]any{"unencodable": err.Error()}
	}
	out, err := jcs.Decode(b)
	if err != nil {
		return map[string]any{"unencodable": err.Error()}
	}
	return out
}

func routeText(w io.Writer, res any) error {
	if rr, ok := res.(replayResult); ok {
		_, err := fmt.Fprintf(w, "decision %d replayed under policy %s: the same answer (%v, %v, %v, by %v)\n", rr.Seq, rr.PolicySHA256,
			rr.Replayed["handler"], rr.Replayed["mode"], orDash(rr.Replayed["prompt_pack_id"]), rr.Replayed["by"])
		return err
	}
	r, ok := res.(routeResult)
	if !ok {
		return cli.Fields(w, res)
	}
	pp := r.PromptPackID
	if pp == "" {
		pp = "-"
	}
	_, err := fmt.Fprintf(w, "%s\t%s\t%s\tdecision seq %d\n", r.Handler, r.Mode, pp, r.DecisionSeq)
	return err
}

func orDash(v any) any {
	if v == nil || v == "" {
		return "-"
	}
	return v
}

// ---- replay ----

// replayResult is a replay's answer.
type replayResult struct {
	Seq           int64          `json:"seq"`
	Same          bool           `json:"same"`
	PolicySHA256  string         `json:"policy_sha256"`
	RequestSHA256 string         `json:"request_sha256"`
	Recorded      map[string]any `json:"recorded"`
	Replayed      map[string]any `json:"replayed"`
	Differences   []string       `json:"differences"`
}

// compared are the members of a decision a replay must give again.
var compared = []string{"handler", "mode", "prompt_pack_id", "by", "denied", "rule_index", "deny_index", "classifier_outcome", "llm_calls"}

// summary is the compared members of a decision's metadata.
func summary(meta map[string]any, decision string) map[string]any {
	s := map[string]any{"handler": meta["handler"], "mode": meta["mode"], "prompt_pack_id": meta["prompt_pack_id"],
		"by": meta["by"], "denied": decision == "DENIED", "rule_index": nil, "deny_index": nil, "classifier_outcome": nil,
		"llm_calls": num(meta["llm_calls"])}
	if rm, ok := meta["rule"].(map[string]any); ok {
		s["rule_index"] = num(rm["index"])
	}
	if dm, ok := meta["deny"].(map[string]any); ok {
		s["deny_index"] = num(dm["index"])
	}
	if cm, ok := meta["classifier"].(map[string]any); ok {
		s["classifier_outcome"] = cm["outcome"]
	}
	return s
}

// num normalizes a number read back from an entry or built in memory.
func num(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		return x.String()
	case int:
		return int64(x)
	case int64:
		return x
	}
	return v
}

// recordedClassifier answers as the classifier answered when the decision
// was made: a model is not asked again, and its answer, with the
// threshold applied again, is part of what is replayed.
type recordedClassifier struct {
	handler    string
	confidence route.Confidence
	evidence   map[string]any
	err        error
}

func (rc recordedClassifier) Classify(context.Context, route.ClassifyQuery) (string, route.Confidence, map[string]any, error) {
	return rc.handler, rc.confidence, rc.evidence, rc.err
}

func replayInvalid(format string, args ...any) *cli.Error {
	return cli.Invalidf("ROUTE_REPLAY_INVALID", format, args...).
		WithHint("name the seq of a ROUTE_DECISION entry in the tier ledger of --plane (cp-ledger show --event-type ROUTE_DECISION)")
}

// replay re-decides the ROUTE_DECISION at seq under the policy it records
// (read back from blobs/ by its hash), with the request it records, the
// session's count it records and the classifier's recorded answer, and
// compares the answers. It writes nothing.
func (r *router) replay(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	seq, _, err := req.Int("replay")
	if err != nil {
		return cli.Outcome{Err: err}
	}
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	l, err := r.ledgerIn(root, c, req, plane.ForReading)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	defer l.store.Close()
	var line []byte
	if err := l.store.Lines(ctx, seq, seq+1, func(_ int64, b []byte) bool { line = append([]byte(nil), b...); return false }); err != nil {
		return cli.Outcome{Err: err}
	}
	if line == nil {
		return cli.Outcome{Err: replayInvalid("%s ledger has no entry %d", l.tier.Tier, seq)}
	}
	v, err := jcs.Decode(line)
	if err != nil {
		return cli.Outcome{Err: replayInvalid("entry %d does not parse: %v (run cp-ledger verify)", seq, err)}
	}
	e, _ := v.(map[string]any)
	if et, _ := e["event_type"].(string); et != EventType {
		return cli.Outcome{Err: replayInvalid("entry %d is %v, not %s", seq, e["event_type"], EventType)}
	}
	meta, _ := e["metadata"].(map[string]any)
	polHash, _ := meta["policy_sha256"].(string)
	reqHash, _ := meta["request_sha256"].(string)
	pb, err := plane.ReadBlob(root, polHash)
	if err != nil && isCoded(err) {
		return cli.Outcome{Err: err} // BLOB_MISMATCH: the kept policy was changed
	} else if err != nil {
		return cli.Outcome{Err: replayInvalid("entry %d: the policy %s it was decided under is not kept under blobs/: %v", seq, polHash, err)}
	}
	p, err := route.Compile(pb, nil)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	m, err := recordedRequest(root, meta, reqHash)
	if err != nil {
		return cli.Outcome{Err: replayInvalid("entry %d: %v", seq, err)}
	}
	used := int64(-1)
	if n, ok := num(meta["session_llm_calls"]).(int64); ok {
		used = n
	}
	var clf route.Classifier
	if cm, ok := meta["classifier"].(map[string]any); ok && cm["outcome"] != "unavailable" {
		rc := recordedClassifier{}
		rc.handler, _ = cm["handler"].(string)
		conf, _ := cm["confidence"].(string)
		rc.confidence = route.Confidence(conf)
		rc.evidence, _ = cm["evidence"].(map[string]any)
		if msg, ok := cm["error"].(string); ok {
			rc.err = errors.New(msg)
		}
		clf = rc
	}
	d, err := p.Decide(ctx, m, used, clf)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	decision, _ := e["decision"].(string)
	rec := summary(meta, decision)
	dd := "ROUTED"
	if d.Denied {
		dd = "DENIED"
	}
	rep := summary(decisionMeta(d, map[string]any{}, nil), dd)
	res := replayResult{Seq: seq, Same: true, PolicySHA256: polHash, RequestSHA256: reqHash, Recorded: rec, Replayed: rep, Differences: []string{}}
	for _, k := range compared {
		if fmt.Sprint(rec[k]) != fmt.Sprint(rep[k]) {
			res.Same = false
			res.Differences = append(res.Differences, k)
		}
	}
	if !res.Same {
		return cli.Outcome{Err: &cli.Error{Exit: cli.ExitDenied, Code: "ROUTE_REPLAY_DIFFERENT",
			Message: fmt.Sprintf("decision %d replayed under its policy gives another answer (%s): recorded %v, replayed %v", seq, strings.Join(res.Differences, ", "), rec["handler"], rep["handler"]),
			Hint:    "the decision does not follow from its policy and request: the entry or the router changed (cp-ledger verify checks the entry)",
			Result:  res}}
	}
	return cli.Outcome{Result: res}
}

func isCoded(err error) bool {
	var c interface{ Code() string }
	return errors.As(err, &c)
}

// recordedRequest returns the request a decision records (in its entry,
// or under blobs/ when large), checked against its recorded hash.
func recordedRequest(root string, meta map[string]any, hash string) (map[string]any, error) {
	var m map[string]any
	if v, ok := meta["request"].(map[string]any); ok {
		m = v
	} else if bh, ok := meta["request_blob"].(string); ok {
		b, err := plane.ReadBlob(root, bh)
		if err != nil {
			return nil, fmt.Errorf("its request %s is not kept under blobs/: %v", bh, err)
		}
		v, err := jcs.Decode(b)
		if err != nil {
			return nil, err
		}
		if m, ok = v.(map[string]any); !ok {
			return nil, errors.New("its request blob is not an object")
		}
	} else {
		return nil, errors.New("it records no request")
	}
	canon, err := jcs.Marshal(m)
	if err != nil {
		return nil, err
	}
	if h := sha256.Sum256(canon); "sha256:"+hex.EncodeToString(h[:]) != hash {
		return nil, fmt.Errorf("its request does not hash to its request_sha256 %s", hash)
	}
	return m, nil
}

// ---- list-handlers ----

type handlersResult struct {
	Handlers []route.Handler `json:"handlers"`
}

func listHandlers(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	hs, err := route.InstalledHandlers(root)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	out := append([]route.Handler{{Name: route.DefaultHandler, Capabilities: []string{}, Description: "built in: the default route's handler (no specialist)"}},
		route.SortedHandlers(hs)...)
	return cli.Outcome{Result: handlersResult{Handlers: out}}
}

func handlersText(w io.Writer, res any) error {
	r, ok := res.(handlersResult)
	if !ok {
		return cli.Fields(w, res)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range r.Handlers {
		pkg := h.PackageID
		if pkg == "" {
			pkg = "(built in)"
		}
		caps := strings.Join(h.Capabilities, ",")
		if caps == "" {
			caps = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Name, pkg, caps, strconv.Quote(h.Description))
	}
	return tw.Flush()
}
