package routecmd

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/ledgercmd"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/route"
	"github.com/control-plane/cp/pkg/ledger"
)

// TestSessionCountAcrossTiersFromNewest: a session's count is the largest
// count-after of its newest entries in the three tier ledgers, and the sum
// of all its entries in all three when one of those newest records no
// count; a reservation counts once, with the decision that names it or
// without one (its caller gone). testPolicy allows two calls; each case
// routes an llm_assisted request in HO3.
func TestSessionCountAcrossTiersFromNewest(t *testing.T) {
	root := newPlane(t, testPolicy)
	n := func(i int64) json.Number { return json.Number(itoa(i)) }
	forge := func(id, event, session string, m map[string]any) *ledger.Entry {
		t.Helper()
		dir, err := plane.Dir(root, id)
		require.NoError(t, err)
		l, _, err := plane.OpenLedger(dir, plane.ForAppend, plane.Actor{Name: "forger"})
		require.NoError(t, err)
		defer l.Close()
		es, err := l.Append(context.Background(), []ledger.Draft{{EventType: event, SubmissionID: session, Decision: "ROUTED", Metadata: m}})
		require.NoError(t, err)
		return &es[0]
	}
	deploy := func(session string) string {
		_, out, _ := run(t, Run, `{"intent":"deploy"}`, "--root", root, "--session", session)
		return gjson.Get(out, "error.code").String()
	}

	// The newest of HO1 says two spent, HO2's (older) one: the largest.
	const a = "SES-20261207-00000b01"
	forge("ho2", EventType, a, map[string]any{"llm_calls": n(1), "session_llm_calls": n(0)})
	forge("ho1", EventType, a, map[string]any{"llm_calls": n(1), "session_llm_calls": n(1)})
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", deploy(a))

	// HO2's newest records no count: every tier summed (1 + 1), not the
	// largest count (1).
	const b = "SES-20261207-00000b02"
	forge("ho2", EventType, b, map[string]any{"llm_calls": n(1)})
	forge("ho1", EventType, b, map[string]any{"llm_calls": n(1), "session_llm_calls": n(0)})
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", deploy(b))

	// A reservation and the decision naming it count one call, from the
	// newest (the decision: 0 before it less its reservation, 1 its own)
	// and summed (an uncounted entry in HO2 forces the sum): room for one.
	for _, c := range []struct {
		session string
		sum     bool
	}{{"SES-20261207-00000b03", false}, {"SES-20261207-00000b04", true}} {
		if c.sum {
			forge("ho2", EventType, c.session, map[string]any{"llm_calls": n(0)})
		}
		r := forge("ho1", EventReserved, c.session, map[string]any{"llm_calls": n(1), "session_llm_calls": n(0)})
		forge("ho1", EventType, c.session, map[string]any{"llm_calls": n(1), "session_llm_calls": n(0), "reservation": r.ID})
		require.Equal(t, "", deploy(c.session), "sum %v", c.sum)
		require.Equal(t, "ROUTE_LIMIT_EXCEEDED", deploy(c.session), "sum %v", c.sum)
	}

	// A reservation no decision names (its caller killed during the call)
	// stays spent, newest or summed.
	const e = "SES-20261207-00000b05"
	forge("ho2", EventReserved, e, map[string]any{"llm_calls": n(1), "session_llm_calls": n(0)})
	require.Equal(t, "", deploy(e))
	require.Equal(t, "ROUTE_LIMIT_EXCEEDED", deploy(e))
}

// TestCancelledClassifierStaysReserved: a run cancelled while the
// classifier is asked (a signal, a caller hanging up) records no decision,
// and its reservation stays spent: the call may have been made. With two
// calls allowed, one more classifier call is asked, then none.
func TestCancelledClassifierStaysReserved(t *testing.T) {
	root := newPlane(t, testPolicy)
	const ses = "SES-20261207-00000c01"
	ctx, cancel := context.WithCancel(context.Background())
	hang := hangingClassifier{cancel: cancel}
	code, out, _ := run(t, func(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return RunWith(ctx, hang, cli.Options{}, args, stdin, stdout, stderr)
	}, `{"intent":"chat"}`, "--root", root, "--session", ses)
	require.NotEqual(t, 0, code, out)
	show := func(event string) []string {
		out := must(t, ledgercmd.Run, "", "show", "--root", root, "--event-type", event, "--submission-id", ses)
		if strings.TrimSpace(out) == "" {
			return nil
		}
		return lines(out)
	}
	require.Len(t, show(EventReserved), 1)
	require.Empty(t, show(EventType))

	var calls atomic.Int64
	clf := countingClassifier{fakeClassifier{handler: "default", conf: "0.9"}, &calls}
	for range 3 {
		must(t, with(clf), `{"intent":"chat"}`, "--root", root, "--session", ses)
	}
	require.EqualValues(t, 1, calls.Load(), "one call left after the cancelled one")
	ds := show(EventType)
	require.Len(t, ds, 3)
	require.Equal(t, "accepted", gjson.Get(ds[0], "metadata.classifier.outcome").String())
	require.EqualValues(t, 1, gjson.Get(ds[0], "metadata.session_llm_calls").Int(), "the cancelled call counted before it")
	for _, d := range ds[1:] {
		require.Equal(t, "limit_reached", gjson.Get(d, "metadata.classifier.outcome").String())
	}
	must(t, ledgercmd.Run, "", "verify", "--root", root)
}

// hangingClassifier cancels its run while it is asked, as a signal would.
type hangingClassifier struct{ cancel context.CancelFunc }

func (h hangingClassifier) Classify(ctx context.Context, _ route.ClassifyQuery) (string, route.Confidence, map[string]any, error) {
	h.cancel()
	<-ctx.Done()
	return "", "", nil, ctx.Err()
}

// TestCountFailsClosedOnUnreadableTier: a tier whose ledger cannot be read
// fails a limited session's count, and nothing is recorded: its entries
// would otherwise go uncounted. A request in no session (nothing to count)
// is still routed.
func TestCountFailsClosedOnUnreadableTier(t *testing.T) {
	root := newPlane(t, testPolicy)
	const ses = "SES-20261207-00000d01"
	must(t, Run, `{"intent":"deploy"}`, "--root", root, "--plane", "ho1", "--session", ses)
	dir, err := plane.Dir(root, "ho1")
	require.NoError(t, err)
	require.NoError(t, os.Rename(filepath.Join(dir, "tier.json"), filepath.Join(dir, "tier.json.away")))
	code, out, errs := run(t, Run, `{"intent":"deploy"}`, "--root", root, "--session", ses)
	require.NotEqual(t, 0, code, out)
	require.Contains(t, errs, "reading the ho1 ledger for the session's count")
	show := must(t, ledgercmd.Run, "", "show", "--root", root, "--event-type", EventType, "--submission-id", ses)
	require.Empty(t, strings.TrimSpace(show), "a decision recorded in HO3 without HO1's count")
	must(t, Run, `{"intent":"deploy"}`, "--root", root)
}
