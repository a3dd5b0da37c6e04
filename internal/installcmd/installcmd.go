// Package installcmd is cp-install, the only writer of INSTALLED: it
// bootstraps planes, installs and upgrades packages atomically, takes
// checkpoints, rolls back to them and recovers interrupted changes. The
// engine is package install; this is its command line.
//
// It reads a request from flags or stdin and writes one JSON envelope to
// stdout. Exit status: 0 success, 1 refused (a failed gate, a downgrade,
// drift, an ownership conflict, a plane already at --root, a failed
// integrity check after rollback), 2 usage, 3 invalid input (malformed JSON,
// archive or manifest), 4 unavailable (lock timeout, filesystem error), 5
// internal error (a journal that can be neither finished nor undone).
package installcmd

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/cpv2"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/install"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/keys"
)

const usage = `cp-install: install packages into a plane, atomically; checkpoints and rollback

Usage:
  cp-install [install] --archive A [--id PKG-ID] [--dry-run] [--force] [--wo WO-ID]
  cp-install checkpoint --label L
  cp-install versions
  cp-install rollback --version-id VER-... [--wo WO-ID]
  cp-install recover
  cp-install bootstrap --root DIR [--trust-key [PURPOSE,...=]PUB ...] [--plane-name NAME]
  cp-install trust add --purpose P[,P...] PUB
  cp-install trust add --governed-root DIR/ [--governed-root DIR/ ...]
  cp-install trust remove [--purpose P[,P...]] [--force] PUB|NAME
  cp-install import-cpv2 --from DIR [--key K]                       (admin, HO3; host-level)

  Or a JSON request on stdin whose "operation" names the verb (default install):
  echo '{"archive":"PKG-X.tar.gz","dry_run":true}' | cp-install --root plane

install checks the archive A (signature: A.sig) and installs it into the HO3
plane, each step fail-closed: the archive rules (ARCHIVE_UNSAFE, exit 3), the
manifest (MANIFEST_INVALID, exit 3), then the gates G0A, G1, G5, VERSION and
OWNERSHIP (a failed gate: exit 1 with the first failing gate's code, the report at
.result), then the disk: a file the package would overwrite or remove that was
edited since it was installed, or an unowned file in the way, is HASH_MISMATCH
unless --force. Then an automatic checkpoint, and one journaled change writes the
files (0444), the receipt and the registries: a crash at any instant leaves the
plane wholly before or wholly after. An upgrade removes the files the new
version drops. A lower version than installed is VERSION_DOWNGRADE; the same
version with another manifest is VERSION_CONFLICT; the same version and
manifest is a no-op that writes nothing ("action":"none"); --force re-applies
it (repairing drift), never a downgrade. HO3's ledger gets INSTALL_STARTED, then
INSTALLED or INSTALL_FAILED with the reason. --dry-run runs every check and
reports what would change (added, replaced, removed) and writes nothing, not
even a ledger entry.

checkpoint records the installed state as VER-...: receipts, registries, kept
archives and the bytes of every owned file, content-addressed under versions/
(each distinct blob stored once), its file's hash in the ledger. versions lists
checkpoints, oldest first. rollback restores one exactly (files installed since
are removed, files removed since come back), atomically like install, after
checkpointing the current state (.result.checkpoint: roll back to it to undo);
a checkpoint file the ledger did not record, or one naming a path outside the
installed state, is refused. It records ROLLED_BACK and then runs the integrity
sweep (G0B, G6 and RECEIPTS, as cp-gate integrity): a plane that fails it is
INTEGRITY_FAILED, exit 1, with the rollback at .result.

import-cpv2 brings a checkout of the Python Control Plane v2 into the plane in
one step: frameworks/*.md, specs/<SPEC-ID>/ in dependency order, the governed
roots its packages need (as trust add --governed-root), each package of
installed/<PKG-ID>/ (files at the checkout's root) and packages/<PKG-ID>/ (files
beside its manifest) converted, staged, signed with --key (or
CONTROL_PLANE_SIGNING_KEY) and installed in dependency order, and every *.jsonl
in a ledger/ or ledgers/ directory re-chained into ledger/imported-NAME.jsonl
(cp-ledger import --legacy). Every item is attempted; the result is a report of
each (imported, present, refused with its code and reason) with counts (a table
with --format text); anything refused is IMPORT_INCOMPLETE, exit 1, the report
at .result. Run it again after fixing: what came over is reported present.

recover finishes or undoes an interrupted install or rollback and records its
outcome; every mutating command runs it first.

bootstrap creates a plane in DIR (which must not exist or be empty): the HO3
governance tier at DIR, HO2 at DIR/planes/ho2 and HO1 at DIR/planes/ho1, each with
tier.json, a ledger opened by a GENESIS entry (a lower tier's records its parent
ledger's head hash), the five registries, config/ and the kernel package
PKG-KERNEL-001 installed identically on all three. DIR holds a whole plane or
none; a directory that already holds a plane is refused and left as it is.
--trust-key trusts a key at birth: PURPOSE,...=PUB for the purposes named
(package, checkpoint, work_order, auth), plain PUB for package and checkpoint.

trust add and trust remove are the one way to change config/trusted_keys.json
afterwards: cp-install builds the next kernel patch release (PKG-KERNEL-001
1.0.0 -> 1.0.1) with the changed file and installs it on HO3, HO2 and HO1 in one
journaled change (a crash leaves all three before or all three after),
recorded in HO3's ledger as INSTALL_STARTED, INSTALLED and TRUST_CHANGED. A
key is trusted once per name. Removing the package purpose of a key that
installed packages are signed by is KEY_IN_USE unless --force (G5 then fails
for those packages until they are reinstalled signed by another key); so is
removing the checkpoint purpose of the key the tier ledgers' stored
checkpoints are signed by, and no other trusted key (the plane's own). A
kernel package is never installed from an archive, and a rollback to a
checkpoint holding another kernel release is refused (KERNEL_PARITY): either
would change HO3's kernel alone. trust add --governed-root DIR/ changes
config/governed_roots.json the same way (TRUST_CHANGED, change roots_added): a
top directory (docs/, tests/) packages may then write; one of the plane's own
(ledger/, planes/, ...) is refused (GOVERNED_ROOT_INVALID), and so is one under
which a tier already holds files no package owns (ORPHAN).

Options:
  --archive A        the package archive to install
  --id PKG-ID        refuse unless the manifest declares this package
  --dry-run          check and report; write nothing
  --force            re-apply the installed version; overwrite drift (recorded)
  --wo WO-ID         the work order an install or rollback is done under
                     (--work-order: an alias, install only): G2 (approved,
                     unchanged, not expired, every path added, replaced or
                     removed inside its scope; a rollback's registries and
                     receipts too) and, for an install, G3 (dependencies change
                     only under dependency_add) judge it before a byte lands;
                     recorded. config/governance.json work_orders: required
                     makes it mandatory (WO_REQUIRED)
  --label L          what a checkpoint is
  --version-id VER   the checkpoint to roll back to
  --trust-key SPEC   bootstrap: [PURPOSE,...=]PUB, a verifier key (or a path to
                     one) to trust; repeat for several
  --purpose P,...    trust add/remove: package, checkpoint, work_order, auth
  --plane-name NAME  bootstrap: the plane's unique name (default: random); its
                     checkpoint key is made in $XDG_CONFIG_HOME/control-plane/NAME/
                     (default $HOME/.config/...), outside the plane
  --root DIR         the plane (default: $CONTROL_PLANE, else the nearest plane
                     above the working directory)
  --format text      a summary for people instead of JSON (the default on a terminal)
  -v                 each phase of an install or rollback, timed, on stderr (on
                     a terminal without -v, one line shows the latest phase)
  -h                 this help; -version the version; --capabilities the operations

Environment:
  CONTROL_PLANE_ALLOW_UNSIGNED=1  install an unsigned package; the waiver is
                                  recorded as a weakened control
  CONTROL_PLANE_VERIFY_KEY        one more trusted verifier key (or a path)

Exit status:
  0  success
  1  refused: a gate, drift, a downgrade, a conflict, integrity after rollback
  2  usage: unknown verb or flag, bad argument (a checkpoint that does not exist)
  3  invalid input: stdin not JSON, schema violation, unsafe archive, bad manifest,
     a request over 16 MiB (REQUEST_TOO_LARGE)
  4  unavailable: lock timeout, filesystem error, a journal pending (dry run)
  5  internal error, or a journal that can be neither finished nor undone

Examples:
  cp-install bootstrap --root plane --trust-key keys/ops.pub --trust-key work_order=keys/approver.pub
  cp-install --root plane trust add --purpose package keys/release.pub
  cp-install --root plane trust add --governed-root docs/ --governed-root tests/
  cp-install --root plane import-cpv2 --from ~/cpv2-checkout --key keys/ops.key --format text
  cp-install --root plane trust remove --purpose package ops
  cp-install --root plane --archive PKG-HELLO-001.tar.gz --dry-run
  cp-install --root plane --archive PKG-HELLO-001.tar.gz --wo WO-20261206-001
  cp-install --root plane checkpoint --label "before hello 2" | jq -r .result.version_id
  cp-install --root plane rollback --version-id VER-20261125T020304Z-1a2b3c4d
  cp-ledger show --root plane --event-type INSTALLED
`

