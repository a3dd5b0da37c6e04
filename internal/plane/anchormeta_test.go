package plane

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAnchorMetadataIsItsJSON: the metadata an anchor is written with is
// what its JSON decodes to (numbers kept exact), the form the entry held
// when it was built by a JSON round trip, with and without the optional
// fields.
func TestAnchorMetadataIsItsJSON(t *testing.T) {
	for _, a := range []Anchor{
		{Path: "planes/ho2/ledger/workorder.jsonl", Origin: "p/ho2/workorder", TreeSize: 1 << 40, RootHash: "ab", Checkpoint: "p/ho2/workorder\n7\nq83=\n\n— p x\n",
			CheckpointHash: "sha256:00", WorkOrderID: "WO-20261206-001", SessionID: "SES-20261206-0123abcd", Seq: 9},
		{Path: workerLedger, Origin: "o", TreeSize: 1, RootHash: "cd", Checkpoint: "c", CheckpointHash: "h"},
	} {
		b, err := json.Marshal(a)
		require.NoError(t, err)
		var want map[string]any
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.UseNumber()
		require.NoError(t, d.Decode(&want))
		got, err := a.metadata()
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
}
