// Package gatecmd is cp-gate: it runs the gates of DESIGN.md §7 against a
// plane (or a package archive) and reports them for people and pipelines.
// The checks live in package gate; this is the command line and the
// report formats (report.go).
//
// It reads a request from flags or stdin (check: NDJSON, a report per
// line, stopping at the first that is not a pass) and writes one report per
// request to stdout: the JSON envelope, or with --format text, sarif or junit that format,
// for a passing run and a failing one alike. Exit status: 0 every gate
// passed, 1 a gate failed, 2 usage, 3 invalid input (a malformed archive or
// manifest), 4 or 5 the plane could not be evaluated (an unreadable
// registry or ledger, a filesystem error).
package gatecmd

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

const usage = `cp-gate: run the gates against a plane or a package archive

Usage:
  cp-gate [check] [--all | --gate G0B G6 ...] [--plane ho3|ho2|ho1] [--archive A]
                  [--wo WO-ID] [--enforce] [--record] [--format json|text|sarif|junit]
  cp-gate integrity [--plane ho3|ho2|ho1] [--record] [--format json|text|sarif|junit]

  Or a JSON request on stdin whose "operation" names the verb (default check):
  echo '{"gate":["G0B","G6"]}' | cp-gate --root plane
  check is a stream verb: NDJSON, one request per line, one report each; the
  stream stops at the first report that is not a pass (its exit status):
  printf '%s\n' '{"plane":"ho3"}' '{"plane":"ho2","gate":["G6"]}' | cp-gate

check runs the gates, every one by default, in this order, each against the
bytes on disk:
  G0A  declaration: each installed package's manifest (hashing to its recorded
       manifest hash) declares exactly the files its receipt lists, with their
       sizes and hashes, at governed, unreserved paths
  G0B  ownership: every file under the governed roots is owned by exactly one
       installed package, listed in its receipt, holds the hash both record and
       is read-only (ORPHAN, MISSING, HASH_MISMATCH, OWNERSHIP_CONFLICT,
       MODE_MISMATCH, NOT_REGULAR)
  G0K  kernel parity: PKG-KERNEL-001 has one manifest hash on HO3, HO2 and HO1
  G1   framework/spec chain: each installed package's spec and framework are
       registered and active in HO3, its assets within its spec, its
       dependencies installed at allowed versions
  G2   work order (--wo W): approved in HO3 by a key trusted for work_order
       now, payload unchanged, not expired, a state that allows work
       (WO_NOT_APPROVED, WO_PAYLOAD_CHANGED, WO_EXPIRED, WO_CLOSED,
       KEY_UNTRUSTED, APPROVAL_INVALID); with --archive, every path the install
       adds, replaces or removes inside scope.paths (SCOPE_VIOLATION), and
       --wo mandatory where config/governance.json requires work orders
       (WO_REQUIRED). Without --wo or --archive: "not applicable"
  G3   constraints (with --archive): dependencies that differ from the
       installed version's need a dependency_add work order when one is given
       or required (DEPENDENCY_CHANGE_UNAUTHORIZED); else a WEAKENED_CONTROL
       warning
  G5   signatures: each installed package's kept signature
       (packages_store/PKG-VERSION.tar.gz.sig) verifies by the recorded trusted
       key, or its waiver is recorded in a ledger
  G6   ledgers: every ledger of every tier verifies (lines, links, Merkle tree,
       checkpoint signatures), each lower tier's GENESIS links to its parent,
       and each lower-tier ledger extends every CHECKPOINT_ANCHORED of it in
       its parent's ledger (LEDGER_TRUNCATED, ANCHOR_MISMATCH, ANCHOR_INVALID)
With --archive A, G0A, G1 and G5 judge the archive as an install would, and
after the gates the install rules VERSION (no downgrade, no second manifest
for one version) and OWNERSHIP (no file owned by another package) judge it
too: a check that passes means the install's gates pass. --gate may name
them with an archive.
--enforce stops at the first gate that fails. --record appends GATE_PASSED or
GATE_FAILED to the checked tier's ledger: the firewall judges it as an append
there (admin and maintainer), not a read.

integrity is the plane health sweep, fast enough for every agent turn: G0B, G6
and RECEIPTS (receipts and installed manifests agree with packages_state.csv
and the ownership registry), in the same result shape.

Options:
  --all            every gate (the default)
  --gate G...      the gates to run: repeat, list with commas, or follow with names
  --plane P        the tier checked: ho3 (default), ho2 or ho1
  --archive A      judge this package archive (G0A, G1, G2, G3, G5, VERSION, OWNERSHIP)
  --wo WO-ID       the work order G2 and G3 judge
  --enforce        stop at the first failure
  --record         record the verdict in the tier's ledger
  --format F       json (default; text on a terminal), text, sarif (SARIF 2.1.0) or junit (JUnit XML)
  --root DIR       the plane (default: $CONTROL_PLANE, else the nearest plane
                   above the working directory)
  -h               this help; -version the version; --capabilities the operations

Exit status:
  0  every gate passed (a gate that does not apply passes and says so)
  1  a gate failed: the report says which, with codes and paths
  2  usage: unknown verb, flag or gate
  3  invalid input: stdin not JSON, schema violation, unsafe archive, bad manifest,
     a request over 16 MiB (REQUEST_TOO_LARGE)
  4  could not evaluate: an unreadable file, a lock timeout
  5  could not evaluate: internal error

Examples:
  cp-gate --root plane --format text
  cp-gate --root plane --gate G0B G6 --enforce
  cp-gate --root plane --format sarif > cp-gate.sarif
  cp-gate --root plane integrity --record || echo "plane unhealthy: stop the agent"
  cp-gate --root plane --archive PKG-TOOLS-001.tar.gz --gate G0A G1 G5
`

