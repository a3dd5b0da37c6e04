package ledgercmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/trace"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/legacy"
	"github.com/itchyny/gojq"
	"github.com/tidwall/gjson"
	"golang.org/x/mod/sumdb/note"
)

// target is the ledger a request names.
type target struct {
	path   string
	tier   string // "HO3"... for a plane ledger, "" for a bare file
	origin string
	dir    string      // the tier's directory, for a plane ledger
	plane  plane.Tier  // its tier.json
	actor  plane.Actor // who asks: the call's identity, stamped on entries
	// session is the HO1 session whose ledger this is (--session), and
	// root the plane's HO3 root then (a new session ledger's GENESIS
	// records HO2's head).
	session, root string
}

// open opens the target's ledger for a: a plane ledger through the plane's
// opener (which signs its checkpoints with the plane's key), a file named
// by --ledger as a file store of its own.
func (t target) open(a plane.Access) (ledger.Store, error) {
	if t.tier != "" {
		return plane.OpenTierLedger(t.dir, t.plane, t.path, a, t.actor)
	}
	if a == plane.ForAppend {
		return ledger.OpenWriter(t.path, ledger.Options{Actor: t.actor.Name, AuthOff: t.actor.AuthOff})
	}
	return ledger.OpenFileStore(t.path)
}

// expectsCheckpoint reports whether the target's plane signs a checkpoint
// with every append, so that verify requires one.
func (t target) expectsCheckpoint() bool { return t.tier != "" && t.plane.PlaneName != "" }

// resolve finds the ledger of a request: --ledger, or the tier ledger of
// --plane (default: the tier of the root).
func resolve(c *cli.Call, req cli.Request) (target, error) {
	if s := req.String("session_id"); s != "" {
		return sessionTarget(c, req, s)
	}
	if p := req.String("ledger"); p != "" {
		if req.Has("plane") {
			return target{}, cli.Usagef("give --ledger or --plane, not both")
		}
		if !strings.HasSuffix(p, ".jsonl") || filepath.Base(p) == ".jsonl" {
			// X.jsonl has X.tlog, X.checkpoint and X.lock beside it; any
			// other name would let "x" and "x.jsonl" share them.
			return target{}, cli.Usagef("--ledger %s: a ledger is a file named X.jsonl", p)
		}
		return ledgerTarget(p, c.Actor())
	}
	root, err := c.Root()
	if err != nil {
		return target{}, err
	}
	id := req.String("plane")
	if id == "" {
		id = c.RootPlane() // the tier --root named
	}
	dir, err := plane.Dir(root, id)
	if err != nil {
		return target{}, cli.Usagef("%v", err)
	}
	t, err := plane.ReadTier(dir)
	var coded interface{ Code() string }
	if errors.As(err, &coded) {
		return target{}, err // TIER_INVALID: invalid input, exit 3
	} else if err != nil {
		return target{}, cli.Errorf(cli.ExitUnavailable, "PLANE_INVALID", "reading tier: %v", err)
	}
	path := plane.LedgerPath(dir, t)
	return target{path: path, tier: t.Tier, origin: plane.Origin(t, path), dir: dir, plane: t, actor: c.Actor()}, nil
}

// sessionTarget is the ledger of HO1 session id (--session, DESIGN.md §13):
// planes/ho1/sessions/<id>/ledger/session.jsonl, its id checked before
// any path is built from it.
func sessionTarget(c *cli.Call, req cli.Request, id string) (target, error) {
	if req.Has("ledger") {
		return target{}, cli.Usagef("give --ledger or --session, not both")
	}
	if p := req.String("plane"); p != "" && p != "ho1" {
		return target{}, cli.Usagef("--session names an HO1 session; --plane %s is not HO1", p)
	}
	if err := checkSession(id); err != nil {
		return target{}, err
	}
	root, err := c.Root()
	if err != nil {
		return target{}, err
	}
	dir, _ := plane.Dir(root, "ho1")
	t, err := plane.ReadTier(dir)
	var coded interface{ Code() string }
	if errors.As(err, &coded) {
		return target{}, err
	} else if err != nil {
		return target{}, cli.Errorf(cli.ExitUnavailable, "PLANE_INVALID", "reading tier: %v", err)
	}
	path := filepath.Join(dir, plane.SessionLedger(id))
	return target{path: path, tier: t.Tier, origin: plane.Origin(t, path), dir: dir, plane: t, actor: c.Actor(),
		session: id, root: root}, nil
}

// sessionGenesis is the GENESIS that starts a session's ledger: it records
// the head of HO2's ledger (plane.SessionGenesis, as cp-wo start does), so
// that the session hangs off the plane's history.
func sessionGenesis(ctx context.Context, t target) (ledger.Draft, error) {
	return plane.SessionGenesis(ctx, t.root, t.session)
}

