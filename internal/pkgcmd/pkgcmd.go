// Package pkgcmd is cp-pkg, the author side of packages and the
// framework/spec registries: init and init-agent scaffold a package source
// tree; stage fills its hashes, runs preflight and writes a deterministic
// archive; sign writes the archive's signature note; preflight runs every
// check an install would run without writing; keygen makes note keys;
// register-framework, register-spec and check-framework keep the registries
// and record every outcome in HO3's governance ledger.
//
// It reads a request from flags or stdin and writes one JSON envelope to
// stdout. Exit status: 0 success, 1 refused (a failed gate, a breaking
// framework change, an existing key, ...), 2 usage, 3 invalid input
// (malformed JSON, manifest or archive), 4 filesystem error, 5 internal
// error.
package pkgcmd

import (
	"context"
	"errors"
	"github.com/control-plane/cp/internal/atomicfile"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/pkg/keys"
)

const usage = `cp-pkg: the author side of Control Plane packages

Usage:
  cp-pkg [init]     PKG-ID (--spec SPEC-ID | --framework FMWK-ID) --output DIR
  cp-pkg init-agent PKG-ID (--spec SPEC-ID | --framework FMWK-ID) --output DIR
  cp-pkg init-config PKG-ID [--output DIR]
  cp-pkg init-prompt-pack PRM-ID (--spec SPEC-ID | --framework FMWK-ID) [--package PKG-ID] [--output DIR]
  cp-pkg preflight  (PKG-ID --src DIR | --archive A)
  cp-pkg stage      PKG-ID --src DIR [--out DIR] [--declare]
  cp-pkg stage      PKG-ID --src DIR --from-cpv2 [--files DIR] [--out DIR]
  cp-pkg sign       --archive A [--key K]
  cp-pkg keygen     --name NAME [--out DIR]
  cp-pkg register-framework FMWK-ID --src DOC.md [--wo WO-ID]
  cp-pkg register-spec      SPEC-ID --src DIR [--wo WO-ID]
  cp-pkg check-framework    FMWK-ID --src DOC.md

  Or a JSON request on stdin whose "operation" names the verb (default init):
  echo '{"operation":"keygen","name":"ops"}' | cp-pkg

init creates DIR (new or empty) holding a manifest.json skeleton: version 0.1.0,
type standard, plane ho3, no dependencies, no assets. Without --framework, the
framework is the one the plane's specs registry gives for SPEC-ID; without
--spec, the spec is the framework's one active spec there (several: refused),
else SPEC-<name> after the package, to register before staging. Put each file
of the package under DIR at its install path (DIR/config/x.json installs as
config/x.json), then stage with --declare.

init-agent is init for an agent package: it also writes
modules/<pkg-id>/capabilities.json and governed_prompts/<PKG-ID>/system.md, both
declared already, so the tree stages without --declare once they fit the spec.

init-prompt-pack creates DIR (default: PRM-ID) holding a package of type
prompt_pack (default id: PKG-<name of the pack>) with one prompt pack
(DESIGN.md §9), declared: governed_prompts/PRM-ID/pack.json (its version, the
JSON Schema of its variables, the providers, models and max_tokens it allows)
and the template it names (Go text/template; a missing variable is an error).
It stages, signs and installs as it is under a spec that allows
governed_prompts/**; install registers the pack in prompts_registry.csv with
the digest of both files, and the gateway refuses it if either changes.

init-config creates DIR (default: PKG-ID) holding a config package: the
operator configuration (DESIGN.md §4) as built-in defaults, declared in a
manifest of type config under SPEC-KERNEL-001: config/governance.json (work
orders optional), config/providers.json (the mock provider),
config/router_policy.json (the default route only) and config/policy.cedar (no
policy; a commented example forbid). Until a config package is installed the
tools use these same defaults. Operator configuration changes only this way: a
config package may hold nothing but these four files (never
config/trusted_keys.json or config/governed_roots.json, which change only
through cp-install trust), no other package may hold them, and each is
validated when the package is staged, preflighted and installed
(CONFIG_ASSET_INVALID, exit 1). Edit the files, raise the version for an
upgrade, then stage, sign and install; cp-install rollback restores the
configuration before.

preflight runs every check an install would run, short of writing, on a source
tree or a staged archive, and writes nothing at all (not even a ledger entry):
the archive rules (ARCHIVE_UNSAFE, exit 3), the manifest (MANIFEST_INVALID,
exit 3), then the gates G0A (every file declared, present, matching size and
hash; paths under the governed roots and never reserved), G1 (spec and
framework registered and active, assets inside the spec's patterns,
dependencies installed at allowed versions), G5 (the archive's signature by a
trusted key from config/trusted_keys.json or CONTROL_PLANE_VERIFY_KEY;
CONTROL_PLANE_ALLOW_UNSIGNED=1 turns a missing signature into a recorded waiver,
never an invalid one; on a source tree G5 reports "not applicable"), VERSION
(no downgrade, no second manifest for one version) and OWNERSHIP (no file owned
by another package), in that order (DESIGN.md §6). Any failed gate: exit 1,
PREFLIGHT_FAILED, the report at .result.

stage --from-cpv2 stages a package of the Python Control Plane v2: DIR holds its
CPv2 manifest.json, its files under DIR (or --files: a CPv2 checkout's root, for
an installed package). The manifest is converted into ours (the README's
mapping; the spec must be registered here, SPEC_NOT_FOUND), each file checked
against the hash CPv2 declared (CPV2_PACKAGE_CHANGED), the governed roots its
files need checked (NOT_GOVERNED, hint: cp-install trust add --governed-root),
and the declared files and our manifest staged from a private copy: DIR is only
read, and what is signed is our manifest, never CPv2's.

stage reads DIR/manifest.json, fills every asset's sha256, size and mode (0555
when the file has an execute bit, else 0444: installed files are never writable)
from the tree,
writes the manifest back, runs preflight against the plane (every check an
install would run short of writing) and writes PKG-ID.tar.gz into --out (default:
<root>/_staging/). The same tree gives the same archive bytes whatever its
mtimes, owners or umask. Every file in DIR but manifest.json must be declared,
and every declared file present; --declare rewrites the asset list from the
tree instead: it declares the others, classified by top directory (config/
config, lib/ library, modules/ module, governed_prompts/ prompt, schemas/
schema, ...; anything else doc), and drops the files gone. A symlink or special
file in DIR is refused, and so is an --out that leads into the plane through a
symlink. A .sig left
beside an older, different archive is removed: it could no longer verify.

sign checks A as an install reads it (archive rules, files against the
manifest) and writes A.sig: a signed note binding package id, version, manifest
hash and archive hash. It replaces an earlier A.sig. The key comes from --key,
else CONTROL_PLANE_SIGNING_KEY (a signer key or the path of one).

register-framework registers a framework document (markdown opening with a
---/framework_id/title/version/status/--- block; its MUST list items are the
invariants; or a CPv2 document: a ## Metadata list, **Version:** lines, a
## Status section, the # FMWK-ID: Title heading or an FMWK-ID_title.md file
name, with its [MUST] items, MUST sentences and invariant tables; see the
README's Coming from CPv2), keeping it under registries/frameworks/ID/VERSION.md.
The same document again changes nothing; a changed one needs a higher version
and must keep every MUST invariant (else BREAKING_CHANGE). register-spec
registers DIR/manifest.json or DIR/manifest.yaml (spec_id, framework_id, assets
patterns with ** for any depth, invariants; CPv2's plane_id, tier, interfaces,
acceptance, non_goals, dependencies and status draft; its framework registered
and active, or draft for a draft spec; plane_id this plane's; the specs and
frameworks it depends on registered).
check-framework compares a candidate document with the registered one. Each
writes its outcome, refusals included, to HO3's governance ledger. With --wo
WO-ID (mandatory where config/governance.json says work_orders: required),
register-* first runs G2: the work order approved, unchanged and not expired,
and the document's path and the registry's inside its scope (SCOPE_VIOLATION,
WO_REQUIRED, ...: refused and recorded, nothing written).

keygen writes NAME.key (a note signer key, mode 0600) and NAME.pub (its verifier
key) into DIR (default: the working directory). It never overwrites a key.
Give NAME.key to cp-pkg sign --key or cp-ledger checkpoint --sign-key (or
CONTROL_PLANE_SIGNING_KEY), and NAME.pub to cp-install bootstrap --trust-key or
cp-ledger verify --verify-key (or CONTROL_PLANE_VERIFY_KEY).

Options:
  --spec SPEC-ID       init: the spec the package implements
  --framework FMWK-ID  init: its framework (default: from the plane's specs registry)
  --output DIR         init, init-agent, init-config, init-prompt-pack: the source tree to create
  --package PKG-ID     init-prompt-pack: the package id (default: PKG-<name of the pack>)
  --src DIR            stage, preflight: the source tree; register-*, check-framework:
                       the document or spec directory
  --out DIR            stage: where to write the archive; keygen: the key files
  --declare            stage: rewrite the asset list from the tree
  --archive A          sign, preflight: the archive
  --wo WO-ID           register-*: the work order the registration is done under (G2)
  --max-files N        preflight: archive cap on members (default 20,000)
  --max-total-bytes N  preflight: archive cap on decompressed bytes (default 1 GiB)
  --max-file-bytes N   preflight: archive cap on one file's bytes (default 256 MiB)
  --key K              sign: a signer key, or the path of a file holding one
  --name NAME          keygen: the key name, recorded in every signature it makes
  --root DIR           the plane (else $CONTROL_PLANE, else the nearest HO3
                       ancestor); stage always needs one, init only to look up
                       a framework
  --format F           json (default) or text (the default on a terminal)
  -h                   this help; -version the version; --capabilities the operations

Exit status:
  0  success
  1  refused: output not empty, spec not registered, undeclared or missing
     files, package id not the manifest's, preflight failed, key file exists,
     breaking framework change, version not newer, framework not registered
  2  usage: unknown verb or flag, missing or bad argument, no plane, no key
  3  invalid input: stdin not JSON, schema violation, malformed manifest or
     archive, a symlink or special file in the source tree, a request over
     16 MiB (REQUEST_TOO_LARGE)
  4  unavailable: filesystem error
  5  internal error

Examples:
  cp-pkg keygen --name ops --out ~/.config/control-plane
  cp-pkg register-framework FMWK-DEMO-001 --src fmwk-demo.md --root plane
  cp-pkg register-spec SPEC-DEMO-001 --src spec-demo/ --root plane
  cp-pkg check-framework FMWK-DEMO-001 --src fmwk-demo-v2.md --root plane
  cp-pkg preflight --archive plane/_staging/PKG-DEMO-001.tar.gz --root plane --format text
  cp-pkg init PKG-DEMO-001 --spec SPEC-DEMO-001 --output demo --root plane
  mkdir -p demo/config && echo '{"greeting":"hi"}' > demo/config/demo.json
  cp-pkg stage PKG-DEMO-001 --src demo --declare --root plane
  cp-pkg sign --archive plane/_staging/PKG-DEMO-001.tar.gz --key ~/.config/control-plane/ops.key
  cp-pkg stage PKG-DEMO-001 --src demo --out dist --root plane | cp-pkg sign --key ops.key
  cp-pkg init-agent PKG-HELPER-001 --spec SPEC-AGENTS-001 --framework FMWK-AGENTS-001 --output helper
  cp-ledger checkpoint --ledger audit.jsonl --sign-key ~/.config/control-plane/ops.key

  # a prompt pack: scaffold, edit, publish
  cp-pkg init-prompt-pack PRM-SUMMARIZE-001 --spec SPEC-PROMPTS-001 --root plane
  cp-pkg stage PKG-SUMMARIZE-001 --src PRM-SUMMARIZE-001 --out dist --root plane |
    cp-pkg sign --key ~/.config/control-plane/ops.key | cp-install install --root plane

  # operator configuration: scaffold the defaults, require work orders, install
  cp-pkg init-config PKG-CONFIG-001 --output opconf
  echo '{"work_orders":"required"}' > opconf/config/governance.json
  cp-pkg stage PKG-CONFIG-001 --src opconf --out dist --root plane |
    cp-pkg sign --key ~/.config/control-plane/ops.key |
    cp-install install --root plane
`

