package e2e

import (
	"context"
	"errors"
	"io/fs"
	"testing"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
)

// requireFindByType checks that the ledger library's Find (through the
// ledger's index, when there is one fit to use) returns exactly the
// complete lines of that event type, in order.
func requireFindByType(t *testing.T, path string, entries []entry, eventType, what string) {
	t.Helper()
	var want, got []string
	for _, e := range entries {
		if e.EventType == eventType {
			want = append(want, e.EntryHash)
		}
	}
	s, err := ledger.OpenFileStore(path)
	if errors.Is(err, fs.ErrNotExist) && len(want) == 0 {
		return // killed before it made the ledger
	}
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Find(context.Background(), ledger.Query{EventTypes: []string{eventType}}, func(e *ledger.Entry) bool {
		got = append(got, e.EntryHash)
		return true
	}))
	require.Equal(t, want, got, "%s: Find by event type %s", what, eventType)
}
