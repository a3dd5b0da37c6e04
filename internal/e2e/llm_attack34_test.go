package e2e

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/llm/llmtest"
	"github.com/control-plane/cp/pkg/ledger"
)

// TestAttack34SecondCreated (session 34's attack, through the tools): a
// work order allows three calls, and makes them. A process that can
// write the plane's files (not its keys) zeroes the index's bucket of
// (WO_CREATED, the work order) (the table has no checksum), appends a
// copy of the work order's WO_CREATED to HO2's ledger (a well-formed
// entry: entries carry no MAC) and removes the work order's tally. The
// next cp-llm begins the tally from the WO_CREATED the index gives, the
// copy, after every call: it must refuse (BUDGET_EXCEEDED), and, with the
// index removed (rebuilt by the next writer), cp-ledger verify and G6
// clean, so must every later call.
func TestAttack34SecondCreated(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	p := newLLMPlane(t, 3, srv.ProvidersJSON(""))
	for i := range 3 {
		r := p.run(t, cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
		require.Equal(t, 0, r.code, "call %d: %s%s", i, r.stdout, r.stderr)
	}
	r := p.run(t, cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
	require.Equal(t, "BUDGET_EXCEEDED", errorCodeOf(r.stdout), "%s%s", r.stdout, r.stderr)
	calls := srv.Calls()

	ledgerPath := filepath.Join(p.root, filepath.FromSlash(ho2Ledger))
	// The WO_CREATED to copy.
	l, err := ledger.Open(ledgerPath, ledger.Options{})
	require.NoError(t, err)
	var created *ledger.Entry
	require.NoError(t, l.Find(context.Background(), ledger.Query{EventTypes: []string{"WO_CREATED"}, Subject: p.wo}, func(e *ledger.Entry) bool {
		created = e
		return false
	}))
	require.NoError(t, l.Close())
	require.NotNil(t, created)
	// The index's bucket of (WO_CREATED, the work order) zeroed.
	idx := ledger.IndexPath(ledgerPath)
	f, err := os.OpenFile(idx, os.O_RDWR, 0)
	require.NoError(t, err)
	var h [128]byte
	_, err = f.ReadAt(h[:], 0)
	require.NoError(t, err)
	buckets := binary.LittleEndian.Uint64(h[32:])
	key := uint64(14695981039346656037)
	for _, c := range []byte("ts\x00WO_CREATED\x00" + p.wo) {
		key ^= uint64(c)
		key *= 1099511628211
	}
	_, err = f.WriteAt(make([]byte, 8), 128+int64(key&(buckets-1))*8)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	// A copy of the WO_CREATED appended, as any writer of the files can.
	w, err := ledger.OpenWriter(ledgerPath, ledger.Options{Actor: created.Actor})
	require.NoError(t, err)
	_, err = w.Append(context.Background(), []ledger.Draft{{EventType: created.EventType, SubmissionID: created.SubmissionID,
		Decision: created.Decision, Reason: created.Reason, Metadata: created.Metadata}})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	tallyPath := filepath.Join(p.root, "planes", "ho2", "ledger", "llm-wo."+p.wo+".json")
	require.NoError(t, os.Remove(tallyPath))

	r = p.run(t, cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
	assert.Equal(t, "BUDGET_EXCEEDED", errorCodeOf(r.stdout), "a fourth call past llm_calls 3: %s%s", r.stdout, r.stderr)
	// Put back: the index removed (the next writer rebuilds it).
	require.NoError(t, os.Remove(idx))
	r = p.run(t, cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
	assert.Equal(t, "BUDGET_EXCEEDED", errorCodeOf(r.stdout), "with the index put back, a fifth call: %s%s", r.stdout, r.stderr)
	assert.Equal(t, calls, srv.Calls(), "no call past the budget reached the provider")
	r = p.run(t, cpLedger, p.admin, nil, "verify", "--plane", "ho2")
	t.Logf("cp-ledger verify --plane ho2: exit %d: %s%s", r.code, r.stdout, r.stderr)
	r = p.run(t, gateTool(t), p.admin, nil, "check", "--gate", "G6", "--root", p.root)
	t.Logf("G6: exit %d: %s%s", r.code, r.stdout, r.stderr)
	r = p.run(t, cpLLM, p.admin, nil, "recover")
	t.Logf("cp-llm recover: exit %d: %s%s", r.code, r.stdout, r.stderr)
}