var tool = &cli.Tool{Name: "cp-install", Usage: usage, Verbs: []*cli.Verb{
	{Name: "install", Schema: "cp-install.install.request.json", Action: cli.ActionInstall, Tier: cli.TierHO3, Run: installVerb, Text: installText, FailedText: installFailedText, Flags: []cli.Flag{
		{Name: "archive", Kind: cli.String, Usage: "package archive"},
		{Name: "id", Kind: cli.String, Usage: "expected package id"},
		{Name: "dry-run", Kind: cli.Bool, Usage: "check and report, write nothing"},
		{Name: "force", Kind: cli.Bool, Usage: "re-apply; overwrite drift"},
		{Name: "wo", Kind: cli.String, Field: "work_order_id", Usage: "the work order the install is done under (G2, G3)"},
		{Name: "work-order", Kind: cli.String, Usage: "alias of --wo"},
	}},
	{Name: "checkpoint", Schema: "cp-install.checkpoint.request.json", Action: cli.ActionCheckpoint, Tier: cli.TierHO3, Run: checkpoint, Flags: []cli.Flag{
		{Name: "label", Kind: cli.String, Usage: "what the checkpoint is"},
	}},
	{Name: "versions", Schema: "cp-install.versions.request.json", Action: cli.ActionRead, Tier: cli.TierHO3, Run: versions, Text: versionsText},
	{Name: "rollback", Schema: "cp-install.rollback.request.json", Action: cli.ActionRollback, Tier: cli.TierHO3, Run: rollback, Text: rollbackText, Flags: []cli.Flag{
		{Name: "version-id", Kind: cli.String, Usage: "checkpoint to restore"},
		{Name: "wo", Kind: cli.String, Field: "work_order_id", Usage: "the work order the rollback is done under (G2)"},
	}},
	{Name: "recover", Schema: "cp-install.recover.request.json", Action: cli.ActionRecover, Tier: cli.TierHO3, Run: recoverVerb},
	{Name: "bootstrap", Schema: "cp-install.bootstrap.request.json", Action: cli.ActionBootstrap, Tier: cli.TierHO3, Run: bootstrapVerb, Flags: []cli.Flag{
		{Name: "trust-key", Kind: cli.Multi, Usage: "verifier key to trust"},
		{Name: "plane-name", Kind: cli.String, Usage: "the plane's unique name"},
		{Name: "plane-root", Kind: cli.String, Field: "root", Usage: "(stdin form of --root)"},
	}},
	{Name: "trust-add", Schema: "cp-install.trust-add.request.json", Action: cli.ActionTrust, Tier: cli.TierHO3, Args: []string{"key"}, Run: trustVerb(true), Text: trustText, Flags: []cli.Flag{
		{Name: "purpose", Kind: cli.List, Usage: "purposes to add"},
		{Name: "governed-root", Kind: cli.Multi, Usage: "instead of a key: a top directory (docs/) to add to the governed roots"},
	}},
	{Name: "trust-remove", Schema: "cp-install.trust-remove.request.json", Action: cli.ActionTrust, Tier: cli.TierHO3, Args: []string{"key"}, Run: trustVerb(false), Text: trustText, Flags: []cli.Flag{
		{Name: "purpose", Kind: cli.List, Usage: "purposes to remove (default: all)"},
		{Name: "force", Kind: cli.Bool, Usage: "remove a package key installed packages are signed by"},
	}},
	{Name: "import-cpv2", Schema: "cp-install.import-cpv2.request.json", Action: cli.ActionTrust, Tier: cli.TierHO3, Run: importCPv2, Text: importText, FailedText: importText, Flags: []cli.Flag{
		{Name: "from", Kind: cli.String, Usage: "the CPv2 checkout"},
		{Name: "key", Kind: cli.String, Usage: "signer key (or path) for the converted packages"},
	}},
}}

