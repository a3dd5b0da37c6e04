package pkgcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/control-plane/cp/internal/atomicfile"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/cpv2"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry/register"
	"github.com/control-plane/cp/internal/stage"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/manifest"
)

// The author verbs: init and init-agent lay out a package source tree,
// stage turns a tree into a deterministic archive that passed preflight,
// sign writes the archive's signature. They write only what they are told
// to (the tree, the archive, the .sig), never a ledger or a registry.

var (
	initVerb = &cli.Verb{Name: "init", Schema: "cp-pkg.init.request.json", Action: cli.ActionAuthor, Tier: cli.TierNone, Scope: writesScope("output"), Args: []string{"package_id"},
		Run:  func(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome { return initTree(c, req, false) },
		Text: textInit, Flags: initFlags}
	initAgentVerb = &cli.Verb{Name: "init-agent", Schema: "cp-pkg.init-agent.request.json", Action: cli.ActionAuthor, Tier: cli.TierNone, Scope: writesScope("output"), Args: []string{"package_id"},
		Run:  func(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome { return initTree(c, req, true) },
		Text: textInit, Flags: initFlags}
	initConfigVerb = &cli.Verb{Name: "init-config", Schema: "cp-pkg.init-config.request.json", Action: cli.ActionAuthor, Tier: cli.TierNone, Scope: writesScope("output"), Args: []string{"package_id"},
		Run: initConfig, Text: textInit, Flags: []cli.Flag{
			{Name: "output", Kind: cli.String, Usage: "directory to create (default: PKG-ID)"},
		}}
	stageVerb = &cli.Verb{Name: "stage", Schema: "cp-pkg.stage.request.json", Action: cli.ActionAuthor, Tier: cli.TierHO3, Scope: writesScope("out"), Args: []string{"package_id"},
		Run: stageTree, Text: textStage, FailedText: preflightText, Flags: []cli.Flag{
			{Name: "src", Kind: cli.String, Usage: "package source tree"},
			{Name: "out", Kind: cli.String, Usage: "directory for the archive"},
			{Name: "declare", Kind: cli.Bool, Usage: "rewrite the asset list from the tree"},
			{Name: "from-cpv2", Kind: cli.Bool, Usage: "src holds a CPv2 manifest: convert it, then stage"},
			{Name: "files", Kind: cli.String, Usage: "with --from-cpv2: the directory the asset paths are under (default: src)"},
		}}
	signVerb = &cli.Verb{Name: "sign", Schema: "cp-pkg.sign.request.json", Action: cli.ActionSign, Tier: cli.TierHO3, Scope: writesScope("archive"), Run: sign, Text: textSign, Flags: []cli.Flag{
		{Name: "archive", Kind: cli.String, Usage: "package archive"},
		{Name: "key", Kind: cli.String, Usage: "signer key or path"},
	}}
)

// writesScope is what a verb that writes files where its request says
// (init's --output, stage's --out, sign's .sig beside --archive, keygen's
// --out) acts on, for the firewall. The place is judged by where it really
// is, symbolic links and ".." resolved (cli.PathScope, as cp-ledger
// --ledger is): inside a plane it is authoring into that plane's tier,
// whatever --root says, which DESIGN.md §8 allows admin and maintainer
// only. Elsewhere it is the verb's declared tier: TierNone, the caller's
// own files; TierHO3, the plane of --root.
func writesScope(field string) func(c *cli.Call, req cli.Request) (root, tier, session string, err error) {
	return func(c *cli.Call, req cli.Request) (string, string, string, error) {
		dir := req.String(field)
		switch {
		case dir != "":
		case c.Verb.Name == "init-config":
			dir = req.String("package_id")
		case c.Verb.Name == "init-prompt-pack":
			dir = req.String("prompt_pack_id")
		case c.Verb.Name == "keygen":
			dir = "."
		}
		if dir != "" {
			p := dir + string(filepath.Separator) + "x" // a file in it; not filepath.Join: "L/.." is not "" when L is a link
			if field == "archive" {
				p = dir // the .sig goes beside it
			}
			root, tier, _, err := cli.PathScope(p)
			if err != nil || root != "" {
				return root, tier, "", err
			}
		}
		if c.Verb.Tier == cli.TierNone {
			return "", "", "", nil
		}
		root, err := c.Root()
		if err != nil {
			root = "" // the verb reports it, or needs no plane
		}
		return root, c.Verb.Tier, "", nil
	}
}

var initFlags = []cli.Flag{
	{Name: "spec", Kind: cli.String, Usage: "spec id"},
	{Name: "framework", Kind: cli.String, Usage: "framework id"},
	{Name: "output", Kind: cli.String, Usage: "directory to create"},
}

// envSigningKey holds the signer key (or its path) when --key is not given.
const envSigningKey = "CONTROL_PLANE_SIGNING_KEY"

// ---- init, init-agent ----

// initResult is what init and init-agent answer.
type initResult struct {
	PackageID   string   `json:"package_id"`
	PackageType string   `json:"package_type"`
	Version     string   `json:"version"`
	SpecID      string   `json:"spec_id"`
	FrameworkID string   `json:"framework_id"`
	Output      string   `json:"output"`
	Files       []string `json:"files"`
	Next        string   `json:"next"`
}

// initTree creates --output holding a manifest.json skeleton (and, for an
// agent, a capabilities document and a system prompt, already declared).
// Either --spec or --framework may be left out (the seed's form is
// init-agent PKG --framework F): the plane's specs registry gives the
// framework of a spec, or the one active spec of a framework; a framework
// with no spec registered yet gets SPEC-<name of the package>, to register
// before staging. The tree is built beside --output and renamed into
// place, so --output ends up whole or untouched. Exit status: 1 --output is
// not empty, the spec is not registered, or the framework has several
// specs; 2 usage (missing argument, no framework and no plane), 4
// filesystem error.
func initTree(c *cli.Call, req cli.Request, agent bool) cli.Outcome {
	verb := c.Verb.Name
	id, specID, out := req.String("package_id"), req.String("spec"), req.String("output")
	switch {
	case id == "":
		return fail(cli.Usagef("%s needs a package id: cp-pkg %s PKG-ID --spec SPEC-ID --output DIR", verb, verb))
	case specID == "" && req.String("framework") == "":
		return fail(cli.Usagef("%s needs --spec SPEC-ID or --framework FMWK-ID", verb))
	case out == "":
		return fail(cli.Usagef("%s needs --output DIR", verb))
	}
	if err := checkOutput(out); err != nil {
		return fail(err)
	}
	fwID, specID, unregistered, err := governance(c, req.String("framework"), specID, id)
	if err != nil {
		return fail(err)
	}

	m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, PackageID: id, Version: "0.1.0",
		PackageType: "standard", SpecID: specID, FrameworkID: fwID, PlaneID: "ho3",
		Dependencies: []string{}, Assets: []manifest.Asset{}}
	files := map[string][]byte{}
	next := fmt.Sprintf("add each file under %s at its install path (e.g. %s), then: cp-pkg stage %s --src %s --declare",
		out, filepath.Join(out, "config", "example.json"), id, out)
	if agent {
		m.PackageType = "agent"
		modDir := strings.ToLower(id)
		capPath := "modules/" + modDir + "/capabilities.json"
		promptPath := "governed_prompts/" + id + "/system.md"
		caps, err := json.MarshalIndent(map[string]any{
			"agent_id": modDir, "package_id": id, "tools": []string{}, "prompt_packs": []string{promptPath},
		}, "", "  ")
		if err != nil {
			return fail(err)
		}
		files[capPath] = append(caps, '\n')
		files[promptPath] = []byte(systemPrompt(id))
		for _, p := range []string{promptPath, capPath} { // sorted by path
			class := stage.Classify(p)
			m.Assets = append(m.Assets, manifest.Asset{Path: p, SHA256: plane.SHA256(files[p]), Size: int64(len(files[p])), Classification: class})
		}
		next = fmt.Sprintf("edit %s and %s, then: cp-pkg stage %s --src %s",
			filepath.Join(out, filepath.FromSlash(promptPath)), filepath.Join(out, filepath.FromSlash(capPath)), id, out)
	}
	if unregistered {
		next = fmt.Sprintf("register spec %s (framework %s, its assets covering this package's paths) with cp-pkg register-spec %s --src DIR; %s",
			specID, fwID, specID, next)
	}
	if err := writePackage(out, m, files); err != nil {
		return fail(err)
	}
	res := initResult{PackageID: id, PackageType: m.PackageType, Version: m.Version, SpecID: specID,
		FrameworkID: fwID, Output: out, Next: next}
	for p := range files {
		res.Files = append(res.Files, filepath.Join(out, filepath.FromSlash(p)))
	}
	slices.Sort(res.Files)
	return cli.Outcome{Result: res}
}

// ---- init-config ----

// initConfig creates --output (default: the package id, in the working
// directory) holding a config package (DESIGN.md §4): a manifest.json of
// type config under the kernel's spec and framework, and the built-in
// defaults of every operator configuration file (internal/config), already
// declared, so that the tree stages, signs and installs as it is and
// changes nothing but where the configuration comes from. The tree is built
// beside --output and renamed into place. Exit status: 1 --output is not
// empty; 2 usage (missing package id); 4 filesystem error.
func initConfig(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	id, out := req.String("package_id"), req.String("output")
	if id == "" {
		return fail(cli.Usagef("init-config needs a package id: cp-pkg init-config PKG-ID [--output DIR]"))
	}
	if out == "" {
		out = id
	}
	if err := checkOutput(out); err != nil {
		return fail(err)
	}
	m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, PackageID: id, Version: "0.1.0",
		PackageType: config.PackageType, SpecID: plane.KernelSpec, FrameworkID: plane.KernelFramework, PlaneID: "ho3",
		Dependencies: []string{}, Assets: []manifest.Asset{}}
	files := config.Defaults()
	for _, p := range config.Paths { // sorted
		m.Assets = append(m.Assets, manifest.Asset{Path: p, SHA256: plane.SHA256(files[p]), Size: int64(len(files[p])),
			Classification: stage.Classify(p)})
	}
	if err := writePackage(out, m, files); err != nil {
		return fail(err)
	}
	res := initResult{PackageID: id, PackageType: m.PackageType, Version: m.Version, SpecID: m.SpecID, FrameworkID: m.FrameworkID, Output: out,
		Next: fmt.Sprintf("edit the files under %s (then raise the version in %s for an upgrade), then: cp-pkg stage %s --src %s | cp-pkg sign --key KEY | cp-install install",
			filepath.Join(out, "config"), filepath.Join(out, manifest.FileName), id, out)}
	for p := range files {
		res.Files = append(res.Files, filepath.Join(out, filepath.FromSlash(p)))
	}
	slices.Sort(res.Files)
	return cli.Outcome{Result: res}
}

