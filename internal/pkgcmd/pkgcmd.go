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
  cp-pkg keygen --name NAME [--out DIR]

  Or a JSON request on stdin: echo '{"operation":"keygen","name":"ops"}' | cp-pkg

keygen writes NAME.key (a note signer key, mode 0600) and NAME.pub (its verifier
key) into DIR (default: the working directory). It never overwrites a key.
Give NAME.key to cp-ledger checkpoint --sign-key (or CONTROL_PLANE_SIGNING_KEY)
and NAME.pub to cp-ledger verify --verify-key (or CONTROL_PLANE_VERIFY_KEY).

Options:
  --name NAME   the key name, recorded in every signature it makes
  --out DIR     where to write the key files
  -h            this help; -version the version; --capabilities the operations

Exit status:
  0  success
  1  a key file of that name already exists
  2  usage: unknown verb or flag, bad argument
  3  invalid input: stdin not JSON, schema violation
  4  unavailable: filesystem error
  5  internal error

Examples:
  cp-pkg keygen --name ops --out ~/.config/control-plane
  cp-ledger checkpoint --ledger audit.jsonl --sign-key ~/.config/control-plane/ops.key
`

var tool = &cli.Tool{Name: "cp-pkg", Usage: usage, Verbs: []*cli.Verb{
	// DESIGN.md order: init, init-agent, preflight, stage, sign, keygen,
	// register-framework, register-spec, check-framework.
	preflightVerb,
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