// Run is cp-install's entry point.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, tool, args, stdin, stdout, stderr)
}

// Dispatch runs one cp-install request in-process (cli.Dispatch).
func Dispatch(ctx context.Context, req cli.Request, opts cli.Options) cli.Response {
	return cli.Dispatch(ctx, tool, req, opts)
}

func installVerb(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if req.String("archive") == "" {
		return cli.Outcome{Err: cli.Usagef("install needs --archive A")}
	}
	id := req.String("id")
	if pid := req.String("package_id"); pid != "" { // a stage or sign result piped in
		if id != "" && id != pid {
			return cli.Outcome{Err: cli.Usagef("--id %s and package_id %s disagree", id, pid)}
		}
		id = pid
	}
	wo := req.String("work_order_id")
	if alias := req.String("work_order"); alias != "" {
		if wo != "" && wo != alias {
			return cli.Outcome{Err: cli.Usagef("--wo %s and --work-order %s disagree", wo, alias)}
		}
		wo = alias
	}
	step, finish := c.Steps()
	res, err := install.Install(ctx, root, install.Options{Archive: req.String("archive"), ID: id,
		ArchiveSHA256: req.String("archive_sha256"), ManifestHash: req.String("manifest_hash"),
		DryRun: req.Bool("dry_run"), Force: req.Bool("force"), WorkOrder: wo, Actor: c.Actor(), Gate: gate.Options{AllowUnsigned: c.Env.AllowUnsigned, VerifyKey: c.Env.VerifyKey},
		Log: step})
	finish()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	switch {
	case res.Action == install.ActionNone:
		c.Logf("%s %s is already installed with this manifest: nothing to do", res.PackageID, res.Version)
	case len(res.DriftOverwritten) > 0:
		c.Warnf("--force overwrote %d file(s) edited since install (recorded): %v", len(res.DriftOverwritten), res.DriftOverwritten)
	}
	for _, g := range res.Gates {
		for _, w := range g.Warnings {
			if w.Code == gate.CodeWeakenedControl {
				if res.DryRun {
					c.Warnf("%s %s: %s: a weakened control (a dry run: nothing recorded)", g.Gate, w.Code, w.Message)
				} else {
					c.Warnf("%s %s: %s: a weakened control, recorded", g.Gate, w.Code, w.Message)
				}
			}
		}
	}
	if res.Signature == "waived" && !res.DryRun && res.Action != install.ActionNone {
		c.Warnf("%s installed unsigned under CONTROL_PLANE_ALLOW_UNSIGNED=1: a weakened control, recorded", res.PackageID)
	}
	return cli.Outcome{Result: res, LedgerEntryID: res.LedgerEntryID, Seq: res.LedgerSeq}
}

