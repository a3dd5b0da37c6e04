// Package pkgcmd is cp-pkg, the author side of packages. This first part
// makes the note keys that sign checkpoints and packages.
//
// keygen writes NAME.key (the signer key, mode 0600, created exclusively:
// an existing key is never overwritten) and NAME.pub (the verifier key) in
// --out, and prints their paths and the verifier key. Exit status: 0
// success, 1 a key file already exists, 2 usage, 3 invalid input, 4
// filesystem error, 5 internal error.
package pkgcmd

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/pkg/keys"
)

const usage = `cp-pkg: the author side of Control Plane packages

Usage:
  cp-pkg init       PKG-ID --spec SPEC-ID [--framework FMWK-ID] --output DIR
  cp-pkg init-agent PKG-ID --spec SPEC-ID [--framework FMWK-ID] --output DIR
  cp-pkg stage      PKG-ID --src DIR [--out DIR] [--declare]
  cp-pkg sign       --archive A [--key K]
  cp-pkg keygen     --name NAME [--out DIR]

  Or a JSON request on stdin whose "operation" names the verb:
  echo '{"operation":"keygen","name":"ops"}' | cp-pkg

init creates DIR (new or empty) holding a manifest.json skeleton: version 0.1.0,
type standard, plane ho3, no dependencies, no assets. Without --framework, the
framework is the one the plane's specs registry gives for SPEC-ID. Put each file
of the package under DIR at its install path (DIR/config/x.json installs as
config/x.json), then stage with --declare.

init-agent is init for an agent package: it also writes
modules/<pkg-id>/capabilities.json and governed_prompts/<PKG-ID>/system.md, both
declared already, so the tree stages without --declare once they fit the spec.

stage reads DIR/manifest.json, fills every asset's sha256 and size from the tree,
writes the manifest back, runs preflight against the plane (every check an
install would run short of writing) and writes PKG-ID.tar.gz into --out (default:
<root>/_staging/). The same tree gives the same archive bytes whatever its
mtimes, owners or umask. Every file in DIR but manifest.json must be declared;
--declare declares the others, classified by top directory (config/ config,
lib/ library, modules/ module, governed_prompts/ prompt, schemas/ schema, ...;
anything else doc). A symlink or special file in DIR is refused. A .sig left
beside an older, different archive is removed: it could no longer verify.

sign checks A as an install reads it (archive rules, files against the
manifest) and writes A.sig: a signed note binding package id, version, manifest
hash and archive hash. It replaces an earlier A.sig. The key comes from --key,
else CONTROL_PLANE_SIGNING_KEY (a signer key or the path of one).

keygen writes NAME.key (a note signer key, mode 0600) and NAME.pub (its verifier
key) into DIR (default: the working directory). It never overwrites a key.
Give NAME.key to cp-pkg sign --key or cp-ledger checkpoint --sign-key (or
CONTROL_PLANE_SIGNING_KEY), and NAME.pub to cp-install bootstrap --trust-key or
cp-ledger verify --verify-key (or CONTROL_PLANE_VERIFY_KEY).

Options:
  --spec SPEC-ID       init: the spec the package implements
  --framework FMWK-ID  init: its framework (default: from the plane's specs registry)
  --output DIR         init: the source tree to create
  --src DIR            stage: the source tree
  --out DIR            stage: where to write the archive; keygen: the key files
  --declare            stage: declare every undeclared file
  --archive A          sign: the archive
  --key K              sign: a signer key, or the path of a file holding one
  --name NAME          keygen: the key name, recorded in every signature it makes
  --root DIR           the plane (else $CONTROL_PLANE, else the nearest HO3
                       ancestor); stage always needs one, init only to look up
                       a framework
  --format F           json (default) or text
  -h                   this help; -version the version; --capabilities the operations

Exit status:
  0  success
  1  refused: output not empty, spec not registered, undeclared or missing
     files, package id not the manifest's, preflight failed, key file exists
  2  usage: unknown verb or flag, missing or bad argument, no plane, no key
  3  invalid input: stdin not JSON, schema violation, malformed manifest or
     archive, a symlink or special file in the source tree
  4  unavailable: filesystem error
  5  internal error

Examples:
  cp-pkg keygen --name ops --out ~/.config/control-plane
  cp-pkg init PKG-DEMO-001 --spec SPEC-DEMO-001 --output demo --root plane
  mkdir -p demo/config && echo '{"greeting":"hi"}' > demo/config/demo.json
  cp-pkg stage PKG-DEMO-001 --src demo --declare --root plane
  cp-pkg sign --archive plane/_staging/PKG-DEMO-001.tar.gz --key ~/.config/control-plane/ops.key
  cp-pkg stage PKG-DEMO-001 --src demo --out dist --root plane | cp-pkg sign --key ops.key
  cp-pkg init-agent PKG-HELPER-001 --spec SPEC-AGENTS-001 --framework FMWK-AGENTS-001 --output helper
  cp-ledger checkpoint --ledger audit.jsonl --sign-key ~/.config/control-plane/ops.key
`

var tool = &cli.Tool{Name: "cp-pkg", Usage: usage, Verbs: []*cli.Verb{
	// DESIGN.md order: init, init-agent, preflight, stage, sign, keygen,
	// register-framework, register-spec, check-framework.
	initVerb, initAgentVerb, // author.go
	preflightVerb,
	stageVerb, signVerb, // author.go
	{Name: "keygen", Schema: "cp-pkg.keygen.request.json", Run: keygen, Flags: []cli.Flag{
		{Name: "name", Kind: cli.String, Usage: "key name"},
		{Name: "out", Kind: cli.String, Usage: "output directory"},
	}},
	registerFrameworkVerb, registerSpecVerb, checkFrameworkVerb,
}}

// Run is cp-pkg's entry point.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, tool, args, stdin, stdout, stderr)
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

// writeNew creates path exclusively with mode perm, fsynced.
func writeNew(path, content string, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return cli.Errorf(cli.ExitDenied, "KEY_EXISTS", "%s already exists; refusing to overwrite a key", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
