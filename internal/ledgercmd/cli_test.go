package ledgercmd

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/clitest"
)

// TestRun holds cp-ledger's verbs to their contract in-process, without
// building the binary; testdata/script holds the end-to-end cases.
func TestRun(t *testing.T) {
	clitest.RunCases(t, Run, []clitest.Case{
		{Name: "append from flags opens the chain", Args: []string{"append", "--ledger", "$DIR/audit.jsonl", "--event-type", "TOOL_CALL", "--submission-id", "SUB-1"},
			Stdout: []string{`"status":"ok"`, `"seq":0`, `"previous_hash":""`}},
		{Name: "append a stream", Args: []string{"append", "--ledger", "$DIR/audit.jsonl"},
			Stdin:  `{"event_type":"A"}` + "\n" + `{"operation":"append","event_type":"B"}` + "\n",
			Stdout: []string{`"seq":1`, `"seq":2`}},
		{Name: "a reserved event type is refused", Args: []string{"append", "--ledger", "$DIR/audit.jsonl", "--event-type", "GENESIS"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"RESERVED_EVENT_TYPE"`}},
		{Name: "a request that breaks its schema", Args: []string{"--ledger", "$DIR/audit.jsonl"}, Stdin: `{"event_type":""}`,
			Exit: cli.ExitInvalid, Stdout: []string{`"code":"SCHEMA_VIOLATION"`}},
		{Name: "show filters by event type", Args: []string{"show", "--ledger", "$DIR/audit.jsonl", "--event-type", "B"},
			Stdout: []string{`"event_type":"B"`, `"seq":2`}},
		{Name: "verify holds", Args: []string{"verify", "--ledger", "$DIR/audit.jsonl"},
			Stdout: []string{`"valid":true`, `"entries":3`}},
		{Name: "prove an entry", Args: []string{"prove", "--ledger", "$DIR/audit.jsonl", "--seq", "1"},
			Stdout: []string{`"status":"ok"`, `"seq":1`}},
		{Name: "an unknown verb", Args: []string{"apend"}, Exit: cli.ExitUsage,
			Stderr: []string{"did you mean cp-ledger append?"}},
	})
}

// TestDispatch runs a request object in-process, as the MCP server will.
func TestDispatch(t *testing.T) {
	path := t.TempDir() + "/d.jsonl"
	resp := Dispatch(context.Background(), cli.Request{"operation": "append", "event_type": "X"}, cli.Options{Env: &cli.Env{}})
	if resp.Exit != cli.ExitUsage {
		t.Fatalf("no ledger named: exit %d, want 2; stderr %s", resp.Exit, resp.Stderr)
	}
	resp = Dispatch(context.Background(), cli.Request{"operation": "append", "ledger": path, "event_type": "X"}, cli.Options{Env: &cli.Env{}})
	env, err := resp.Envelope()
	if err != nil || resp.Exit != cli.ExitOK || env.Status != "ok" {
		t.Fatalf("exit %d, envelope %+v (%v); stderr %s", resp.Exit, env, err, resp.Stderr)
	}
	if seq := env.Result.(map[string]any)["seq"]; seq != json.Number("0") {
		t.Fatalf("seq %v, want 0", seq)
	}
}