func checkpoint(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if req.String("label") == "" {
		return cli.Outcome{Err: cli.Usagef("checkpoint needs --label L")}
	}
	s, e, err := install.Checkpoint(ctx, root, req.String("label"), c.Actor(), time.Now())
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: s, LedgerEntryID: e.ID, Seq: e.Seq}
}

func versions(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	vs, err := install.Versions(root)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: map[string]any{"versions": vs}}
}

func rollback(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if req.String("version_id") == "" {
		return cli.Outcome{Err: cli.Usagef("rollback needs --version-id VER-...").WithHint("cp-install versions lists them")}
	}
	step, finish := c.Steps()
	res, err := install.Rollback(ctx, root, req.String("version_id"), req.String("work_order_id"), c.Actor(), time.Now(), step)
	finish()
	out := cli.Outcome{Err: err}
	if res != nil { // rolled back (and perhaps INTEGRITY_FAILED after it)
		out.Result, out.LedgerEntryID, out.Seq = res, res.LedgerEntryID, res.LedgerSeq
	}
	return out
}

func recoverVerb(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	res, err := install.Recover(ctx, root, c.Actor())
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if res.Found {
		c.Logf("recovered an interrupted %s (%s): rolled forward %v, rolled back %v", res.Op, res.OpID, res.RolledForward, res.RolledBack)
	}
	return cli.Outcome{Result: res}
}