// checkOutput refuses an --output that exists and is not an empty directory.
func checkOutput(out string) error {
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		if fi, serr := os.Stat(out); serr == nil && !fi.IsDir() {
			return cli.Errorf(cli.ExitDenied, "OUTPUT_NOT_EMPTY", "%s exists and is not a directory", out)
		}
		return err
	case len(entries) > 0:
		return cli.Errorf(cli.ExitDenied, "OUTPUT_NOT_EMPTY", "%s is not empty; init writes only a new or empty directory", out).
			WithHint("choose another --output, or remove %s", out)
	}
	return nil
}

// governance completes a new package's framework and spec from the one of
// them given (specFramework, frameworkSpec); unregistered reports a spec
// still to register.
func governance(c *cli.Call, fwID, specID, pkgID string) (fw, spec string, unregistered bool, err error) {
	if fwID == "" {
		if fwID, err = specFramework(c, specID); err != nil {
			return "", "", false, err
		}
	}
	if specID == "" {
		if specID, unregistered, err = frameworkSpec(c, fwID, pkgID); err != nil {
			return "", "", false, err
		}
	}
	return fwID, specID, unregistered, nil
}

// specFramework looks up the framework of a registered spec in the plane's
// specs registry (register.SpecFramework).
func specFramework(c *cli.Call, specID string) (string, error) {
	root, err := planeRoot(c)
	if err != nil {
		e := cli.AsError(err)
		if e.Code == "USAGE" {
			e.Message = "no --framework, and no plane to look up " + specID + " in"
			e.Hint = "give --framework FMWK-ID, or --root DIR of a plane where " + specID + " is registered"
		}
		return "", e
	}
	return register.SpecFramework(root, specID)
}

