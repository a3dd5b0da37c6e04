// Package installcmd is cp-install, the only writer of INSTALLED. This part
// creates planes: bootstrap builds the three tiers with their ledgers,
// registries, default config and the kernel package.
//
// It reads a request from flags or stdin and writes one JSON envelope to
// stdout. Exit status: 0 success, 1 refused (a plane or other files already
// at --root), 2 usage, 3 invalid input, 4 filesystem error, 5 internal error.
package installcmd

import (
	"context"
	"io"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/pkg/plane"
)

const usage = `cp-install: plane bootstrap (install, checkpoints and rollback are next)

Usage:
  cp-install bootstrap --root DIR [--trust-key PUB ...]

  Or a JSON request on stdin: echo '{"operation":"bootstrap","root":"DIR"}' | cp-install

bootstrap creates a plane in DIR (which must not exist or be empty): the HO3
governance tier at DIR, HO2 at DIR/planes/ho2 and HO1 at DIR/planes/ho1, each with
tier.json, a ledger opened by a GENESIS entry (a lower tier's records its parent
ledger's head hash), the five registries, config/ (governed roots, router policy
placeholder, trusted keys) and the kernel package PKG-KERNEL-001 installed
identically on all three. The plane is built beside DIR and renamed into place:
DIR holds a whole plane or none. A directory that already holds a plane is
refused, and left as it is.

Options:
  --root DIR        where to create the plane
  --trust-key PUB   a verifier key (or a path to one) to trust for packages and
                    checkpoints; repeat for several (cp-pkg keygen makes keys)
  -h                this help; -version the version; --capabilities the operations

Exit status:
  0  success
  1  refused: DIR already holds a plane, or other files
  2  usage: unknown verb or flag, bad argument, unreadable key
  3  invalid input: stdin not JSON, schema violation
  4  unavailable: filesystem error
  5  internal error

Examples:
  cp-pkg keygen --name ops --out keys
  cp-install bootstrap --root plane --trust-key keys/ops.pub
  cp-ledger verify --root plane --plane ho2
`

// The design's default verb is install, which comes with the next issue:
// until then a request must name its verb.
var tool = &cli.Tool{Name: "cp-install", Usage: usage, NoDefault: true, Verbs: []*cli.Verb{
	{Name: "bootstrap", Schema: "cp-install.bootstrap.request.json", Run: bootstrap, Flags: []cli.Flag{
		{Name: "trust-key", Kind: cli.Multi, Usage: "verifier key to trust"},
		{Name: "plane-root", Kind: cli.String, Field: "root", Usage: "(stdin form of --root)"},
	}},
}}

// Run is cp-install's entry point.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, tool, args, stdin, stdout, stderr)
}

func bootstrap(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root := req.String("root")
	if root == "" {
		root = c.RootArg()
	}
	if root == "" {
		return cli.Outcome{Err: cli.Usagef("bootstrap needs --root DIR")}
	}
	res, err := plane.Bootstrap(ctx, root, plane.BootstrapOptions{TrustKeys: req.Strings("trust_key"), Actor: cli.Actor()})
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: res}
}
