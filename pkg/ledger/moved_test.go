package ledger

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAppendToUnlinkedLedger: a writer that opened a ledger file which
// then lost its name (cp-ledger migrate unlinks it under the lock when
// the tier moves to another store) writes nothing: its entries would be
// acknowledged into a file no reader sees.
func TestAppendToUnlinkedLedger(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.jsonl")
	l, err := OpenWriter(path, Options{Actor: "t"})
	require.NoError(t, err)
	defer l.Close()
	_, err = l.Append(ctx, []Draft{{EventType: "A"}})
	require.NoError(t, err)
	require.NoError(t, os.Remove(path))
	_, err = l.Append(ctx, []Draft{{EventType: "B"}})
	var coded interface{ Code() string }
	require.ErrorAs(t, err, &coded)
	require.Equal(t, "LEDGER_MOVED", coded.Code())
}

// TestHold: while a store holds its ledger's lock, other writers wait
// (here, past their timeout) and its own reads go on.
func TestHold(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "l.jsonl")
	l, err := OpenWriter(path, Options{Actor: "t"})
	require.NoError(t, err)
	defer l.Close()
	_, err = l.Append(ctx, []Draft{{EventType: "A"}})
	require.NoError(t, err)
	release, err := l.Hold(ctx)
	require.NoError(t, err)
	other, err := OpenWriter(path, Options{Actor: "o", LockTimeout: 50 * time.Millisecond})
	require.NoError(t, err)
	defer other.Close()
	_, err = other.Append(ctx, []Draft{{EventType: "B"}})
	var coded interface{ Code() string }
	require.ErrorAs(t, err, &coded)
	require.Equal(t, "LOCK_TIMEOUT", coded.Code())
	// A writer cancelled while it waits (SIGINT, SIGTERM) says so, and
	// its error is still the context's.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	waiting, err := OpenWriter(path, Options{Actor: "w", LockTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer waiting.Close()
	_, err = waiting.Append(cctx, []Draft{{EventType: "C"}})
	require.ErrorAs(t, err, &coded)
	require.Equal(t, "CANCELLED", coded.Code())
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "waiting for the ledger lock")
	rep, err := Verify(ctx, l, VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Valid)
	st, err := l.State(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Size)
	release()
	_, err = other.Append(ctx, []Draft{{EventType: "B"}})
	require.NoError(t, err)
}

// TestExportFile: the export of a file store is its own .jsonl and .tlog,
// byte for byte (pgstore's tests export a database ledger the same way);
// an export never replaces a file.
func TestExportFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "l.jsonl")
	l, err := OpenWriter(path, Options{Actor: "t"})
	require.NoError(t, err)
	defer l.Close()
	for i := range 20 {
		_, err = l.Append(ctx, make([]Draft, i%4+1))
		require.NoError(t, err)
	}
	out := filepath.Join(dir, "out", "copy.jsonl")
	require.NoError(t, os.MkdirAll(filepath.Dir(out), 0o755))
	ex, err := ExportFile(ctx, l, out)
	require.NoError(t, err)
	require.EqualValues(t, 50, ex.State.Size)
	require.Nil(t, ex.Checkpoint)
	for _, p := range [][2]string{{path, out}, {filepath.Join(dir, "l.tlog"), filepath.Join(dir, "out", "copy.tlog")}} {
		a, err := os.ReadFile(p[0])
		require.NoError(t, err)
		b, err := os.ReadFile(p[1])
		require.NoError(t, err)
		require.Equal(t, a, b, p[1])
	}
	_, err = ExportFile(ctx, l, out)
	var coded interface{ Code() string }
	require.ErrorAs(t, err, &coded)
	require.Equal(t, "LEDGER_EXISTS", coded.Code())
	entries, err := os.ReadDir(filepath.Dir(out))
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary file left behind")
}
