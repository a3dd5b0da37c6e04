package pgstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
)

// TestFindNewestPastAPage: FindNewest reads down from the end a page at a
// time, and answers what Find's last answer is when the newest entry the
// query selects lies more than a page below the end (a metadata condition
// the statement leaves to ledger.Query.Selects), with From, and none.
func TestFindNewestPastAPage(t *testing.T) {
	dsn := pgtest.DB(t)
	s := open(t, dsn, "governance", ledger.Options{Actor: "tester"}, "")
	const n = page + page/2 + 7
	for from := 0; from < n; {
		var ds []ledger.Draft
		for i := from; i < min(from+2000, n); i++ {
			md := map[string]any{"i": fmt.Sprint(i)}
			if i == 5 || i == 9 {
				md["mark"] = "old"
			}
			ds = append(ds, ledger.Draft{EventType: "ROUTE_DECISION", SubmissionID: "SES-1", Metadata: md})
		}
		_, err := s.Append(ctx, ds)
		require.NoError(t, err)
		from += len(ds)
	}
	last := func(q ledger.Query) int64 {
		seq := int64(-1)
		require.NoError(t, s.Find(ctx, q, func(e *ledger.Entry) bool { seq = e.Seq; return true }))
		return seq
	}
	for _, q := range []ledger.Query{
		{Subject: "SES-1"},
		{Subject: "SES-1", Metadata: map[string]string{"mark": "old"}},
		{EventTypes: []string{"ROUTE_DECISION"}, Metadata: map[string]string{"mark": "old"}},
		{Subject: "SES-1", Metadata: map[string]string{"mark": "old"}, From: 8},
		{Subject: "SES-1", Metadata: map[string]string{"mark": "old"}, From: 11},
		{Subject: "SES-1", Metadata: map[string]string{"i": fmt.Sprint(n - page - 3)}},
		{Subject: "SES-2"},
	} {
		e, err := s.FindNewest(ctx, q)
		require.NoError(t, err)
		want := last(q)
		if want < 0 {
			require.Nil(t, e, "%+v", q)
			continue
		}
		require.NotNil(t, e, "%+v", q)
		require.Equal(t, want, e.Seq, "%+v", q)
	}
	// The newest of a long session costs one row, not a page of them.
	t0 := time.Now()
	for range 10 {
		_, err := s.FindNewest(ctx, ledger.Query{EventTypes: []string{"ROUTE_DECISION"}, Subject: "SES-1"})
		require.NoError(t, err)
	}
	t.Logf("FindNewest of a %d-entry session: %v each", n, time.Since(t0)/10)
}
