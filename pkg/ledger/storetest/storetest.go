// Package storetest is the behaviour every ledger.Store driver must have
// (store.go's contract), as a table of tests that a driver's own tests run
// against it: the file store's (pkg/ledger) and PostgreSQL's
// (pkg/ledger/pgstore) run the same one.
package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Opener opens a fresh, empty, writable store with opts (each call a new
// ledger).
type Opener func(t *testing.T, opts ledger.Options) ledger.Store

// Key returns a new checkpoint key and the verifiers of its signatures.
func Key(t testing.TB, origin string) (*ledger.CheckpointKey, note.Verifiers) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "storetest-checkpoint")
	require.NoError(t, err)
	s, err := note.NewSigner(skey)
	require.NoError(t, err)
	v, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	vs := note.VerifierList(v)
	return &ledger.CheckpointKey{Origin: origin, Signer: s,
		Trusted: func() (note.Verifiers, error) { return vs, nil }}, vs
}

// RequireCode requires err to carry the stable code.
func RequireCode(t testing.TB, err error, code string) {
	t.Helper()
	var coded interface{ Code() string }
	require.True(t, errors.As(err, &coded), "got %v, want %s", err, code)
	require.Equal(t, code, coded.Code(), "%v", err)
}

// Run runs the table against the store open makes.
func Run(t *testing.T, open Opener) {
	ctx := context.Background()
	op := func(id string) map[string]any { return map[string]any{"op_id": id} }

	t.Run("AppendStateAndChain", func(t *testing.T) {
		s := open(t, ledger.Options{Actor: "tester"})
		st, err := s.State(ctx)
		require.NoError(t, err)
		require.Zero(t, st.Size)
		var all []ledger.Entry
		for i := range 5 {
			es, err := s.Append(ctx, []ledger.Draft{{EventType: ev("A")}, {EventType: ev("B"), Metadata: map[string]any{"i": i}}})
			require.NoError(t, err)
			require.Len(t, es, 2)
			all = append(all, es...)
		}
		for i, e := range all {
			require.EqualValues(t, i, e.Seq)
			require.Equal(t, "tester", e.Actor)
			if i > 0 {
				require.Equal(t, all[i-1].EntryHash, e.PreviousHash)
			}
		}
		st, err = s.State(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 10, st.Size)
		require.Equal(t, all[9].EntryHash, st.Head)
		rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{})
		require.NoError(t, err)
		require.True(t, rep.Valid, "%+v", rep.Issues)
		require.EqualValues(t, 10, rep.Entries)
		for seq := range int64(10) {
			p, err := ledger.ProveInclusion(ctx, s, seq, 0, "storetest")
			require.NoError(t, err)
			require.NoError(t, ledger.VerifyInclusion(p, nil))
		}
		c, err := ledger.ProveConsistency(ctx, s, 3, 10)
		require.NoError(t, err)
		require.NoError(t, ledger.VerifyConsistency(c))
	})

	t.Run("Lines", func(t *testing.T) {
		s := open(t, ledger.Options{Actor: "tester"})
		_, err := s.Append(ctx, []ledger.Draft{{EventType: ev("A")}, {EventType: ev("B")}, {EventType: ev("C")}})
		require.NoError(t, err)
		seqs := func(from, to int64) (out []int64) {
			require.NoError(t, s.Lines(ctx, from, to, func(seq int64, line []byte) bool {
				e, err := ledger.ParseLine(line)
				require.NoError(t, err)
				require.Equal(t, seq, e.Seq)
				out = append(out, seq)
				return true
			}))
			return out
		}
		require.Equal(t, []int64{0, 1, 2}, seqs(0, -1))
		require.Equal(t, []int64{1}, seqs(1, 2))
		require.Equal(t, []int64{2}, seqs(2, 9))
		require.Empty(t, seqs(3, -1))
		n := 0
		require.NoError(t, s.Lines(ctx, 0, -1, func(int64, []byte) bool { n++; return false }))
		require.Equal(t, 1, n, "fn returning false stops Lines")
	})

	t.Run("Find", func(t *testing.T) {
		s := open(t, ledger.Options{Actor: "tester"})
		es, err := s.Append(ctx, []ledger.Draft{
			{EventType: ev("INSTALL_STARTED"), SubmissionID: "PKG-A", Metadata: op("OP-1")},
			{EventType: ev("NOTE"), SubmissionID: "PKG-A", Reason: `"event_type":"INSTALLED"`}, // the needle in a value
			{EventType: ev("INSTALLED"), SubmissionID: "PKG-A", Metadata: map[string]any{"op_id": "OP-1", "package_id": "P1",
				ledger.ChangedKey: ledger.Changed{Added: []string{"lib/a.py"}, Removed: []string{"lib/b.py"}}.Metadata()}},
			{EventType: ev("INSTALL_STARTED"), SubmissionID: "PKG-B", Metadata: map[string]any{"op_id": "OP-2", "note": map[string]any{"op_id": "OP-1"}}},
			{EventType: ev("CHECKPOINT_CREATED"), SubmissionID: "VER-1", Metadata: op("OP-2")},
		})
		require.NoError(t, err)
		for name, tc := range map[string]struct {
			q    ledger.Query
			want []int64
		}{
			"all":            {ledger.Query{}, []int64{0, 1, 2, 3, 4}},
			"types":          {ledger.Query{EventTypes: []string{"INSTALL_STARTED", "INSTALLED"}}, []int64{0, 2, 3}},
			"subject":        {ledger.Query{Subject: "PKG-A"}, []int64{0, 1, 2}},
			"type + subject": {ledger.Query{EventTypes: []string{"CHECKPOINT_CREATED"}, Subject: "VER-1"}, []int64{4}},
			"op (top level)": {ledger.Query{OpID: "OP-1"}, []int64{0, 2}},
			"op from":        {ledger.Query{OpID: "OP-2", From: 4}, []int64{4}},
			"metadata":       {ledger.Query{Metadata: map[string]string{"package_id": "P1"}}, []int64{2}},
			"metadata op_id": {ledger.Query{Metadata: map[string]string{"op_id": "OP-2"}}, []int64{3, 4}},
			"none":           {ledger.Query{Subject: "PKG-Z"}, nil},
			"id":             {ledger.Query{ID: es[3].ID}, []int64{3}},
			"id from":        {ledger.Query{ID: es[1].ID, From: 2}, nil},
			"no such id":     {ledger.Query{ID: "LED-0000000000000000"}, nil},
			"changed":        {ledger.Query{Changed: "lib/b.py"}, []int64{2}},
			"changed + type": {ledger.Query{Changed: "lib/a.py", EventTypes: []string{"NOTE"}}, nil},
			"not changed":    {ledger.Query{Changed: "lib/c.py"}, nil},
		} {
			var got []int64
			require.NoError(t, s.Find(ctx, tc.q, func(e *ledger.Entry) bool { got = append(got, e.Seq); return true }), name)
			require.Equal(t, tc.want, got, name)
			// The newest of them, through the store's own FindNewest
			// when it has one.
			e, err := ledger.FindNewest(ctx, s, tc.q)
			require.NoError(t, err, name)
			if len(tc.want) == 0 {
				require.Nil(t, e, name)
			} else {
				require.NotNil(t, e, name)
				require.Equal(t, tc.want[len(tc.want)-1], e.Seq, name)
				require.Equal(t, es[e.Seq].EntryHash, e.EntryHash, name)
			}
			// Every line of the range read and checked against the
			// store's tree: the same answer, with and without the root
			// of the entries before it.
			st, err := s.State(ctx)
			require.NoError(t, err, name)
			root, err := tlog.TreeHash(tc.q.From, s)
			require.NoError(t, err, name)
			for _, r := range []*tlog.Hash{nil, &root} {
				var checked []int64
				require.NoError(t, ledger.FindChecked(ctx, s, tc.q, r, st, func(e *ledger.Entry) { checked = append(checked, e.Seq) }), name)
				require.Equal(t, tc.want, checked, name)
			}
		}
		n := 0
		require.NoError(t, s.Find(ctx, ledger.Query{}, func(*ledger.Entry) bool { n++; return false }))
		require.Equal(t, 1, n, "fn returning false stops Find")
	})

	t.Run("EmptyAndGenesisBatches", func(t *testing.T) {
		s := open(t, ledger.Options{Actor: "tester"})
		es, err := s.Append(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, es)
		st, err := s.State(ctx)
		require.NoError(t, err)
		require.Zero(t, st.Size)
		_, err = s.Append(ctx, []ledger.Draft{{EventType: ev("GENESIS")}, {EventType: ev("NEXT")}})
		require.NoError(t, err)
		_, err = s.Append(ctx, []ledger.Draft{{EventType: ev("GENESIS")}})
		RequireCode(t, err, "LEDGER_NOT_EMPTY")
		_, err = ledger.Genesis(ctx, s, ledger.Draft{})
		RequireCode(t, err, "LEDGER_NOT_EMPTY")
		st, err = s.State(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 2, st.Size)
	})

	t.Run("BadDraftMidBatch", func(t *testing.T) {
		s := open(t, ledger.Options{Actor: "tester"})
		es, err := s.Append(ctx, []ledger.Draft{{EventType: ev("A")}, {EventType: ev("B"), Reason: "\xff"}, {EventType: ev("C")}})
		RequireCode(t, err, "INVALID_INPUT")
		require.Len(t, es, 1, "the drafts before the bad one are appended and returned")
		st, err := s.State(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, st.Size)
		require.Equal(t, es[0].EntryHash, st.Head)
	})

	t.Run("AuthOffStamp", func(t *testing.T) {
		s := open(t, ledger.Options{Actor: "tester", AuthOff: true})
		meta := map[string]any{"k": "v"}
		es, err := s.Append(ctx, []ledger.Draft{{EventType: ev("A"), Metadata: meta}})
		require.NoError(t, err)
		require.Equal(t, "off", es[0].Metadata["_auth"])
		require.NotContains(t, meta, "_auth", "the caller's map is never changed")
	})

	t.Run("SignedCheckpoints", func(t *testing.T) {
		k, vs := Key(t, "storetest/ho3/governance")
		s := open(t, ledger.Options{Actor: "tester", Checkpoint: k})
		for range 3 {
			_, err := s.Append(ctx, []ledger.Draft{{EventType: ev("A")}, {EventType: ev("B")}})
			require.NoError(t, err)
		}
		b, err := s.ReadCheckpoint()
		require.NoError(t, err)
		c, signed, err := ledger.OpenCheckpoint(b, vs)
		require.NoError(t, err)
		require.True(t, signed)
		st, err := s.State(ctx)
		require.NoError(t, err)
		require.Equal(t, st.Size, c.Size)
		require.Equal(t, st.Root, c.Root)
		rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Verifiers: vs, Expect: true})
		require.NoError(t, err)
		require.True(t, rep.Valid, "%+v", rep.Issues)
		require.NotNil(t, rep.Checkpoint)

		c2, text, err := s.Checkpoint(ctx, k.Origin)
		require.NoError(t, err)
		require.Equal(t, st.Size, c2.Size)
		got, err := s.ReadCheckpoint()
		require.NoError(t, err)
		require.Equal(t, text, got)
		_, err = s.Append(ctx, nil)
		require.NoError(t, err, "the stored checkpoint holds: an append could proceed")
	})

	t.Run("ForeignCheckpointRefused", func(t *testing.T) {
		k, _ := Key(t, "storetest/ho3/governance")
		s := open(t, ledger.Options{Actor: "tester", Checkpoint: k})
		_, err := s.Append(ctx, []ledger.Draft{{EventType: ev("A")}})
		require.NoError(t, err)
		// A checkpoint the plane's key did not sign, stored by Checkpoint
		// through a second handle with another key.
		other, _ := Key(t, "storetest/ho3/governance")
		st, err := s.State(ctx)
		require.NoError(t, err)
		forged, err := ledger.Checkpoint{Origin: k.Origin, Size: st.Size, Root: st.Root}.Sign(other.Signer)
		require.NoError(t, err)
		err = k.CheckStored(forged, "forged", "ledger", st.Size, false, func(int64) (tlog.Hash, error) { return st.Root, nil })
		RequireCode(t, err, ledger.CheckpointInvalid)
	})
}

// ev is a test's event type. Written through it, not as a string literal
// after the field name, which the event catalogue's completeness test
// (TestEventsComplete) reads as a tool writing that type.
func ev(typ string) string { return typ }