var tool = &cli.Tool{Name: "cp-pkg", Usage: usage, Verbs: []*cli.Verb{
	// DESIGN.md order: init, init-agent, preflight, stage, sign, keygen,
	// register-framework, register-spec, check-framework.
	initVerb, initAgentVerb, initConfigVerb, // author.go
	initPromptPackVerb, // promptpack.go
	preflightVerb,
	stageVerb, signVerb, // author.go
	{Name: "keygen", Schema: "cp-pkg.keygen.request.json", Action: cli.ActionKeygen, Tier: cli.TierHO3, Scope: writesScope("out"), Run: keygen, Flags: []cli.Flag{
		{Name: "name", Kind: cli.String, Usage: "key name"},
		{Name: "out", Kind: cli.String, Usage: "output directory"},
	}},
	registerFrameworkVerb, registerSpecVerb, checkFrameworkVerb,
}}

// Run is cp-pkg's entry point.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, tool, args, stdin, stdout, stderr)
}

// Dispatch runs one cp-pkg request in-process (cli.Dispatch).
func Dispatch(ctx context.Context, req cli.Request, opts cli.Options) cli.Response {
	return cli.Dispatch(ctx, tool, req, opts)
}

func keygen(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	name := req.String("name")
	out := req.String("out")
	if out == "" {
		out = "."
	}
	skey, vkey, err := keys.Generate(name)
	if err != nil {
		return cli.Outcome{Err: cli.Usagef("--name %q: %v", name, err)}
	}
	// A new key directory is private: it holds a private key.
	if err := os.MkdirAll(out, 0o700); err != nil {
		return cli.Outcome{Err: err}
	}
	keyPath := filepath.Join(out, name+".key")
	pubPath := filepath.Join(out, name+".pub")
	if err := writeNew(keyPath, skey+"\n", 0o600); err != nil {
		return cli.Outcome{Err: err}
	}
	if err := writeNew(pubPath, vkey+"\n", 0o644); err != nil {
		os.Remove(keyPath)
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: map[string]any{"name": name, "private_key_path": keyPath, "public_key_path": pubPath, "verifier_key": vkey}}
}

// writeNew creates path exclusively with mode perm, fsynced: a key is never
// overwritten.
func writeNew(path, content string, perm fs.FileMode) error {
	err := atomicfile.Create(path, []byte(content), perm)
	if errors.Is(err, fs.ErrExist) {
		return cli.Errorf(cli.ExitDenied, "KEY_EXISTS", "%s already exists; refusing to overwrite a key", path)
	}
	return err
}