// frameworkSpec chooses the spec of a package made with --framework and no
// --spec (register.FrameworkSpec); with no plane to look in,
// SPEC-<name of the package>, still to register (unregistered true).
func frameworkSpec(c *cli.Call, fwID, pkgID string) (specID string, unregistered bool, err error) {
	root, err := planeRoot(c)
	if err != nil {
		return register.DerivedSpec(pkgID), true, nil // no plane: nothing registered to choose from
	}
	return register.FrameworkSpec(root, fwID, pkgID)
}

// planeRoot resolves the plane (--root, $CONTROL_PLANE, or the nearest HO3
// ancestor) and checks that it is one.
func planeRoot(c *cli.Call) (string, error) {
	root, err := c.Root()
	if err != nil {
		return "", err
	}
	if t, err := plane.ReadTier(root); err != nil || t.Tier != "HO3" {
		return "", cli.Usagef("%s is not a plane root (no HO3 tier.json)", root).
			WithHint("create one with cp-install bootstrap --root DIR")
	}
	return root, nil
}

// systemPrompt is init-agent's prompt template.
func systemPrompt(id string) string {
	return "# " + id + ": system prompt\n\n" +
		"You are the agent shipped by package " + id + ". State your role, the tools you may\n" +
		"call (see its capabilities.json) and what you must refuse.\n\n" +
		"This file is a governed prompt: it installs under governed_prompts/, its hash is\n" +
		"recorded, and the LLM gateway refuses it if it changes after install. Edit it\n" +
		"here, then run cp-pkg stage again to record the new hash.\n"
}

