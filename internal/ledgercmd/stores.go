package ledgercmd

import (
	"context"
	"errors"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/cpv2/ledgerimport"
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
	if req.Bool("legacy") {
		return legacyImport(ctx, c, req)
	}
	if req.Has("ledger") || req.Has("name") {
		return cli.Outcome{Err: cli.Usagef("--ledger and --name go with --legacy (a file ledger of ours loads into a tier's own ledger)")}
	}
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

// legacyImport re-chains a CPv2 ledger into a new ledger of ours
// (ledgerimport.ImportLedger): --ledger L, or the tier's ledger/imported-NAME.jsonl
// (--plane, default the tier of --root; --name, default --from's file name),
// where G6 verifies it with the tier's other ledgers. Into a plane, the
// import is recorded in HO3 (LEGACY_IMPORTED). Broken legacy lines are kept
// and marked: the import succeeds, and says how many with a warning.
func legacyImport(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	if req.Has("verify_key") {
		return cli.Outcome{Err: cli.Usagef("--verify-key goes with a file ledger of ours; a CPv2 ledger carries no checkpoint")}
	}
	from := req.String("from")
	var t target
	var err error
	if req.Has("ledger") {
		if req.Has("name") {
			return cli.Outcome{Err: cli.Usagef("give --ledger or --name, not both")}
		}
		t, err = resolve(c, req)
	} else {
		t, err = resolve(c, cli.Request{"plane": req.String("plane")})
		if err == nil {
			name := req.String("name")
			if name == "" {
				name = ledgerimport.NameOf(filepath.Base(from))
			}
			var file string
			if file, err = ledgerimport.ImportedName(name); err == nil {
				t.path = filepath.Join(t.dir, "ledger", file)
				t.origin = plane.Origin(t.plane, t.path)
			}
		}
	}
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if t.session != "" {
		return cli.Outcome{Err: cli.Usagef("a legacy ledger is imported into a ledger of its own, not a session's")}
	}
	res, seq, err := importLegacy(ctx, c, t, from, filepath.Base(from))
	if err != nil {
		return cli.Outcome{Err: err, Result: res}
	}
	if !res.Valid {
		c.Warnf("%d of %d legacy lines do not hold by CPv2's rule (%d broken, %d malformed): kept, marked in their entries",
			res.Broken+res.Malformed, res.Entries, res.Broken, res.Malformed)
	}
	return cli.Outcome{Result: res, Seq: seq}
}

// importLegacy imports the CPv2 ledger at from into target t, recorded in
// HO3 when t is a plane's ledger; seq is that record's (-1 if none).
func importLegacy(ctx context.Context, c *cli.Call, t target, from, source string) (*ledgerimport.LedgerImport, int64, error) {
	f, err := ledger.OpenFile(from)
	if err != nil {
		return nil, -1, err
	}
	defer f.Close()
	l, err := t.open(plane.ForAppend)
	if err != nil {
		return nil, -1, err
	}
	defer l.Close()
	res, err := ledgerimport.ImportLedger(ctx, f, source, t.origin, l)
	var ie *ledgerimport.ImportError
	if errors.As(err, &ie) {
		ie.Msg = t.path + ": " + ie.Msg
	}
	if res != nil {
		res.Ledger = t.path
	}
	if err != nil || t.tier == "" {
		return res, -1, err
	}
	root, _, _, err := cli.PathScope(t.path)
	if err != nil {
		return res, -1, err
	}
	if rel, rerr := filepath.Rel(root, t.path); rerr == nil {
		res.Ledger = filepath.ToSlash(rel)
	}
	e, err := plane.Record(ctx, root, c.Actor(), ledgerimport.RecordDraft(res))
	if err != nil {
		return res, -1, err
	}
	return res, e.Seq, nil
}