// ledgerTarget is the target of --ledger p. A ledger inside a plane (an
// X.jsonl in a tier's ledger/ directory, or in an HO1 session's
// sessions/<id>/ledger/) is that plane's ledger however it is named: it
// leaves the plane's signed checkpoint with every append and verify
// requires one, as G6 does, so a tail appended through --ledger cannot be
// cut unseen. Symbolic links in the directories above are resolved to find
// the plane; the ledger keeps the path it was given.
func ledgerTarget(p string, actor plane.Actor) (target, error) {
	bare := target{path: p, origin: ledger.DefaultOrigin(p), actor: actor}
	d, err := cli.RealParent(p) // as the kernel resolves it: links, then ".."
	if err != nil {
		return target{}, err
	}
	if filepath.Base(d) != "ledger" {
		return bare, nil
	}
	dirs := []string{filepath.Dir(d)}
	if s := filepath.Dir(filepath.Dir(d)); filepath.Base(s) == "sessions" {
		dirs = []string{filepath.Dir(s), filepath.Dir(d)} // the tier's, first
	}
	for _, dir := range dirs {
		if _, err := os.Lstat(filepath.Join(dir, "tier.json")); err != nil {
			continue
		}
		t, err := plane.ReadTier(dir)
		var coded interface{ Code() string }
		if errors.As(err, &coded) {
			return target{}, err
		} else if err != nil {
			return target{}, cli.Errorf(cli.ExitUnavailable, "PLANE_INVALID", "reading tier: %v", err)
		}
		// Opened where it really is: a plane's ledger is never opened
		// through a link (its origin keeps the name it was given).
		real := filepath.Join(d, filepath.Base(p))
		tg := target{path: real, tier: t.Tier, origin: plane.Origin(t, p), dir: dir, plane: t, actor: actor}
		if id := filepath.Base(filepath.Dir(d)); len(dirs) == 2 && dir == dirs[0] && t.Tier == "HO1" && plane.ValidSessionID(id) {
			// A ledger of session id, named by path: the session's, as
			// --session names it (its entries stamped _session_id, an
			// empty one started by the GENESIS that records HO2's head).
			tg.session, tg.root = id, filepath.Dir(filepath.Dir(dir))
		}
		return tg, nil
	}
	return bare, nil
}

// writers keeps one open ledger per path for the life of one Run (a
// stream appends batch after batch to the same files), and closes them when
// the run ends.
type writers struct {
	mu     sync.Mutex
	m      map[string]ledger.Store
	scopes map[string][3]string // --ledger path: the root, tier and session it acts on
}

func (w *writers) get(t target) (ledger.Store, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if l, ok := w.m[t.path]; ok {
		return l, nil
	}
	l, err := t.open(plane.ForAppend)
	if err != nil {
		return nil, err
	}
	if w.m == nil {
		w.m = map[string]ledger.Store{}
	}
	w.m[t.path] = l
	return l, nil
}

func (w *writers) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.m {
		l.Close()
	}
	w.m = nil
}

// appendBatch appends requests that arrived together; consecutive requests
// for the same ledger go in one durable write.
func (w *writers) appendBatch(ctx context.Context, c *cli.Call, reqs []cli.Request) []cli.Outcome {
	outs := make([]cli.Outcome, 0, len(reqs))
	for len(reqs) > 0 {
		t, err := resolve(c, reqs[0])
		if err == nil {
			err = w.judged(reqs[0], t)
		}
		if err != nil {
			return append(outs, cli.Outcome{Err: err})
		}
		run := 1
		for run < len(reqs) && sameTarget(reqs[run], reqs[0]) {
			run++
		}
		drafts := make([]ledger.Draft, 0, run)
		var draftErr error
		for _, req := range reqs[:run] {
			d, err := draft(req, t)
			if err != nil {
				draftErr = err
				break
			}
			drafts = append(drafts, d)
		}
		if len(drafts) == 0 { // nothing to write: leave the ledger untouched, uncreated
			return append(outs, cli.Outcome{Err: draftErr})
		}
		if err := anchorSession(ctx, t, reqs[0], true); err != nil {
			return append(outs, cli.Outcome{Err: err})
		}
		l, err := w.get(t)
		if err != nil {
			return append(outs, cli.Outcome{Err: err})
		}
		entries, err := appendTo(ctx, l, t, drafts)
		c.Logf("appended %d entries to %s", len(entries), t.path)
		if r, ok := l.(repairer); ok && r.LastRepair().Any() {
			c.Warnf("%s: repaired an unfinished append: %s", t.path, describeRepair(r.LastRepair()))
		}
		for _, e := range entries {
			outs = append(outs, appended(e))
		}
		if err == nil && len(entries) > 0 {
			if aerr := anchorSession(ctx, t, reqs[0], false); aerr != nil {
				// One outcome per request: the last entry's answer says
				// it was written, and that its anchor was not.
				last := entries[len(entries)-1]
				outs[len(outs)-1] = cli.Outcome{Err: anchorFailed(aerr, last, t), LedgerEntryID: last.ID, Seq: last.Seq}
				return outs
			}
		}
		if err == nil {
			err = draftErr
		}
		if err != nil {
			return append(outs, cli.Outcome{Err: err})
		}
		reqs = reqs[run:]
	}
	return outs
}