// writePackage writes a new package's files into out with its manifest
// m, checked as a manifest first (an id the schema let through but the
// manifest refuses fails here, before anything is written).
func writePackage(out string, m *manifest.Manifest, files map[string][]byte) error {
	mb, err := m.Marshal()
	if err != nil {
		return err
	}
	if _, err := manifest.Parse(mb); err != nil {
		return err
	}
	files[manifest.FileName] = mb
	return writeTree(out, files)
}

// writeTree writes files (slash paths relative to dir) into a new sibling
// directory and renames it to dir, which must not exist or be empty.
func writeTree(dir string, files map[string][]byte) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	parent := filepath.Dir(abs)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(abs)+".init-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	for p, b := range files {
		full := filepath.Join(tmp, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			return err
		}
	}
	if err := checkOutput(dir); err != nil { // nobody wrote there meanwhile
		return err
	}
	// os.Rename refuses to replace a directory: remove the empty one first
	// (os.Remove fails if anything appeared in it since).
	if err := os.Remove(abs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, abs); err != nil {
		return fmt.Errorf("moving the new tree into place: %w", err)
	}
	return atomicfile.SyncDir(parent)
}

func textInit(w io.Writer, result any) error {
	r := result.(initResult)
	_, err := fmt.Fprintf(w, "created %s (%s package %s, spec %s, framework %s)\n%s\nnext: %s\n",
		r.Output, r.PackageType, r.PackageID, r.SpecID, r.FrameworkID, strings.Join(r.Files, "\n"), r.Next)
	return err
}

// ---- stage ----

