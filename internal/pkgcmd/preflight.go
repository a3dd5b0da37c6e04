package pkgcmd

import (
	"context"
	"fmt"
	"io"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/pkg/archive"
)

var preflightVerb = &cli.Verb{Name: "preflight", Schema: "cp-pkg.preflight.request.json", Action: cli.ActionRead, Tier: cli.TierHO3, Run: preflight, Text: preflightText, FailedText: preflightText,
	Args: []string{"package_id"}, Flags: []cli.Flag{
		{Name: "src", Kind: cli.String, Usage: "package source tree"},
		{Name: "archive", Kind: cli.String, Usage: "staged archive"},
		{Name: "max-files", Kind: cli.Int, Usage: "archive cap: members"},
		{Name: "max-total-bytes", Kind: cli.Int, Usage: "archive cap: bytes in all"},
		{Name: "max-file-bytes", Kind: cli.Int, Usage: "archive cap: bytes per file"},
	}}

// preflight runs every check an install would run, short of writing: on a
// source tree (PKG-ID --src DIR) or a staged archive (--archive A). It
// writes nothing, not even a ledger entry.
func preflight(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	src := gate.Source{Dir: req.String("src"), Archive: req.String("archive"),
		Expect: gate.Expect{PackageID: req.String("package_id"), ArchiveSHA256: req.String("archive_sha256"), ManifestHash: req.String("manifest_hash")}}
	if (src.Dir == "") == (src.Archive == "") {
		return cli.Outcome{Err: cli.Usagef("preflight needs PKG-ID --src DIR or --archive A")}
	}
	opts := gate.Options{AllowUnsigned: c.Env.AllowUnsigned, VerifyKey: c.Env.VerifyKey}
	opts.Limits = limits(req)
	rep, err := gate.Preflight(ctx, root, src, opts)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if !rep.Passed {
		e := cli.Errorf(cli.ExitDenied, "PREFLIGHT_FAILED", "%s %s: %s", rep.PackageID, rep.Version, rep.FirstFailure())
		e.Result = rep
		return cli.Outcome{Err: e}
	}
	return cli.Outcome{Result: rep}
}

// limits reads the archive caps of a request; absent ones keep the
// defaults of archive.DefaultLimits.
func limits(req cli.Request) archive.Limits {
	var lim archive.Limits
	if n, ok, _ := req.Int("max_files"); ok {
		lim.MaxFiles = int(n)
	}
	if n, ok, _ := req.Int("max_total_bytes"); ok {
		lim.MaxTotalBytes = n
	}
	if n, ok, _ := req.Int("max_file_bytes"); ok {
		lim.MaxFileBytes = n
	}
	return lim
}

// preflightText is the view for people.
func preflightText(w io.Writer, result any) error {
	rep, ok := result.(*gate.Report)
	if !ok {
		return fmt.Errorf("unexpected result %T", result)
	}
	fmt.Fprintf(w, "%s %s (manifest %s)\n", rep.PackageID, rep.Version, rep.ManifestHash)
	return gate.WriteText(w, rep.Results)
}