// anchorSession anchors a session's ledger around an append to it within
// a work order (--session with --wo, or a token's claims): such an append
// is a work-order step, and each one leaves the session's checkpoint
// anchored in HO2's ledger and HO2's in HO3's (plane.AnchorChain, DESIGN.md
// §13). before, it runs ahead of the append, on a session ledger that
// exists: a session that contradicts one of its anchors (cut or rewritten
// below it) is refused before anything is written, and what it holds
// unanchored is anchored. An append to HO1's own ledger (worker.jsonl,
// --plane ho1) within a work order is a step the same way: the chain
// anchors HO1's own ledger in HO2's at every step. An append outside any
// work order, or to any other ledger, is anchored by the next work-order
// step (it would otherwise cost two appends to the parents per append).
func anchorSession(ctx context.Context, t target, req cli.Request, before bool) error {
	wo := req.String("work_order_id")
	if wo == "" {
		return nil
	}
	if t.session == "" {
		if t.tier != "HO1" || filepath.Clean(t.path) != filepath.Clean(plane.LedgerPath(t.dir, t.plane)) {
			return nil
		}
		_, err := plane.AnchorChain(ctx, plane.HO3Root(t.dir, t.plane), t.actor, wo, "")
		return err
	}
	if t.root == "" {
		return nil
	}
	if before {
		if _, err := os.Lstat(t.path); err != nil {
			return nil // a new session: its GENESIS is anchored after the append
		}
	}
	_, err := plane.AnchorChain(ctx, t.root, t.actor, wo, t.session)
	return err
}

// anchorFailed is the answer to an append whose entries were written but
// whose anchor failed: the anchor's code, saying so.
func anchorFailed(err error, last ledger.Entry, t target) error {
	what := "session"
	if t.session == "" {
		what = "ledger"
	}
	e := cli.AsError(err)
	e.Message = fmt.Sprintf("appended up to seq %d, but anchoring the %s failed: %s", last.Seq, what, e.Message)
	return e
}

// judged refuses a target named by --ledger that is no longer where the
// firewall judged the path to lead (a directory link of the caller's
// changed since, in a stream whose judgement of the path stands): the
// file the append would open must have the plane, tier and session the
// request was allowed for.
func (w *writers) judged(req cli.Request, t target) error {
	p := req.String("ledger")
	if p == "" {
		return nil
	}
	w.mu.Lock()
	sc, ok := w.scopes[p]
	w.mu.Unlock()
	root, tier, session, err := cli.PathScope(t.path)
	if err != nil {
		return err
	}
	if !ok || sc != [3]string{root, tier, session} {
		return cli.Errorf(cli.ExitInvalid, "LEDGER_LINKED", "--ledger %s now leads to %s, not where the firewall judged it to lead (a link on its way changed): refused", p, t.path)
	}
	return nil
}

func sameTarget(a, b cli.Request) bool {
	return a.String("ledger") == b.String("ledger") && a.String("plane") == b.String("plane") &&
		a.String("session_id") == b.String("session_id") && a.String("work_order_id") == b.String("work_order_id")
}

// appendTo appends drafts to the target's open ledger. A session ledger
// that is still empty is started in the same write by its GENESIS (whose
// entry is not one of the answers: the requests' entries are).
func appendTo(ctx context.Context, l ledger.Store, t target, drafts []ledger.Draft) ([]ledger.Entry, error) {
	if t.session == "" {
		return l.Append(ctx, drafts)
	}
	st, err := l.State(ctx)
	if err != nil {
		return nil, err
	}
	if st.Size > 0 {
		return l.Append(ctx, drafts)
	}
	g, err := sessionGenesis(ctx, t)
	if err != nil {
		return nil, err
	}
	es, err := l.Append(ctx, append([]ledger.Draft{g}, drafts...))
	if len(es) > 0 {
		es = es[1:]
	}
	return es, err
}

// repairer is a store that can say what an append had to mend (the file
// store: a torn tail, stored hashes out of step).
type repairer interface{ LastRepair() ledger.Repair }

func describeRepair(r ledger.Repair) string {
	var parts []string
	if r.TornBytes > 0 {
		parts = append(parts, fmt.Sprintf("removed a partial line of %d bytes at offset %d", r.TornBytes, r.TornOffset))
	}
	if r.RebuiltHashes > 0 {
		parts = append(parts, fmt.Sprintf("recomputed stored hashes of %d entries", r.RebuiltHashes))
	}
	if r.CompletedLine {
		parts = append(parts, "restored the newline of a whole last entry")
	}
	if r.TornHashBytes > 0 {
		parts = append(parts, fmt.Sprintf("removed a partial stored hash of %d bytes", r.TornHashBytes))
	}
	if r.DroppedHashes > 0 {
		parts = append(parts, fmt.Sprintf("dropped stored hashes of %d unwritten entries", r.DroppedHashes))
	}
	return strings.Join(parts, "; ")
}

// draft turns a validated append request into a ledger draft, stamping the
// tier of a plane ledger into metadata._tier.
func draft(req cli.Request, t target) (ledger.Draft, error) {
	d := ledger.Draft{
		EventType: req.String("event_type"), SubmissionID: req.String("submission_id"),
		Decision: req.String("decision"), Reason: req.String("reason"),
		PromptsUsed: req.Strings("prompts_used"), Metadata: req.Object("metadata"),
	}
	// A tool-owned type appended by hand would be read by the gates as the
	// tool's own record (a forged INSTALLED waiver voids G5): refused on
	// every ledger, plane or not.
	if ledger.Reserved(d.EventType) {
		return d, cli.Errorf(cli.ExitDenied, "RESERVED_EVENT_TYPE", "event type %s is reserved to the tool that owns it; cp-ledger append never writes it", d.EventType).
			WithHint("choose a type outside the event catalogue (DESIGN.md §8)")
	}
	if err := reservedMetadata(d.Metadata, t, req); err != nil {
		return d, err
	}
	if t.tier != "" {
		if got, ok := d.Metadata["_tier"]; ok && got != t.tier {
			return d, cli.Errorf(cli.ExitDenied, "TIER_MISMATCH", "metadata._tier %v does not match the ledger's tier %s", got, t.tier)
		}
		m := make(map[string]any, len(d.Metadata)+1)
		for k, v := range d.Metadata {
			m[k] = v
		}
		m["_tier"] = t.tier
		if t.session != "" {
			m["_session_id"] = t.session
		}
		if wo := req.String("work_order_id"); wo != "" {
			m["_work_order_id"] = wo
		}
		d.Metadata = m
	}
	return d, nil
}

