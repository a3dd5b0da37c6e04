package ledgercmd

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// exportVerb writes the ledger a request names, from whatever store holds
// it, as a file ledger outside every plane (DESIGN.md §11), then verifies
// the copy against the checkpoint the ledger held. A copy that does not
// verify is kept for inspection and is a failure (exit 1).
func exportVerb(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	t, err := resolve(c, req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	out := req.String("out")
	if !strings.HasSuffix(out, ".jsonl") || filepath.Base(out) == ".jsonl" {
		return cli.Outcome{Err: cli.Usagef("--out %s: a ledger is a file named X.jsonl", out)}
	}
	if root, _, _, err := cli.PathScope(out); err != nil {
		return cli.Outcome{Err: err}
	} else if root != "" {
		// Inside a plane the copy would be an unowned file, or, in a
		// ledger directory, a ledger of that tier no tool wrote.
		return cli.Outcome{Err: cli.Usagef("--out %s is inside the plane at %s: an export is written outside every plane", out, root)}
	}
	vs, explicit, err := verifiers(c, req, t)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	l, err := t.open(plane.ForReading)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	defer l.Close()
	ex, err := ledger.ExportFile(ctx, l, out)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	f, err := ledger.OpenFileStore(out)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	defer f.Close()
	opts := ledger.VerifyOptions{Verifiers: vs, RequireSigned: explicit}
	if ex.Checkpoint != nil {
		opts.Held = [][]byte{ex.Checkpoint}
	}
	rep, err := ledger.Verify(ctx, f, opts)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	res := map[string]any{"ledger": out, "entries": rep.Entries, "root_hash": rep.RootHash, "valid": rep.Valid}
	if ex.Checkpoint != nil {
		res["checkpoint"] = string(ex.Checkpoint)
	}
	if !rep.Valid {
		first := rep.Issues[0]
		e := cli.Errorf(cli.ExitDenied, "LEDGER_INVALID", "the export of %s (%s) does not verify: seq %d: %s: %s", t.path, out, first.Seq, first.Code, first.Message).
			WithHint("the copy is kept for inspection: cp-ledger verify --ledger %s", out)
		e.Result = rep
		return cli.Outcome{Err: e}
	}
	return cli.Outcome{Result: res}
}

// tierOnly resolves the tier a store verb acts on: a tier's own ledger,
// never a file named by path or a session's.
func tierOnly(c *cli.Call, req cli.Request) (target, error) {
	t, err := resolve(c, req)
	if err != nil {
		return t, err
	}
	if t.tier == "" || t.path != plane.LedgerPath(t.dir, t.plane) {
		return t, cli.Usagef("a tier's own ledger moves or loads: name the tier (--plane), not a ledger file")
	}
	return t, nil
}

// importVerb loads a file ledger into the tier's empty ledger in
// PostgreSQL (plane.Import).
func importVerb(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	t, err := tierOnly(c, req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	key := req.String("verify_key")
	if key == "" {
		key = c.Env.VerifyKey
	}
	im, err := plane.Import(ctx, t.dir, req.String("from"), key, c.Actor())
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: im, Seq: im.Seq}
}

// migrateVerb moves the tier's ledger between stores (plane.Migrate).
func migrateVerb(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	t, err := tierOnly(c, req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	to := req.String("to")
	ls := plane.LedgerStore{DSNEnv: req.String("dsn_env"), Name: req.String("name")}
	if to == plane.StorePostgres {
		if ls.DSNEnv == "" {
			ls.DSNEnv = plane.DefaultDSNEnv
		}
		if ls.Name == "" {
			ls.Name = strings.TrimSuffix(filepath.Base(t.plane.LedgerPath), ".jsonl")
		}
	} else if ls != (plane.LedgerStore{}) {
		return cli.Outcome{Err: cli.Usagef("--name and --dsn-env go with --to postgres")}
	}
	m, err := plane.Migrate(ctx, t.dir, to, ls, c.Actor())
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if m.Resumed {
		c.Warnf("finished a move an earlier run stopped")
	}
	return cli.Outcome{Result: m, Seq: m.Seq}
}