func bootstrapVerb(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root := req.String("root")
	if root == "" {
		root = c.RootArg()
	}
	if root == "" {
		return cli.Outcome{Err: cli.Usagef("bootstrap needs --root DIR")}
	}
	res, err := bootstrap.Plane(ctx, root, bootstrap.Options{TrustKeys: req.Strings("trust_key"), PlaneName: req.String("plane_name"), Actor: c.Actor()})
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: res}
}

// trustVerb is trust add (add) or trust remove: KEY is "[PURPOSE,...=]PUB"
// as for bootstrap, its purposes joined to --purpose.
func trustVerb(add bool) func(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return func(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
		root, err := c.Root()
		if err != nil {
			return cli.Outcome{Err: err}
		}
		verb := map[bool]string{true: "trust add", false: "trust remove"}[add]
		if add && req.Has("governed_root") {
			if req.Has("key") || req.Has("purpose") {
				return cli.Outcome{Err: cli.Usagef("trust add changes a key or the governed roots, one at a time")}
			}
			res, err := install.AddGovernedRoots(ctx, root, req.Strings("governed_root"), install.TrustOptions{Actor: c.Actor()})
			if err != nil {
				return cli.Outcome{Err: err}
			}
			if res.Change == "none" {
				c.Logf("%v governed already: nothing to do", req.Strings("governed_root"))
			}
			return cli.Outcome{Result: res, LedgerEntryID: res.LedgerEntryID, Seq: res.LedgerSeq}
		}
		if req.String("key") == "" {
			return cli.Outcome{Err: cli.Usagef("%s needs a key: cp-install %s --purpose P PUB", verb, verb)}
		}
		purposes, key, err := trust.ParseKeySpec(req.String("key"))
		if err != nil {
			return cli.Outcome{Err: cli.Usagef("%s: %v", verb, err)}
		}
		for _, p := range req.Strings("purpose") {
			if !slices.Contains(purposes, p) {
				purposes = append(purposes, p)
			}
		}
		res, err := install.Trust(ctx, root, install.TrustOptions{Add: add, Key: key, Purposes: purposes, Force: req.Bool("force"), Actor: c.Actor()})
		if err != nil {
			return cli.Outcome{Err: err}
		}
		switch {
		case res.Change == "none":
			c.Logf("%s is already trusted for exactly that: nothing to do", res.KeyName)
		case len(res.InUse) > 0:
			c.Warnf("%s no longer trusted for packages; G5 now fails for %v until they are reinstalled signed by a trusted key", res.KeyName, res.InUse)
		}
		return cli.Outcome{Result: res, LedgerEntryID: res.LedgerEntryID, Seq: res.LedgerSeq}
	}
}

func trustText(w io.Writer, result any) error {
	r := result.(*install.TrustResult)
	if r.GovernedRoots != nil {
		if r.Change == "none" {
			_, err := fmt.Fprintf(w, "nothing to change; governed roots %v\n", r.GovernedRoots)
			return err
		}
		_, err := fmt.Fprintf(w, "governed roots added %v (now %v): kernel %s %s installed on HO3, HO2 and HO1\n", r.Roots, r.GovernedRoots, r.PackageID, r.Version)
		return err
	}
	if r.Change == "none" {
		_, err := fmt.Fprintf(w, "%s+%s: nothing to change; trusted for %v\n", r.KeyName, r.KeyHash, r.KeyPurposes)
		return err
	}
	_, err := fmt.Fprintf(w, "%s %s+%s for %v (now trusted for %v): kernel %s %s installed on HO3, HO2 and HO1\n",
		r.Change, r.KeyName, r.KeyHash, r.Purposes, r.KeyPurposes, r.PackageID, r.Version)
	return err
}

