package ledger

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/stretchr/testify/require"
)

// storeWith opens a fresh file store holding drafts.
func storeWith(t *testing.T, drafts ...Draft) Store {
	t.Helper()
	l, err := OpenWriter(filepath.Join(t.TempDir(), "s.jsonl"), Options{Actor: "tester"})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	_, err = l.Append(ctx, drafts)
	require.NoError(t, err)
	return l
}

func TestFind(t *testing.T) {
	op := func(id string) map[string]any { return map[string]any{"op_id": id} }
	s := storeWith(t,
		Draft{EventType: "INSTALL_STARTED", SubmissionID: "PKG-A", Metadata: op("OP-1")},
		Draft{EventType: "NOTE", SubmissionID: "PKG-A", Reason: `"event_type":"INSTALLED"`}, // the needle in a value
		Draft{EventType: "INSTALLED", SubmissionID: "PKG-A", Metadata: op("OP-1")},
		Draft{EventType: "INSTALL_STARTED", SubmissionID: "PKG-B", Metadata: map[string]any{"op_id": "OP-2", "note": map[string]any{"op_id": "OP-1"}}},
		Draft{EventType: "CHECKPOINT_CREATED", SubmissionID: "VER-1", Metadata: op("OP-2")},
	)
	for name, tc := range map[string]struct {
		q    Query
		want []int64
	}{
		"all":            {Query{}, []int64{0, 1, 2, 3, 4}},
		"types":          {Query{EventTypes: []string{"INSTALL_STARTED", "INSTALLED"}}, []int64{0, 2, 3}},
		"subject":        {Query{Subject: "PKG-A"}, []int64{0, 1, 2}},
		"type + subject": {Query{EventTypes: []string{"CHECKPOINT_CREATED"}, Subject: "VER-1"}, []int64{4}},
		"op (top level)": {Query{OpID: "OP-1"}, []int64{0, 2}},
		"op from":        {Query{OpID: "OP-2", From: 4}, []int64{4}},
		"none":           {Query{Subject: "PKG-Z"}, nil},
	} {
		var got []int64
		require.NoError(t, s.Find(ctx, tc.q, func(e *Entry) bool { got = append(got, e.Seq); return true }), name)
		require.Equal(t, tc.want, got, name)
	}
	n := 0
	require.NoError(t, s.Find(ctx, Query{}, func(*Entry) bool { n++; return false }))
	require.Equal(t, 1, n, "fn returning false stops Find")
}

// Lines serves the complete lines from A to B, and never a torn tail.
func TestLines(t *testing.T) {
	s := storeWith(t, Draft{EventType: "A"}, Draft{EventType: "B"}, Draft{EventType: "C"})
	l := s.(*Ledger)
	f, err := os.OpenFile(l.Path(), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"actor":"tester","decis`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	seqs := func(from, to int64) (out []int64) {
		require.NoError(t, s.Lines(ctx, from, to, func(seq int64, line []byte) bool {
			e, err := ParseLine(line)
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
	torn, err := l.TornBytes()
	require.NoError(t, err)
	require.EqualValues(t, len(`{"actor":"tester","decis`), torn)
}

// An empty batch appends nothing and says whether an append could
// proceed; a batch opening with GENESIS needs an empty ledger.
func TestAppendEmptyAndGenesisBatches(t *testing.T) {
	s := storeWith(t)
	_, err := s.Append(ctx, nil)
	require.NoError(t, err)
	st, err := s.State(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Size)

	_, err = s.Append(ctx, []Draft{{EventType: "GENESIS"}, {EventType: "NEXT"}})
	require.NoError(t, err)
	_, err = s.Append(ctx, []Draft{{EventType: "GENESIS"}})
	requireCode(t, err, "LEDGER_NOT_EMPTY")

	s.(*Ledger).opts.Checkpoint, _ = planeKey(t)
	_, err = s.Append(ctx, nil)
	requireCode(t, err, CheckpointMissing) // as an append would be refused
}

// A reader of lines needs only the lines: a FIFO planted as X.tlog or
// X.lock stops what needs them (State), not Lines or Find.
func TestLinesBesideRefusedSideFile(t *testing.T) {
	for _, side := range []string{".tlog", ".lock"} {
		path := newLedger(t, 3)
		sp := strings.TrimSuffix(path, ".jsonl") + side
		require.NoError(t, os.Remove(sp))
		require.NoError(t, syscall.Mkfifo(sp, 0o644))
		l, err := Open(path, Options{})
		require.NoError(t, err, side)
		n := 0
		require.NoError(t, l.Find(ctx, Query{EventTypes: []string{"EV"}}, func(*Entry) bool { n++; return true }), side)
		require.Equal(t, 3, n, side)
		_, err = l.State(ctx)
		requireCode(t, err, regfile.Code)
		l.Close()
	}
}

// seamOnly is a store seen only through the Store interface, as a driver
// of another package is: Verify reads it through State, Lines, ReadHashes
// and ReadCheckpoint alone.
type seamOnly struct{ Store }

// TestVerifyThroughTheSeam: Verify over the Store interface alone finds
// what it finds over the file store's own files (everything but what only
// files can have wrong), over more than one block of lines.
func TestVerifyThroughTheSeam(t *testing.T) {
	path := newLedger(t, 20000)
	both := func() (Report, Report) {
		t.Helper()
		s, err := OpenFileStore(path)
		require.NoError(t, err)
		defer s.Close()
		file, err := Verify(ctx, s, VerifyOptions{})
		require.NoError(t, err)
		seam, err := Verify(ctx, seamOnly{s}, VerifyOptions{})
		require.NoError(t, err)
		return file, seam
	}
	file, seam := both()
	require.True(t, file.Valid)
	require.Equal(t, file, seam)

	// An entry edited in place, its line the same length.
	lines := readLines(t, path)
	lines[12345] = strings.Replace(lines[12345], `"r"`, `"R"`, 1)
	writeLines(t, path, lines)
	file, seam = both()
	require.False(t, file.Valid)
	require.Equal(t, HashMismatch, file.Issues[0].Code)
	require.Equal(t, file, seam)
}
