package ledger

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAttack33TypedSubjectOddIDs (session 33's attack on the typed-subject
// keys): WO_* entries with submission ids a writer's keys and a rebuild's
// could read differently (escapes the canonical encoder writes: quotes,
// backslashes, control characters, NUL, U+2028; one of 30 KB; a type's
// name and a NUL inside the id, as the key's separator is; invalid UTF-8
// is refused at append) are found by Find through the typed-subject keys
// as a scan finds them, before and after the index is rebuilt from the
// ledger, and Verify finds the writer's index byte for byte the rebuild's.
func TestAttack33TypedSubjectOddIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	w, err := OpenWriter(path, Options{Actor: "tester"})
	require.NoError(t, err)
	defer w.Close()
	ids := []string{"WO-\"q\"", `WO-\back\`, "WO-\x01\x1f\x7f", "WO-\x00nul", "WO-\u2028\u2029",
		"WO-" + strings.Repeat("x\\", 15_000), "WO_STARTED\x00WO-A", "WO-A\x00WO_STARTED", "WO-A"}
	var ds []Draft
	for _, id := range ids {
		ds = append(ds, Draft{EventType: "WO_CREATED", SubmissionID: id}, Draft{EventType: "LLM_CALL", SubmissionID: id},
			Draft{EventType: "WO_STARTED", SubmissionID: id})
	}
	_, err = w.Append(ctx, ds)
	require.NoError(t, err)
	check := func(when string) {
		t.Helper()
		for _, id := range ids {
			for _, q := range []Query{{Subject: id, EventTypes: []string{"WO_CREATED", "WO_STARTED"}}, {Subject: id, EventTypes: []string{"WO_STARTED"}},
				{Subject: id, EventTypes: []string{"WO_STARTED", "LLM_CALL"}}} {
				got, want, indexed := findBoth(t, path, q)
				require.True(t, indexed)
				require.Equal(t, want, got, "%s: %q %v", when, id, q.EventTypes)
				require.NotEmpty(t, want, "%s: %q %v", when, id, q.EventTypes)
			}
		}
		rep := verify(t, path, VerifyOptions{})
		require.True(t, rep.Valid, "%s: %+v", when, rep.Issues)
	}
	check("the writer's index")
	require.NoError(t, os.Remove(indexFile(path)))
	_, err = w.Append(ctx, []Draft{{EventType: "EV"}})
	require.NoError(t, err)
	check("the index rebuilt from the ledger")
}
