package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/llm/llmtest"
)

// TestLLMInflightLockReplacedNotAbandoned: a call in flight holds its mark
// on the llm-inflight.lock it opened; a judge that opens another file at
// that path (the lock file removed and made afresh meanwhile, by a
// cleanup or a process that can write HO2's files; or another plane
// directory on the same kernel, a second container whose HO2 tier is the
// same PostgreSQL ledger: the same boot id, its own lock file) sees no
// lock and, trusting the boot id alone, settled the live call as
// abandoned: an LLM_CALL "abandoned, charged_in_full" for a call that
// then answered and wrote its own. The reservation must name the file its
// mark is on, and a judge looking at another file must leave it unjudged.
func TestLLMInflightLockReplacedNotAbandoned(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Stream(1, 4*time.Second) // the whole answer after a pause: a call in flight that ends well
	p := newLLMPlane(t, 4, srv.ProvidersJSON(""))
	ledgerPath := filepath.Join(p.root, ho2Ledger)
	lock := filepath.Join(p.root, "planes", "ho2", "ledger", "llm-inflight.lock")

	cmd := p.cmd(cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
	require.NoError(t, cmd.Start())
	select {
	case <-srv.Arrived:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the call never reached the provider")
	}
	res := p.must(t, cpLLM, p.admin, nil, "recover")
	require.Empty(t, res["settled"], "a call in flight is not abandoned")
	require.Equal(t, float64(1), res["in_flight"])

	// The lock file is replaced while the call is in flight.
	require.NoError(t, os.Remove(lock))
	require.NoError(t, os.WriteFile(lock, nil, 0o644))
	res = p.must(t, cpLLM, p.admin, nil, "recover")
	require.Empty(t, res["settled"], "a call in flight, its lock on the file that was replaced, is not abandoned")
	require.Equal(t, float64(1), res["unjudged"], "its mark cannot be seen from the new file")

	require.NoError(t, cmd.Wait(), "the call in flight answers")
	calls := entriesOf(t, ledgerPath, "LLM_CALL")
	require.Len(t, calls, 1, "one LLM_CALL: the call's own")
	require.Equal(t, "ok", calls[0].Metadata["status"])
	p.must(t, cpLedger, p.admin, nil, "verify", "--plane", "ho2")
}