// reservedMetadata refuses metadata keys that begin with "_": the tools
// stamp them (DESIGN.md §5, §8), so a caller could otherwise forge them or
// hide a stamp. Two are accepted when they say what the stamp will say
// anyway, so that entries piped from show append as they are: _tier equal
// to the ledger's tier (checked by draft, TIER_MISMATCH), _session_id and
// _work_order_id equal to the request's, and _auth "off" from a caller
// without a verified token (stamped "off" all the same).
func reservedMetadata(meta map[string]any, t target, req cli.Request) error {
	for k, v := range meta {
		if !strings.HasPrefix(k, "_") || k == "_tier" && t.tier != "" {
			continue
		}
		switch {
		case k == "_auth" && v == "off" && t.actor.AuthOff,
			k == "_session_id" && t.session != "" && v == t.session,
			k == "_work_order_id" && t.tier != "" && v == req.String("work_order_id") && v != "":
			continue
		}
		return cli.Errorf(cli.ExitDenied, "RESERVED_METADATA", "metadata key %s is reserved to the tools (keys beginning with _ are stamped, never given)", k).
			WithHint("rename the key without its leading _")
	}
	return nil
}

// show prints the entries that pass every filter, one per line, as stored.
func show(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	t, err := resolve(c, req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	f, err := filterFor(req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	l, err := t.open(plane.ForReading)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	defer l.Close()
	if f.where != nil {
		stop := f.guard(ctx)
		defer stop()
	}
	limit, _, _ := req.Int("limit")
	var printed int64
	var ferr error
	stopped := false
	buf := make([]byte, 0, 4<<10)
	err = l.Lines(ctx, f.from, -1, func(pos int64, line []byte) bool {
		if f.to >= 0 && pos >= f.to {
			stopped = true
			return false
		}
		ok, err := f.match(ctx, line, pos)
		if err != nil || !ok {
			ferr = err
			return err == nil
		}
		buf = append(append(buf[:0], line...), '\n')
		if c.Format == "text" {
			err = entryText(c.Stdout, buf)
		} else {
			_, err = c.Stdout.Write(buf)
		}
		if err != nil {
			ferr = err
			return false
		}
		if printed++; limit > 0 && printed >= limit {
			stopped = true
			return false
		}
		return true
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if tb, ok := l.(interface{ TornBytes() (int64, error) }); ok && !stopped {
		if n, err := tb.TornBytes(); err == nil && n > 0 {
			c.Warnf("%s: %d bytes after the last complete line (a torn tail) not shown", t.path, n)
		}
	}
	return cli.Outcome{}
}

// filter is show's compiled filters.
type filter struct {
	eventType, submission *string
	since                 string
	from, to              int64
	where                 *gojq.Code

	// The --where budget: evaluation time spent so far, and the context
	// the memory guard cancels (see guard).
	spent    time.Duration
	whereCtx context.Context
}

// Bounds on --where, so that a hostile or careless expression cannot hang
// the tool or exhaust the machine. Each evaluation may take whereTimeout;
// all the evaluations of one show together whereBudget (time spent reading
// the ledger or writing output, a reader paging slowly, is not counted);
// and the heap may grow by at most whereMemory while they run. Past any of
// them show stops with WHERE_TIMEOUT or WHERE_TOO_LARGE (exit 3). Only the
// first value an expression yields is looked at (it decides the entry).
// Variables only so that tests can shrink them.
var (
	whereTimeout        = 2 * time.Second
	whereBudget         = 10 * time.Second
	whereMemory  uint64 = 512 << 20
)

var (
	errWhereEntry  = errors.New("entry deadline")
	errWhereBudget = errors.New("total budget")
	errWhereMemory = errors.New("memory bound")
)

// guard watches the heap while --where runs: it samples the bytes held by
// heap objects every few milliseconds and cancels the evaluation context
// once they grow past whereMemory (gojq checks its context at every step,
// so a growing value stops within one sample). A single builtin call can
// still allocate up to gojq's own limits (a 2 GiB string) before the guard
// sees it. The returned function stops the guard.
func (f *filter) guard(parent context.Context) func() {
	ctx, cancel := context.WithCancelCause(parent)
	f.whereCtx = ctx
	// runtime.ReadMemStats rather than runtime/metrics: that package's
	// init costs every cp-ledger process ~0.07 ms, and a sample every 5 ms
	// (a stop of a few µs) costs --where nothing measurable.
	var ms runtime.MemStats
	heap := func() uint64 {
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	limit := heap() + whereMemory
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if heap() > limit {
					cancel(errWhereMemory)
					return
				}
			}
		}
	}()
	return func() { close(done); cancel(nil) }
}

func filterFor(req cli.Request) (*filter, error) {
	f := &filter{to: -1}
	if req.Has("event_type") {
		s := req.String("event_type")
		f.eventType = &s
	}
	if req.Has("submission_id") {
		s := req.String("submission_id")
		f.submission = &s
	}
	if s := req.String("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, cli.Usagef("--since %q: want an RFC 3339 time", s)
		}
		f.since = t.UTC().Format(ledger.TimeFormat)
	}
	if s := req.String("seq"); s != "" {
		a, b, isRange := strings.Cut(s, ":")
		var err error
		if a != "" {
			if f.from, err = strconv.ParseInt(a, 10, 64); err != nil {
				return nil, cli.Usagef("--seq %q: want A:B", s)
			}
		}
		switch {
		case !isRange:
			f.to = f.from + 1
		case b != "":
			if f.to, err = strconv.ParseInt(b, 10, 64); err != nil {
				return nil, cli.Usagef("--seq %q: want A:B", s)
			}
		}
	}
	if s := req.String("where"); s != "" {
		q, err := gojq.Parse(s)
		if err != nil {
			return nil, cli.Invalidf("INVALID_INPUT", "--where: %v", err)
		}
		if f.where, err = gojq.Compile(q); err != nil {
			return nil, cli.Invalidf("INVALID_INPUT", "--where: %v", err)
		}
	}
	return f, nil
}

// match applies the filters to one line; the cheap ones read fields with
// gjson, and only --where decodes the entry.
func (f *filter) match(ctx context.Context, line []byte, pos int64) (bool, error) {
	if f.eventType != nil || f.submission != nil || f.since != "" {
		if !gjson.ValidBytes(line) {
			return false, cli.Errorf(cli.ExitDenied, "LEDGER_INVALID", "entry %d is not valid JSON (run cp-ledger verify)", pos)
		}
		r := gjson.GetManyBytes(line, "event_type", "submission_id", "timestamp")
		if f.eventType != nil && r[0].String() != *f.eventType {
			return false, nil
		}
		if f.submission != nil && r[1].String() != *f.submission {
			return false, nil
		}
		if f.since != "" && r[2].String() < f.since {
			return false, nil
		}
	}
	if f.where == nil {
		return true, nil
	}
	v, err := jcs.Decode(line)
	if err != nil {
		return false, cli.Errorf(cli.ExitDenied, "LEDGER_INVALID", "entry %d is not valid JSON (run cp-ledger verify): %v", pos, err)
	}
	if f.whereCtx != nil {
		ctx = f.whereCtx
	}
	left := whereBudget - f.spent
	cause := errWhereBudget
	if left > whereTimeout {
		left, cause = whereTimeout, errWhereEntry
	}
	ctx, cancel := context.WithTimeoutCause(ctx, left, cause)
	defer cancel()
	start := time.Now()
	out, ok := f.where.RunWithContext(ctx, v).Next()
	f.spent += time.Since(start)
	if _, isErr := out.(error); isErr && ctx.Err() != nil {
		switch context.Cause(ctx) {
		case errWhereEntry:
			return false, cli.Invalidf("WHERE_TIMEOUT", "--where on entry %d: still running after %s (the limit for one entry)", pos, whereTimeout)
		case errWhereBudget:
			return false, cli.Invalidf("WHERE_TIMEOUT", "--where: evaluations took %s in all by entry %d (the limit for one show); narrow the entries with --seq, --since or --event-type", whereBudget, pos)
		case errWhereMemory:
			return false, cli.Invalidf("WHERE_TOO_LARGE", "--where on entry %d: the expression's values grew past %d MiB", pos, whereMemory>>20)
		}
		return false, ctx.Err() // cancelled: a signal
	}
	if !ok {
		return false, nil
	}
	if err, isErr := out.(error); isErr {
		return false, cli.Invalidf("INVALID_INPUT", "--where on entry %d: %v", pos, err)
	}
	return out != nil && out != false, nil
}

// verifiers returns the checkpoint verifier keys for a request: the key it
// names (--verify-key, else CONTROL_PLANE_VERIFY_KEY), which makes a signed
// checkpoint mandatory, plus, for a plane ledger, the plane's keys trusted
// for checkpoints (config/trusted_keys.json), which check the signatures
// there are.
func verifiers(c *cli.Call, req cli.Request, t target) (vs note.Verifiers, explicit bool, err error) {
	spec := req.String("verify_key")
	if spec == "" {
		spec = c.Env.VerifyKey
	}
	var trusted []trust.Key
	if t.tier != "" {
		root, err := c.Root()
		if err != nil {
			return nil, false, err
		}
		if trusted, err = trust.Load(root); err != nil {
			return nil, false, err
		}
	}
	if spec == "" && len(trusted) == 0 {
		return nil, false, nil
	}
	vs, err = trust.Verifiers(trusted, trust.PurposeCheckpoint, spec)
	return vs, spec != "", err
}

func verify(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	if req.Has("provenance") {
		return verifyProvenance(c, req)
	}
	if req.Has("proof") {
		return verifyProof(c, req)
	}
	t, err := resolve(c, req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	var rep ledger.Report
	if req.Bool("legacy") {
		rep, err = verifyLegacy(t.path)
	} else {
		vs, explicit, verr := verifiers(c, req, t)
		if verr != nil {
			return cli.Outcome{Err: verr}
		}
		progress, finish := c.Progress("verifying " + t.path)
		defer finish()
		opts := ledger.VerifyOptions{Verifiers: vs, RequireSigned: explicit, Expect: t.expectsCheckpoint(), Progress: progress}
		if p := req.String("trusted_checkpoint"); p != "" {
			b, err := regfile.ReadFile(p)
			if err != nil {
				return cli.Outcome{Err: err}
			}
			opts.Held = append(opts.Held, b)
		}
		rep, err = verifyTarget(ctx, t, opts)
	}
	c.Logf("verified %d entries of %s", rep.Entries, t.path)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if !rep.Valid {
		first := rep.Issues[0]
		e := cli.Errorf(cli.ExitDenied, "LEDGER_INVALID", "%s: seq %d: %s: %s", t.path, first.Seq, first.Code, first.Message)
		e.Result = rep
		if len(rep.Issues) > 1 {
			e.Hint = fmt.Sprintf("%d issues in all; see .result.issues", len(rep.Issues))
		}
		return cli.Outcome{Err: e}
	}
	return cli.Outcome{Result: rep}
}

// verifyTarget verifies the target's ledger, opened for reading.
func verifyTarget(ctx context.Context, t target, opts ledger.VerifyOptions) (ledger.Report, error) {
	s, err := t.open(plane.ForReading)
	if err != nil {
		return ledger.Report{}, err
	}
	defer s.Close()
	return ledger.Verify(ctx, s, opts)
}

func verifyLegacy(path string) (ledger.Report, error) {
	f, err := ledger.OpenFile(path)
	if err != nil {
		return ledger.Report{}, err
	}
	defer f.Close()
	lr, err := legacy.Verify(f)
	if err != nil {
		return ledger.Report{}, err
	}
	rep := ledger.Report{Valid: len(lr.Issues) == 0, Entries: lr.Entries, RootHash: lr.LastHash, Issues: []ledger.Issue{}}
	for _, is := range lr.Issues {
		rep.Issues = append(rep.Issues, ledger.Issue{Seq: is.Seq, ID: is.ID, Code: is.Code, Message: is.Message})
	}
	if !rep.Valid {
		first := rep.Issues[0].Seq
		rep.FirstBadSeq = &first
	}
	return rep, nil
}

// verifyProof checks a prove or consistency result piped in, offline. A
// proof is anchored when a named verifier key checked the checkpoint it
// carries, or when it matches a trusted checkpoint kept elsewhere; an
// unanchored proof is only consistent with itself, and the result says so.
func verifyProof(c *cli.Call, req cli.Request) cli.Outcome {
	pt := proofPlane(c, req)
	vs, explicit, err := verifiers(c, req, pt)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	planeKeys := pt.tier != "" // a key the plane trusts checked the proof's signed checkpoint
	raw, _ := json.Marshal(req)
	var held *ledger.Checkpoint
	if p := req.String("trusted_checkpoint"); p != "" {
		b, err := regfile.ReadFile(p)
		if err != nil {
			return cli.Outcome{Err: err}
		}
		c, _, err := ledger.OpenCheckpoint(b, vs)
		if err != nil {
			return cli.Outcome{Err: cli.Errorf(cli.ExitDenied, "PROOF_INVALID", "trusted checkpoint %s: %v", p, err)}
		}
		held = &c
	}
	root := func(h ledger.Checkpoint) string { return fmt.Sprintf("%x", h.Root[:]) }
	if req.Has("leaf_hash") {
		var p ledger.Inclusion
		if err := json.Unmarshal(raw, &p); err != nil {
			return cli.Outcome{Err: cli.Invalidf("INVALID_INPUT", "inclusion proof: %v", err)}
		}
		err := ledger.VerifyInclusion(p, vs)
		if err == nil && held != nil && (held.Size != p.TreeSize || root(*held) != p.RootHash) {
			err = cli.Errorf(cli.ExitDenied, "PROOF_INVALID", "the proof is against a tree of size %d, the trusted checkpoint is of size %d with another root: prove against it (--tree-size %d)", p.TreeSize, held.Size, held.Size)
		}
		res := map[string]any{"valid": err == nil, "proof_type": "inclusion", "seq": p.Seq, "tree_size": p.TreeSize, "anchored": explicit || held != nil || planeKeys}
		return proofOutcome(c, res, err)
	}
	var p ledger.Consistency
	if err := json.Unmarshal(raw, &p); err != nil || !req.Has("from_root") {
		return cli.Outcome{Err: cli.Invalidf("INVALID_INPUT", "stdin holds a proof that is neither an inclusion (leaf_hash) nor a consistency (from_root) proof")}
	}
	err = ledger.VerifyConsistency(p)
	if err == nil && held != nil {
		switch {
		case held.Size == p.From && root(*held) == p.FromRoot, held.Size == p.To && root(*held) == p.ToRoot:
		default:
			err = cli.Errorf(cli.ExitDenied, "PROOF_INVALID", "neither end of the proof (sizes %d and %d) is the trusted checkpoint (size %d and its root)", p.From, p.To, held.Size)
		}
	}
	res := map[string]any{"valid": err == nil, "proof_type": "consistency", "from": p.From, "to": p.To, "anchored": held != nil}
	return proofOutcome(c, res, err)
}

// verifyProvenance checks a file's provenance piped in from cp-trace file,
// offline (trace.VerifyProvenance): its entries against their inclusion
// proofs and the signed checkpoint, the manifest against the install
// entry, the receipt and the file's hashes against both. The checkpoint's
// signature is checked with --verify-key or the keys the plane (--root,
// $CONTROL_PLANE, the working directory) trusts for checkpoints.
func verifyProvenance(c *cli.Call, req cli.Request) cli.Outcome {
	var pt target
	if t, err := resolve(c, req); err == nil {
		pt = t
	}
	vs, explicit, err := verifiers(c, req, pt)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return cli.Outcome{Err: cli.Invalidf("INVALID_INPUT", "provenance: %v", err)}
	}
	v, err := trace.VerifyProvenance(raw, vs)
	if err == nil {
		if p := req.String("trusted_checkpoint"); p != "" {
			b, rerr := regfile.ReadFile(p)
			if rerr != nil {
				return cli.Outcome{Err: rerr}
			}
			held, _, oerr := ledger.OpenCheckpoint(b, vs)
			switch {
			case oerr != nil:
				err = cli.Errorf(cli.ExitDenied, "PROOF_INVALID", "trusted checkpoint %s: %v", p, oerr)
			case held.Size != v.TreeSize:
				err = cli.Errorf(cli.ExitDenied, "PROOF_INVALID", "the provenance is proved against a tree of size %d, the trusted checkpoint is of size %d", v.TreeSize, held.Size)
			}
			explicit = true
		}
	}
	res := map[string]any{"valid": err == nil, "proof_type": "file_provenance", "path": v.Path, "package_id": v.PackageID,
		"version": v.Version, "sha256": v.SHA256, "install_seq": v.InstallSeq, "latest_seq": v.LatestSeq, "tree_size": v.TreeSize,
		"anchored": explicit || pt.tier != ""}
	return proofOutcome(c, res, err)
}

// proofPlane is the plane whose keys trusted for checkpoints may vouch for
// a piped inclusion proof's signed checkpoint (a plane ledger's proofs
// carry its signed checkpoint): the plane the request names (--root,
// --plane, $CONTROL_PLANE) or the working directory is in. None for an
// unsigned checkpoint, or outside a plane.
func proofPlane(c *cli.Call, req cli.Request) target {
	if !strings.Contains(req.String("checkpoint"), "\n\n") {
		return target{}
	}
	t, err := resolve(c, req)
	if err != nil {
		return target{}
	}
	return t
}

func proofOutcome(c *cli.Call, res map[string]any, err error) cli.Outcome {
	if err == nil && res["anchored"] == false {
		c.Warnf("the proof holds together, but nothing vouches for its roots: give --verify-key (a signed checkpoint) or --trusted-checkpoint")
	}
	if err != nil {
		e := cli.AsError(err)
		e.Result = res
		return cli.Outcome{Err: e}
	}
	return cli.Outcome{Result: res}
}

// verifyText is the view of a ledger that verified (the runner never
// calls it for a failure: see verifyFailedText).
func verifyText(w io.Writer, result any) error {
	if m, ok := result.(map[string]any); ok && m["valid"] == true {
		// A proof or a file's provenance piped in and checked.
		switch m["proof_type"] {
		case "file_provenance":
			_, err := fmt.Fprintf(w, "provenance valid: %v is %v %v (%v), installed at seq %v, latest seq %v, proved in a tree of %v, anchored %v\n",
				m["path"], m["package_id"], m["version"], m["sha256"], m["install_seq"], m["latest_seq"], m["tree_size"], m["anchored"])
			return err
		default:
			_, err := fmt.Fprintf(w, "%v proof valid, anchored %v\n", m["proof_type"], m["anchored"])
			return err
		}
	}
	rep, ok := result.(ledger.Report)
	if !ok || !rep.Valid {
		return fmt.Errorf("not a valid ledger's report: %T", result)
	}
	_, err := fmt.Fprintf(w, "ledger valid: %d entries, root %s\n", rep.Entries, rep.RootHash)
	return err
}

// verifyFailedText lists a failed verify's issues, under the runner's
// error line.
func verifyFailedText(w io.Writer, result any) error {
	rep, ok := result.(ledger.Report)
	if !ok {
		return fmt.Errorf("unexpected result %T", result)
	}
	fmt.Fprintf(w, "ledger NOT valid: %d entries read, %d issues\n", rep.Entries, len(rep.Issues))
	for _, is := range rep.Issues {
		id := ""
		if is.ID != "" {
			id = " " + is.ID
		}
		fmt.Fprintf(w, "  seq %d%s %s: %s\n", is.Seq, id, is.Code, is.Message)
	}
	if rep.IssuesTruncated {
		fmt.Fprintln(w, "  (more issues not listed)")
	}
	return nil
}

// entryText is show's text view of one entry line (bytes the filter has
// already parsed as JSON): seq, time, event type, decision, subject, reason.
func entryText(w io.Writer, line []byte) error {
	g := gjson.ParseBytes(line)
	_, err := fmt.Fprintf(w, "%6d  %s  %s  %s  %s  %s\n", g.Get("seq").Int(), g.Get("timestamp").String(),
		orDash(g.Get("event_type").String()), orDash(g.Get("decision").String()),
		orDash(g.Get("submission_id").String()), orDash(g.Get("reason").String()))
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func checkpoint(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	t, err := resolve(c, req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	spec := req.String("sign_key")
	if spec == "" {
		spec = c.Env.SigningKey
	}
	var signers []note.Signer
	if spec != "" {
		s, err := keys.Signer(spec)
		if err != nil {
			return cli.Outcome{Err: err}
		}
		signers = append(signers, s)
	}
	origin := req.String("origin")
	if origin == "" {
		origin = t.origin
	}
	l, err := t.open(plane.ForCheckpoint) // a plane ledger's checkpoint is signed by its key first
	if err != nil {
		return cli.Outcome{Err: err}
	}
	defer l.Close()
	ck, text, err := l.Checkpoint(ctx, origin, signers...)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: map[string]any{"tree_size": ck.Size, "root_hash": fmt.Sprintf("%x", ck.Root[:]),
		"checkpoint": string(text), "signed": len(signers) > 0 || t.expectsCheckpoint(), "origin": origin}}
}

func prove(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	t, err := resolve(c, req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	seq, _, _ := req.Int("seq")
	size, _, _ := req.Int("tree_size")
	origin := req.String("origin")
	if origin == "" {
		origin = t.origin
	}
	l, err := t.open(plane.ForReading)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	defer l.Close()
	p, err := ledger.ProveInclusion(ctx, l, seq, size, origin)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: p}
}

func consistency(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	t, err := resolve(c, req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	from, _, _ := req.Int("from")
	to, _, _ := req.Int("to")
	l, err := t.open(plane.ForReading)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	defer l.Close()
	p, err := ledger.ProveConsistency(ctx, l, from, to)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: p}
}

// relativeParent returns the parent ledger's path as stored in GENESIS
// metadata: relative to the plane root for a plane ledger, else relative to
// the child ledger's directory. No absolute path is ever written.
func relativeParent(c *cli.Call, t target, parent string) (string, error) {
	base := filepath.Dir(t.path)
	if t.tier != "" {
		root, err := c.Root()
		if err != nil {
			return "", err
		}
		base = root
	}
	absBase, err1 := filepath.Abs(base)
	absParent, err2 := filepath.Abs(parent)
	if err1 != nil || err2 != nil {
		return "", cli.Usagef("--parent-ledger %s: cannot make it relative", parent)
	}
	rel, err := filepath.Rel(absBase, absParent)
	if err != nil {
		return "", cli.Usagef("--parent-ledger %s: cannot make it relative to %s", parent, base)
	}
	return filepath.ToSlash(rel), nil
}

// genesis opens an empty ledger with a GENESIS entry. Given --parent-ledger
// it reads that ledger's head itself; a --parent-hash that disagrees with it
// is refused.
func genesis(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	t, err := resolve(c, req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if err := reservedMetadata(req.Object("metadata"), t, req); err != nil {
		return cli.Outcome{Err: err}
	}
	meta := map[string]any{}
	for k, v := range req.Object("metadata") {
		meta[k] = v
	}
	parentHash := req.String("parent_hash")
	if t.session != "" {
		// A session's GENESIS records HO2's head as the tool finds it
		// (as an append that starts the session does): a parent the
		// caller names would hang the session off a history it chose.
		if req.Has("parent_ledger") || req.Has("parent_hash") {
			return cli.Outcome{Err: cli.Errorf(cli.ExitDenied, "PARENT_MISMATCH", "session %s's GENESIS records the head of HO2's ledger, which cp-ledger reads itself: give no --parent-ledger or --parent-hash", t.session)}
		}
		g, err := sessionGenesis(ctx, t)
		if err != nil {
			return cli.Outcome{Err: err}
		}
		for k, v := range g.Metadata {
			meta[k] = v
		}
	} else if pl := req.String("parent_ledger"); pl != "" {
		p, err := ledger.OpenFileStore(pl)
		if err != nil {
			return cli.Outcome{Err: err}
		}
		st, err := p.State(ctx)
		p.Close()
		if err != nil {
			return cli.Outcome{Err: err}
		}
		if parentHash != "" && parentHash != st.Head {
			return cli.Outcome{Err: cli.Errorf(cli.ExitDenied, "PARENT_MISMATCH", "--parent-hash %s is not the head of %s (%s)", parentHash, pl, st.Head)}
		}
		parentHash = st.Head
		rel, err := relativeParent(c, t, pl)
		if err != nil {
			return cli.Outcome{Err: err}
		}
		meta["parent_ledger"] = rel
		meta["parent_size"] = json.Number(strconv.FormatInt(st.Size, 10))
	}
	if parentHash != "" || req.Has("parent_hash") {
		meta["parent_hash"] = parentHash
	}
	if t.tier != "" {
		meta["_tier"] = t.tier
	}
	if t.session != "" {
		meta["_session_id"] = t.session
	}
	l, err := t.open(plane.ForAppend)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	defer l.Close()
	e, err := ledger.Genesis(ctx, l, ledger.Draft{SubmissionID: req.String("submission_id"), Reason: req.String("reason"), Metadata: meta})
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return appended(e)
}

// appendResult is what append and genesis answer for one entry. It encodes
// itself: a stream prints one per entry.
type appendResult struct{ e *ledger.Entry }

// AppendJSON writes the result with keys in sorted order.
func (r appendResult) AppendJSON(b []byte) []byte {
	b = append(b, `{"entry_hash":"`...)
	b = append(b, r.e.EntryHash...)
	b = append(b, `","id":"`...)
	b = append(b, r.e.ID...)
	b = append(b, `","previous_hash":"`...)
	b = append(b, r.e.PreviousHash...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, r.e.Seq, 10)
	b = append(b, `,"timestamp":"`...)
	b = append(b, r.e.Timestamp...)
	return append(b, `"}`...)
}

// MarshalJSON makes the result printable by encoding/json too.
func (r appendResult) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

func appended(e ledger.Entry) cli.Outcome {
	return cli.Outcome{Result: appendResult{&e}, LedgerEntryID: e.ID, Seq: e.Seq}
}