func installText(w io.Writer, result any) error {
	r := result.(*install.Result)
	verb := "installed"
	if r.DryRun {
		verb = "would install"
	}
	if r.Action == install.ActionNone {
		_, err := fmt.Fprintf(w, "%s %s already installed: nothing to do\n", r.PackageID, r.Version)
		return err
	}
	how := "a new install"
	if r.PreviousVersion != "" {
		how = r.Action + " from " + r.PreviousVersion
	}
	if _, err := fmt.Fprintf(w, "%s %s %s (%s): %d added, %d replaced, %d removed, %d unchanged\n",
		verb, r.PackageID, r.Version, how, len(r.Added), len(r.Replaced), len(r.Removed), r.Unchanged); err != nil {
		return err
	}
	if r.Checkpoint != "" {
		_, err := fmt.Fprintf(w, "the state before is checkpoint %s\n", r.Checkpoint)
		return err
	}
	return nil
}

// installFailedText shows what a refused install was and its gates, under
// the runner's error line (installText, the success view, is never called
// for a failure).
func installFailedText(w io.Writer, result any) error {
	r, ok := result.(*install.Result)
	if !ok {
		return fmt.Errorf("unexpected result %T", result)
	}
	fmt.Fprintf(w, "%s %s (archive %s)\n", r.PackageID, r.Version, r.ArchiveSHA256)
	return gate.WriteText(w, r.Gates)
}

func versionsText(w io.Writer, result any) error {
	for _, v := range result.(map[string]any)["versions"].([]install.Summary) {
		if _, err := fmt.Fprintf(w, "%s  %s  %d files  %s\n", v.VersionID, v.CreatedAt, v.Files, v.Label); err != nil {
			return err
		}
	}
	return nil
}

func rollbackText(w io.Writer, result any) error {
	r := result.(*install.RollbackResult)
	_, err := fmt.Fprintf(w, "rolled back to %s (%s): %d restored, %d removed, %d unchanged; integrity passed: %v; undo with --version-id %s\n",
		r.VersionID, r.Label, len(r.Restored), len(r.Removed), r.Unchanged, r.Integrity.AllPassed, r.Checkpoint)
	return err
}

// importCPv2 brings a CPv2 checkout into the plane (cpv2.Import): every
// item attempted, the report as the result; anything refused makes the
// run IMPORT_INCOMPLETE (exit 1), the report its result.
func importCPv2(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	from := req.String("from")
	if from == "" {
		return cli.Outcome{Err: cli.Usagef("import-cpv2 needs --from DIR, a CPv2 checkout")}
	}
	if r, _, _, err := cli.PathScope(from); err == nil && r != "" {
		return cli.Outcome{Err: cli.Usagef("--from %s is inside the plane at %s: a CPv2 checkout is read from outside every plane", from, r)}
	}
	opts := cpv2.ImportOptions{From: from, Actor: c.Actor(), Gate: gate.Options{AllowUnsigned: c.Env.AllowUnsigned, VerifyKey: c.Env.VerifyKey}}
	spec := req.String("key")
	if spec == "" {
		spec = c.Env.SigningKey
	}
	if spec != "" {
		if opts.Signer, err = keys.Signer(spec); err != nil {
			return cli.Outcome{Err: err}
		}
	}
	rep, err := cpv2.Import(ctx, root, opts)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if rep.Refused > 0 {
		var names []string
		for _, it := range rep.Items {
			if it.Outcome == cpv2.Refused {
				names = append(names, it.Type+" "+it.ID)
			}
		}
		e := cli.Errorf(cli.ExitDenied, "IMPORT_INCOMPLETE", "%d of %d items of %s refused: %s", rep.Refused, len(rep.Items), from, strings.Join(names, ", ")).
			WithHint("the report (result.items) gives each one's reason; fix them and run import-cpv2 again: what came over is reported present")
		e.Result = rep
		return cli.Outcome{Err: e}
	}
	return cli.Outcome{Result: rep}
}

func importText(w io.Writer, result any) error {
	r, ok := result.(*cpv2.Report)
	if !ok {
		return fmt.Errorf("not an import report")
	}
	_, err := io.WriteString(w, r.Table())
	return err
}
