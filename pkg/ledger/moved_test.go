package ledger

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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
