package wocmd

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/clitest"
	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/ledgercmd"
	"github.com/control-plane/cp/internal/pkgcmd"
	"github.com/control-plane/cp/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// as runs cp-wo as subject (auth off, as a server that admitted its
// client would): another person than the OS user that created.
func as(subject string) cli.RunFunc {
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return cli.RunWith(ctx, tool(), cli.Options{Identity: cli.Identity{Subject: subject, Auth: auth.AuthOff}}, args, stdin, stdout, stderr)
	}
}

// TestRun holds cp-wo's verbs to their contract in-process: the day's
// ids, the file and its entry, approval refused unsigned, by an untrusted
// key and by the creator, the state from the ledgers only.
func TestRun(t *testing.T) {
	t.Setenv("CONTROL_PLANE_TOKEN", "")
	t.Setenv("CONTROL_PLANE_AUTH", "")
	t.Setenv("CONTROL_PLANE_SIGNING_KEY", "")
	const p = "$DIR/plane"
	clitest.RunCases(t, Run, []clitest.Case{
		{Name: "a plane", Run: installcmd.Run, Args: []string{"bootstrap", "--root", p}},
		{Name: "keys", Run: pkgcmd.Run, Args: []string{"keygen", "--name", "appr", "--out", "$DIR"}},
		{Name: "another key", Run: pkgcmd.Run, Args: []string{"keygen", "--name", "mallory", "--out", "$DIR"}},
		{Name: "create from flags", Args: []string{"create", "--root", p, "--type", "code_change", "--title", "router: retry", "--paths", "lib/router/**", "--turns", "4", "--llm-cost-usd", "2.50", "--expires-in", "2h"},
			Stdout: []string{`"status":"ok"`, `"wo_id":"WO-`, `-001"`, `"payload_hash":"sha256:`, `"budget":{"llm_cost_usd":2.5,"turns":4}`, `"ledger_entry_id"`}},
		{Name: "create from stdin, the default verb", Args: []string{"--root", p},
			Stdin:  `{"type":"investigation","title":"why","scope":{"paths":["ledger/**"]},"budget":{"turns":2},"expires_at":"2099-01-01T00:00:00Z"}`,
			Stdout: []string{`-002"`, `"expires_at":"2099-01-01T00:00:00Z"`}},
		{Name: "create from a file", Files: map[string]string{"d.json": `{"type":"rollback","title":"back","tier":"ho2","scope":{"paths":[]},"budget":{"turns":1},"expires_at":"2099-01-01T00:00:00Z"}`},
			Args: []string{"create", "--root", p, "--file", "$DIR/d.json", "--format", "text"}, Stdout: []string{"created WO-", "-003 (rollback): back"}},
		{Name: "a draft with an unknown field", Files: map[string]string{"bad.json": `{"type":"rollback","title":"x","created_by":"someone-else"}`},
			Args: []string{"create", "--root", p, "--file", "$DIR/bad.json"}, Exit: cli.ExitInvalid, Stdout: []string{`"code":"WO_INVALID"`}, Stderr: []string{"unknown field"}},
		{Name: "a malformed pattern", Args: []string{"create", "--root", p, "--type", "code_change", "--title", "x", "--paths", "lib/[a"},
			Exit: cli.ExitInvalid, Stderr: []string{"malformed pattern"}},
		{Name: "both expiries", Args: []string{"create", "--root", p, "--type", "code_change", "--title", "x", "--expires-in", "1h", "--expires-at", "2099-01-01T00:00:00Z"},
			Exit: cli.ExitUsage, Stderr: []string{"not both"}},
		{Name: "validate a stored one", Args: []string{"validate", "--root", p, "--wo", "WO-" + today() + "-001"},
			Stdout: []string{`"valid":true`, `"state":"created"`}},
		{Name: "validate names one thing", Args: []string{"validate", "--root", p},
			Exit: cli.ExitUsage, Stderr: []string{"one of them"}},
		{Name: "a bad id never names a file", Args: []string{"status", "--root", p, "../../tier"},
			Exit: cli.ExitInvalid, Stdout: []string{`"code":"WO_INVALID"`}},
		{Name: "not found", Args: []string{"status", "--root", p, "WO-20260101-001"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"WO_NOT_FOUND"`}},
		{Name: "approve unsigned", Args: []string{"approve", "--root", p, "WO-" + today() + "-001"},
			Exit: cli.ExitUsage, Stderr: []string{"always signed"}},
		{Name: "approve with no key trusted for work_order", Run: as("bob"), Args: []string{"approve", "--root", p, "WO-" + today() + "-001", "--key", "$DIR/appr.key"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"KEY_UNTRUSTED"`}, Stderr: []string{"no key is trusted for work_order"}},
		{Name: "trust the approver's key", Run: installcmd.Run, Args: []string{"trust", "add", "--root", p, "--purpose", "work_order", "$DIR/appr.pub"}},
		{Name: "the creator may not approve", Args: []string{"approve", "--root", p, "WO-" + today() + "-001", "--key", "$DIR/appr.key"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"SELF_APPROVAL"`}},
		{Name: "an untrusted key", Run: as("bob"), Args: []string{"approve", "--root", p, "WO-" + today() + "-001", "--key", "$DIR/mallory.key"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"KEY_UNTRUSTED"`}, Stderr: []string{"key mallory is not trusted"}},
		{Name: "bob approves", Run: as("bob"), Args: []string{"approve", "--root", p, "WO-" + today() + "-001", "--key", "$DIR/appr.key", "--format", "text"},
			Stdout: []string{"approved WO-", " by bob with key appr (WO_APPROVED, HO3 seq "}},
		{Name: "status as text", Args: []string{"status", "--root", p, "WO-" + today() + "-001", "--format", "text"},
			Stdout: []string{": approved (code_change)", "approved by bob with key appr", "ho2 seq", "WO_CREATED", "ho3 seq", "WO_APPROVED"}},
		{Name: "validate an approved one checks its approval", Args: []string{"validate", "--root", p, "WO-" + today() + "-001"},
			Stdout: []string{`"state":"approved"`}},
		{Name: "bob rejects another", Run: as("bob"), Args: []string{"reject", "--root", p, "WO-" + today() + "-002", "--reason", "not now"},
			Stdout: []string{`"state":"rejected"`, `"reason":"not now"`}},
		{Name: "a rejected one is closed", Args: []string{"cancel", "--root", p, "WO-" + today() + "-002"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"WO_CLOSED"`}},
		{Name: "cancel an approved one", Args: []string{"cancel", "--root", p, "WO-" + today() + "-001"},
			Stdout: []string{`"state":"cancelled"`}},
		{Name: "the entries", Run: ledgercmd.Run, Args: []string{"show", "--root", p, "--plane", "ho2", "--where", `.event_type | startswith("WO_")`},
			Stdout: []string{`"event_type":"WO_CREATED"`, `"event_type":"WO_CANCELLED"`, `"created_by":"`}},
	})
}

func today() string { return time.Now().UTC().Format("20060102") }
