package routecmd

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// A session's LLM calls (limits.llm_calls_per_session) are counted across
// the plane: a caller who may route in several tiers (--plane ho2, --plane
// ho1) does not get the limit once per tier ledger.
//
// Every entry that spends a limited session's calls is appended while the
// route-session locks are held (holdSessions: HO3's lock file, then each
// PostgreSQL tier's advisory lock, in the order of countPlanes), and
// records the session's count before it
// (session_llm_calls) and what it spends (llm_calls). Counts therefore only
// grow, in the order the entries were written, whichever tier ledger they
// went to: the session's count is the largest count-after (before +
// llm_calls) among the newest entries of the session in each tier ledger.
// A run reads that once per session (ledger.FindNewest: through the index,
// newest first), then adds what the entries other processes appended since
// spend. When some tier's newest entry records no count (written with no
// limit in force), the session's entries are read and summed, in every tier.
//
// Entries are ROUTE_DECISIONs and ROUTE_RESERVEDs. A reservation is a
// classifier call counted before it is made (reserve): the decision that
// then records the call names its reservation ("reservation", the entry's
// id), and counts the call once: its session_llm_calls is the count before
// it less its own reservation, and summing, it spends its llm_calls less
// the one reserved. A reservation no decision names (a caller killed
// during its call) stays spent: the call may have been made.

// EventReserved is a classifier call reserved against the session's limit.
const EventReserved = "ROUTE_RESERVED"

// countTypes are the entries a session's count reads.
var countTypes = []string{EventType, EventReserved}

// countPlanes are the tiers a session's count is read across, in the order
// their route-session locks are taken.
var countPlanes = []string{"ho3", "ho2", "ho1"}

// tierCount is one tier ledger as the run counts sessions in it: a handle
// that reads it (the run's appending one, when it has one), the spans of
// seqs this run wrote there (counted as they were decided), and, per
// session, the first seq not read yet.
type tierCount struct {
	store  ledger.Store
	dir    string
	closer bool // store is this tierCount's own (read-only) handle
	next   map[string]int64
	own    []span
}

// counter returns the tierCount of plane id, opening it for reading when
// the run holds no appending handle of it.
func (r *router) counter(c *cli.Call, id string) (*tierCount, error) {
	r.mu.Lock()
	tc := r.counts[id]
	r.mu.Unlock()
	if tc != nil {
		return tc, nil
	}
	tc = &tierCount{next: map[string]int64{}}
	if l := r.open(ledgerKey{plane: id, actor: c.Actor()}); l != nil {
		tc.store, tc.dir = l.store, l.dir
	} else {
		dir, err := plane.Dir(r.root, id)
		if err != nil {
			return nil, err
		}
		// A tier whose ledger cannot be read (missing included: every
		// plane has three, from bootstrap) fails the count: its entries
		// would go uncounted (fail closed).
		s, _, err := plane.OpenLedger(dir, plane.ForReading, c.Actor())
		if err != nil {
			return nil, fmt.Errorf("reading the %s ledger for the session's count: %w", id, err)
		}
		tc.store, tc.dir, tc.closer = s, dir, true
	}
	r.mu.Lock()
	if r.counts == nil {
		r.counts = map[string]*tierCount{}
	}
	r.counts[id] = tc
	r.mu.Unlock()
	return tc, nil
}

// counters returns the tierCounts of countPlanes, in lock order.
func (r *router) counters(c *cli.Call) ([]*tierCount, error) {
	tcs := make([]*tierCount, 0, len(countPlanes))
	for _, id := range countPlanes {
		tc, err := r.counter(c, id)
		if err != nil {
			return nil, err
		}
		tcs = append(tcs, tc)
	}
	return tcs, nil
}

// holdSessions takes the route-session locks and returns what releases
// them: the lock file beside HO3's ledger (every tier in files is under
// the HO3 root, on one host), then, in the order of countPlanes, the
// advisory lock of each tier whose ledger is in PostgreSQL (other hosts
// share those). Every process takes them in that order.
func (r *router) holdSessions(ctx context.Context, c *cli.Call) (func(), error) {
	tcs, err := r.counters(c)
	if err != nil {
		return nil, err
	}
	var held []func()
	release := func() {
		for _, rel := range slices.Backward(held) {
			rel()
		}
	}
	rel, err := plane.HoldKey(ctx, r.root, nil, sessionLockKey)
	if err != nil {
		return nil, err
	}
	held = append(held, rel)
	for _, tc := range tcs {
		if _, ok := tc.store.(interface {
			Advisory(context.Context, string) (func(), error)
		}); !ok {
			continue
		}
		rel, err := plane.HoldKey(ctx, tc.dir, tc.store, sessionLockKey)
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, rel)
	}
	return release, nil
}

