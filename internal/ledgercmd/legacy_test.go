package ledgercmd

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/clitest"
	"github.com/stretchr/testify/require"
)

// TestImportLegacy holds import --legacy to its contract in-process, into
// ledger files outside any plane (cpv2_import.txtar covers a plane's).
func TestImportLegacy(t *testing.T) {
	src, err := filepath.Abs("../../testdata/cpv2/ledgers")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(src, "governance_broken.jsonl"))
	require.NoError(t, err)
	clitest.RunCases(t, Run, []clitest.Case{
		{Name: "broken lines come over, marked", Args: []string{"import", "--legacy", "--from", src + "/governance_broken.jsonl", "--ledger", "$DIR/gov.jsonl"},
			Stdout: []string{`"status":"ok"`, `"entries":11`, `"verified":9`, `"broken":2`, `"valid":false`, `"source":"governance_broken.jsonl"`},
			Stderr: []string{"warning: 2 of 11 legacy lines do not hold by CPv2's rule"}},
		{Name: "one entry per line, the line's verdict its decision", Args: []string{"show", "--ledger", "$DIR/gov.jsonl", "--seq", "9:10"},
			Stdout: []string{`"event_type":"LEGACY_ENTRY"`, `"decision":"BROKEN"`, `"code":"CHAIN_BROKEN"`, `"line":9`}},
		{Name: "the imported ledger is ours and verifies", Args: []string{"verify", "--ledger", "$DIR/gov.jsonl"},
			Stdout: []string{`"valid":true`, `"entries":11`}},
		{Name: "only into a new ledger", Args: []string{"import", "--legacy", "--from", src + "/governance.jsonl", "--ledger", "$DIR/gov.jsonl"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"LEDGER_NOT_EMPTY"`}, Stderr: []string{"gov.jsonl: the target ledger already holds 11 entries"}},
		{Name: "the sha256: form", Args: []string{"import", "--legacy", "--from", src + "/session_evidence.jsonl", "--ledger", "$DIR/ev.jsonl"},
			Stdout: []string{`"valid":true`, `"prefixed":10`}},
		{Name: "--ledger or --name", Args: []string{"import", "--legacy", "--from", src + "/governance.jsonl", "--ledger", "$DIR/x.jsonl", "--name", "x"},
			Exit: cli.ExitUsage},
		{Name: "--name is a name", Args: []string{"import", "--legacy", "--from", src + "/governance.jsonl", "--ledger", "$DIR/y.jsonl", "--name", "../x"},
			Exit: cli.ExitUsage, Stdout: []string{`does not match pattern`}},
		{Name: "--name without --legacy", Args: []string{"import", "--from", src + "/governance.jsonl", "--name", "x"},
			Exit: cli.ExitUsage, Stderr: []string{"--ledger and --name go with --legacy"}},
		{Name: "a legacy ledger carries no checkpoint", Args: []string{"import", "--legacy", "--from", src + "/governance.jsonl", "--ledger", "$DIR/z.jsonl", "--verify-key", "k.pub"},
			Exit: cli.ExitUsage},
		{Name: "a missing source", Args: []string{"import", "--legacy", "--from", "$DIR/none.jsonl", "--ledger", "$DIR/w.jsonl"},
			Exit: cli.ExitUnavailable},
	})
}