var formats = map[string]func(io.Writer, any) error{"sarif": sarif, "junit": junit}

var tool = &cli.Tool{Name: "cp-gate", Usage: usage, Verbs: []*cli.Verb{
	{Name: "check", Schema: "cp-gate.check.request.json", Action: cli.ActionRead, ActionOf: recordAppends, Tier: cli.TierPlane, Run: check, Text: text, FailedText: text, Formats: formats, Rest: "gate", Stream: true, Flags: []cli.Flag{
		{Name: "all", Kind: cli.Bool, Usage: "every gate"},
		{Name: "gate", Kind: cli.Multi, Usage: "a gate to run"},
		{Name: "plane", Kind: cli.String, Usage: "tier: ho3, ho2 or ho1"},
		{Name: "archive", Kind: cli.String, Usage: "package archive"},
		{Name: "wo", Kind: cli.String, Usage: "work order id"},
		{Name: "enforce", Kind: cli.Bool, Usage: "stop at the first failure"},
		{Name: "record", Kind: cli.Bool, Usage: "record the verdict"},
	}},
	{Name: "integrity", Schema: "cp-gate.integrity.request.json", Action: cli.ActionRead, ActionOf: recordAppends, Tier: cli.TierPlane, Run: integrity, Text: text, FailedText: text, Formats: formats, Flags: []cli.Flag{
		{Name: "plane", Kind: cli.String, Usage: "tier: ho3, ho2 or ho1"},
		{Name: "record", Kind: cli.Bool, Usage: "record the verdict"},
	}},
}}

// recordAppends is the action of a check or integrity request: a read,
// but one that records its verdict (--record) appends GATE_PASSED or
// GATE_FAILED to the checked tier's ledger, and is judged as that append
// (DESIGN.md §8: a reader or an auditor reads, and appends nowhere).
func recordAppends(req cli.Request) cli.Action {
	if req.Bool("record") {
		return cli.ActionAppend
	}
	return cli.ActionRead
}

// Run is cp-gate's entry point.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, tool, args, stdin, stdout, stderr)
}

// Dispatch runs one cp-gate request in-process (cli.Dispatch).
func Dispatch(ctx context.Context, req cli.Request, opts cli.Options) cli.Response {
	return cli.Dispatch(ctx, tool, req, opts)
}

// Verdict is a run's result: DESIGN.md §7's shape.
type Verdict struct {
	AllPassed bool          `json:"all_passed"`
	PlaneID   string        `json:"plane_id"`
	Archive   string        `json:"archive,omitempty"`
	Verb      string        `json:"-"`
	Results   []gate.Result `json:"results"`
}