// stageTree reads --src/manifest.json, fills every asset's sha256, size and
// mode from the tree (with --declare, rewrites the asset list from the
// tree: files not listed are declared, listed files no longer in the tree
// are dropped, and the others keep their classification), writes the
// manifest back, runs preflight against the plane and writes
// <out>/<PKG-ID>.tar.gz (default out: <root>/_staging). Exit status: 1
// undeclared or missing files (without --declare), a package id that
// differs from the manifest's, a failed preflight; 2 usage (no plane, an
// --out that is or leads into the plane outside _staging/ and
// packages_store/); 3 a malformed manifest or a symlink or special file in
// the tree; 4 filesystem error.
func stageTree(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	id, src, out := req.String("package_id"), req.String("src"), req.String("out")
	switch {
	case id == "":
		return fail(cli.Usagef("stage needs a package id: cp-pkg stage PKG-ID --src DIR"))
	case src == "":
		return fail(cli.Usagef("stage needs --src DIR, the package source tree"))
	}
	root, err := planeRoot(c)
	if err != nil {
		e := cli.AsError(err)
		e.Message = "stage runs preflight against a plane: " + e.Message
		return fail(e)
	}
	gopts := gate.Options{AllowUnsigned: c.Env.AllowUnsigned, VerifyKey: c.Env.VerifyKey}
	if req.Bool("from_cpv2") {
		if req.Bool("declare") {
			return fail(cli.Usagef("--declare does not go with --from-cpv2: a CPv2 package is staged as its manifest declares it"))
		}
		files := req.String("files")
		if files == "" {
			files = src
		}
		res, err := cpv2.Stage(ctx, root, cpv2.StageOptions{PackageID: id, Manifest: filepath.Join(src, manifest.FileName), Files: files, Out: out, Gate: gopts})
		if err != nil {
			return fail(err)
		}
		c.Logf("staged CPv2 package %s %s: %s (%d files, %d bytes)", res.PackageID, res.Version, res.Archive, res.Files, res.Bytes)
		return cli.Outcome{Result: *res}
	}
	if req.Has("files") {
		return fail(cli.Usagef("--files goes with --from-cpv2"))
	}
	res, err := stage.Archive(ctx, root, stage.Options{PackageID: id, Src: src, Out: out, Declare: req.Bool("declare"), Gate: gopts})
	if err != nil {
		return fail(err)
	}
	c.Logf("staged %s %s: %s (%d files, %d bytes)", res.PackageID, res.Version, res.Archive, res.Files, res.Bytes)
	return cli.Outcome{Result: *res}
}

func textStage(w io.Writer, result any) error {
	if s, ok := result.(cpv2.Staged); ok {
		if _, err := fmt.Fprintf(w, "converted from CPv2 (manifest %s)\n", s.CPv2.Manifest); err != nil {
			return err
		}
		for _, n := range s.CPv2.Notes {
			if _, err := fmt.Fprintf(w, "  note: %s\n", n); err != nil {
				return err
			}
		}
		result = s.Result
	}
	r := result.(stage.Result)
	_, err := fmt.Fprintf(w, "staged %s %s: %s\n  archive  %s\n  manifest %s\n  %d files, %d bytes; preflight passed\n",
		r.PackageID, r.Version, r.Archive, r.ArchiveSHA256, r.ManifestHash, r.Files, r.Bytes)
	return err
}

// ---- sign ----

// sign reads --archive and writes <archive>.sig, a package signature by
// --key (or $CONTROL_PLANE_SIGNING_KEY), replacing any earlier one
// atomically (stage.Sign). Exit status: 1 the archive does not match its
// manifest (or the archive_sha256/manifest_hash piped from stage); 2 usage
// (no key, a bad key); 3 an unsafe archive or malformed manifest; 4
// filesystem error.
func sign(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	a := req.String("archive")
	if a == "" {
		return fail(cli.Usagef("sign needs --archive A"))
	}
	spec := req.String("key")
	if spec == "" {
		spec = c.Env.SigningKey
	}
	if spec == "" {
		return fail(cli.Usagef("sign needs a key: --key K or %s (a signer key or its path)", envSigningKey).
			WithHint("make one with cp-pkg keygen --name NAME"))
	}
	signer, err := keys.Signer(spec)
	if err != nil {
		return fail(err)
	}
	res, err := stage.Sign(a, signer, stage.Hashes{ArchiveSHA256: req.String("archive_sha256"), ManifestHash: req.String("manifest_hash")})
	if err != nil {
		return fail(err)
	}
	return cli.Outcome{Result: *res}
}

func textSign(w io.Writer, result any) error {
	r := result.(stage.SignResult)
	_, err := fmt.Fprintf(w, "signed %s %s by %s: %s\n", r.PackageID, r.Version, r.KeyName, r.Signature)
	return err
}

// ---- files ----

func fail(err error) cli.Outcome { return cli.Outcome{Err: err} }