// used returns the LLM calls session has spent across the plane's tiers,
// as recorded, plus what this run decided since: its first read in the run
// from the newest entries, later ones from where the last read stopped, so
// that what other processes recorded meanwhile counts too. It is called
// with the route-session locks held (holdSessions).
func (r *router) used(ctx context.Context, c *cli.Call, session string) (int64, error) {
	tcs, err := r.counters(c)
	if err != nil {
		return 0, err
	}
	if r.totals == nil {
		r.totals = map[string]int64{}
	}
	n, read := r.totals[session]
	if !read {
		var summed bool
		if n, summed, err = newestCount(ctx, tcs, session); err != nil {
			return 0, err
		}
		if !summed {
			// Under the locks, the newest entries are the newest:
			// nothing after them to read yet.
			r.totals[session] = n
			return n, nil
		}
	}
	for _, tc := range tcs {
		add, err := tc.since(ctx, session)
		if err != nil {
			return 0, err
		}
		n += add
	}
	r.totals[session] = n
	return n, nil
}

// newestCount is a session's count from the newest entry of the session in
// each tier ledger: the largest count-after, each tier then read from
// after its newest (none: from its start) when next it is read. When one of
// them records no count, every tier is read from its start and summed
// (since): summed.
func newestCount(ctx context.Context, tcs []*tierCount, session string) (n int64, summed bool, err error) {
	for _, tc := range tcs {
		e, err := ledger.FindNewest(ctx, tc.store, ledger.Query{EventTypes: countTypes, Subject: session})
		if err != nil {
			return 0, false, err
		}
		if e == nil {
			// Read from its start next time; until then, what this
			// run writes there is its own (wrote keeps the spans).
			tc.next[session] = 0
			continue
		}
		after, ok := countAfter(e.Metadata)
		if !ok {
			for _, tc := range tcs {
				delete(tc.next, session)
			}
			return 0, true, nil
		}
		n = max(n, after)
		tc.next[session] = e.Seq + 1
	}
	return n, false, nil
}

// since returns what the session's entries from the first seq not read yet
// spend, but those this run wrote (counted as decided).
func (tc *tierCount) since(ctx context.Context, session string) (int64, error) {
	st, err := tc.store.State(ctx)
	if err != nil {
		return 0, err
	}
	from := tc.next[session]
	if st.Size <= from {
		// Nothing recorded since the last read (a stream's own batches
		// are counted as they are decided: wrote): the index is not
		// opened again.
		return 0, nil
	}
	var n int64
	err = tc.store.Find(ctx, ledger.Query{EventTypes: countTypes, Subject: session, From: from}, func(e *ledger.Entry) bool {
		if !tc.mine(e.Seq) {
			n += spends(e.Metadata)
		}
		from = e.Seq + 1
		return true
	})
	tc.next[session] = max(from, st.Size)
	return n, err
}

// countAfter reads a recorded count: session_llm_calls + llm_calls, each a
// non-negative integer.
func countAfter(meta map[string]any) (int64, bool) {
	before, ok := count(meta["session_llm_calls"])
	if !ok {
		return 0, false
	}
	calls, ok := count(meta["llm_calls"])
	if !ok {
		return 0, false
	}
	return before + calls, true
}

// count reads a recorded count: a non-negative integer.
func count(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil && i >= 0
}

// spends is what a recorded entry adds to its session's count: its
// llm_calls, less the call its reservation counted already.
func spends(meta map[string]any) int64 {
	n := llmCalls(meta)
	if _, ok := meta["reservation"].(string); ok && n > 0 {
		n--
	}
	return n
}

// llmCalls reads a recorded entry's llm_calls. No tool records a negative
// one, and none gives calls back: read as none. One too large for an
// int64 (no tool records that either) is read as maxCalls, which no limit
// reaches.
func llmCalls(meta map[string]any) int64 {
	var f float64
	switch v := meta["llm_calls"].(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return min(max(n, 0), maxCalls)
		}
		f, _ = v.Float64()
	case float64:
		f = v
	}
	if !(f > 0) { // negative, zero or NaN
		return 0
	}
	return int64(min(math.Ceil(f), maxCalls))
}

// maxCalls bounds what one entry spends, so that a session's sum cannot
// overflow (and wrap below its limit) however many such entries it holds.
const maxCalls = 1 << 40

func (tc *tierCount) mine(seq int64) bool {
	for _, s := range tc.own {
		if seq >= s.from && seq < s.to {
			return true
		}
	}
	return false
}

// wrote records that the run appended [from, to) to the tier.
func (tc *tierCount) wrote(from, to int64) {
	for s, next := range tc.next {
		if next == from { // read up to these: nothing of anyone else's between
			tc.next[s] = to
		}
	}
	if n := len(tc.own); n > 0 && tc.own[n-1].to == from {
		tc.own[n-1].to = to
		return
	}
	tc.own = append(tc.own, span{from, to})
	low := to
	for _, next := range tc.next {
		low = min(low, next)
	}
	tc.own = slices.DeleteFunc(tc.own, func(s span) bool { return s.to <= low }) // never read back
}