func check(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	known := gate.All
	if req.String("archive") != "" {
		known = slices.Concat(gate.All, gate.ArchiveRules)
	}
	var gates []string
	for _, g := range req.Strings("gate") {
		for _, one := range strings.Split(g, ",") {
			if one = strings.ToUpper(strings.TrimSpace(one)); one != "" {
				if !slices.Contains(known, one) {
					return cli.Outcome{Err: cli.Usagef("unknown gate %q (want %s)", one, strings.Join(known, " "))}
				}
				gates = append(gates, one)
			}
		}
	}
	if req.Bool("all") && len(gates) > 0 {
		return cli.Outcome{Err: cli.Usagef("--all and --gate: give one")}
	}
	planeID := planeOf(c, req)
	opts := gate.CheckOptions{Gates: gates, PlaneID: planeID, Archive: req.String("archive"), WorkOrder: req.String("wo"),
		Enforce: req.Bool("enforce"), Options: gate.Options{AllowUnsigned: c.Env.AllowUnsigned, VerifyKey: c.Env.VerifyKey},
		Expect: gate.Expect{PackageID: req.String("package_id"), ArchiveSHA256: req.String("archive_sha256"), ManifestHash: req.String("manifest_hash")}}
	results, err := gate.Check(ctx, root, opts)
	if err != nil {
		return cli.Outcome{Err: unevaluable(err)}
	}
	v := &Verdict{PlaneID: planeID, Verb: "check", Results: results}
	if opts.Archive != "" {
		v.Archive = filepath.Base(opts.Archive)
	}
	return verdict(ctx, c, root, req, v)
}

func integrity(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	planeID := planeOf(c, req)
	results, err := gate.Integrity(ctx, root, planeID)
	if err != nil {
		return cli.Outcome{Err: unevaluable(err)}
	}
	return verdict(ctx, c, root, req, &Verdict{PlaneID: planeID, Verb: "integrity", Results: results})
}

// unevaluable marks an error that stopped the gates from judging at all (a
// registry that does not parse, a missing file): a refusal met on the way
// is then "could not evaluate", not the gates' verdict (internal/cli reads
// the mark). An archive that is not the one a piped stage or sign result
// judged stays a refusal.
func unevaluable(err error) error {
	var mismatch *gate.MismatchError
	if errors.As(err, &mismatch) {
		return err
	}
	return cli.Unevaluated(err, "the plane could not be evaluated; nothing passed")
}

// planeOf is the tier a request names, else the tier --root named.
func planeOf(c *cli.Call, req cli.Request) string {
	if p := req.String("plane"); p != "" {
		return p
	}
	return c.RootPlane()
}

// verdict records the run if asked and turns a failure into GATE_FAILED
// (exit 1) with the whole verdict as the result.
func verdict(ctx context.Context, c *cli.Call, root string, req cli.Request, v *Verdict) cli.Outcome {
	v.AllPassed = true
	var failed, codes []string
	for _, r := range v.Results {
		if !r.Passed {
			v.AllPassed = false
			failed = append(failed, r.Gate)
			for _, e := range r.Errors {
				codes = append(codes, e.Code)
			}
		}
	}
	out := cli.Outcome{Result: v}
	if req.Bool("record") {
		tdir, err := plane.Dir(root, v.PlaneID)
		if err != nil {
			return cli.Outcome{Err: err}
		}
		event, decision := "GATE_PASSED", "PASSED"
		if !v.AllPassed {
			event, decision = "GATE_FAILED", "FAILED"
		}
		var gates []string
		for _, r := range v.Results {
			gates = append(gates, r.Gate)
		}
		subject := v.PlaneID
		if v.Archive != "" {
			subject = v.Archive
		}
		e, err := plane.Record(ctx, tdir, c.Actor(), ledger.Draft{EventType: event, SubmissionID: subject, Decision: decision,
			Reason: summary(v), Metadata: map[string]any{"verb": v.Verb, "plane_id": v.PlaneID, "gates": gates,
				"failed": nonNil(failed), "codes": nonNil(uniq(codes))}})
		if err != nil {
			return cli.Outcome{Err: err}
		}
		out.LedgerEntryID, out.Seq = e.ID, e.Seq
	}
	if !v.AllPassed {
		e := cli.Errorf(cli.ExitDenied, "GATE_FAILED", "%s", summary(v))
		e.Result = v
		e.Details = map[string]any{"failed_gates": failed, "codes": uniq(codes)}
		out.Err = e
	}
	return out
}

// summary says in one line how a run went.
func summary(v *Verdict) string {
	var failed []string
	for _, r := range v.Results {
		if !r.Passed {
			s := r.Gate
			if len(r.Errors) > 0 {
				s += " (" + r.Errors[0].Code + " " + r.Errors[0].Path + ")"
			}
			failed = append(failed, s)
		}
	}
	if len(failed) == 0 {
		return "all " + itoa(len(v.Results)) + " gates passed on " + v.PlaneID
	}
	return itoa(len(failed)) + " of " + itoa(len(v.Results)) + " gates failed on " + v.PlaneID + ": " + strings.Join(failed, ", ")
}

func uniq(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}
