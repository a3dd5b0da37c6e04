package pkgcmd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/control-plane/cp/internal/atomicfile"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/manifest"
	"github.com/control-plane/cp/pkg/pkgsig"
)

// The author verbs: init and init-agent lay out a package source tree,
// stage turns a tree into a deterministic archive that passed preflight,
// sign writes the archive's signature. They write only what they are told
// to (the tree, the archive, the .sig), never a ledger or a registry.

var (
	initVerb = &cli.Verb{Name: "init", Schema: "cp-pkg.init.request.json", Action: cli.ActionAuthor, Tier: cli.TierNone, Args: []string{"package_id"},
		Run:  func(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome { return initTree(c, req, false) },
		Text: textInit, Flags: initFlags}
	initAgentVerb = &cli.Verb{Name: "init-agent", Schema: "cp-pkg.init-agent.request.json", Action: cli.ActionAuthor, Tier: cli.TierNone, Args: []string{"package_id"},
		Run:  func(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome { return initTree(c, req, true) },
		Text: textInit, Flags: initFlags}
	stageVerb = &cli.Verb{Name: "stage", Schema: "cp-pkg.stage.request.json", Action: cli.ActionAuthor, Tier: cli.TierHO3, Args: []string{"package_id"},
		Run: stage, Text: textStage, FailedText: preflightText, Flags: []cli.Flag{
			{Name: "src", Kind: cli.String, Usage: "package source tree"},
			{Name: "out", Kind: cli.String, Usage: "directory for the archive"},
			{Name: "declare", Kind: cli.Bool, Usage: "rewrite the asset list from the tree"},
		}}
	signVerb = &cli.Verb{Name: "sign", Schema: "cp-pkg.sign.request.json", Action: cli.ActionSign, Tier: cli.TierHO3, Run: sign, Text: textSign, Flags: []cli.Flag{
		{Name: "archive", Kind: cli.String, Usage: "package archive"},
		{Name: "key", Kind: cli.String, Usage: "signer key or path"},
	}}
)

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
	fwID := req.String("framework")
	unregistered := false
	if fwID == "" {
		var err error
		if fwID, err = specFramework(c, specID); err != nil {
			return fail(err)
		}
	}
	if specID == "" {
		var err error
		if specID, unregistered, err = frameworkSpec(c, fwID, id); err != nil {
			return fail(err)
		}
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
			class := classify(p)
			m.Assets = append(m.Assets, manifest.Asset{Path: p, SHA256: plane.SHA256(files[p]), Size: int64(len(files[p])), Classification: class})
		}
		next = fmt.Sprintf("edit %s and %s, then: cp-pkg stage %s --src %s",
			filepath.Join(out, filepath.FromSlash(promptPath)), filepath.Join(out, filepath.FromSlash(capPath)), id, out)
	}
	if unregistered {
		next = fmt.Sprintf("register spec %s (framework %s, its assets covering this package's paths) with cp-pkg register-spec %s --src DIR; %s",
			specID, fwID, specID, next)
	}
	mb, err := m.Marshal()
	if err != nil {
		return fail(err)
	}
	if _, err := manifest.Parse(mb); err != nil {
		return fail(err) // an id the schema let through but the manifest refuses
	}
	files[manifest.FileName] = mb
	if err := writeTree(out, files); err != nil {
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

// specFramework looks up the framework of a registered spec in the plane's
// specs registry.
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
	rows, err := registry.Read(root, registry.Specs)
	if err != nil {
		return "", err
	}
	for _, r := range rows {
		if r["spec_id"] != specID {
			continue
		}
		s, err := registry.ParseSpec(r)
		if err != nil {
			return "", err
		}
		return s.FrameworkID, nil
	}
	return "", cli.Errorf(cli.ExitDenied, "SPEC_NOT_FOUND", "%s is not in the specs registry of the plane at %s", specID, root).
		WithHint("register it with cp-pkg register-spec %s --src DIR, or give --framework FMWK-ID", specID)
}

// frameworkSpec chooses the spec of a package made with --framework and no
// --spec: the one active spec of the framework in the plane's specs
// registry; with none (or no plane to look in), SPEC-<name of the package>,
// which the caller reports as still to register (unregistered true).
// Several active specs are ambiguous: the author must choose.
func frameworkSpec(c *cli.Call, fwID, pkgID string) (specID string, unregistered bool, err error) {
	derived := "SPEC-" + strings.TrimPrefix(pkgID, "PKG-")
	root, err := planeRoot(c)
	if err != nil {
		return derived, true, nil // no plane: nothing registered to choose from
	}
	rows, err := registry.Read(root, registry.Specs)
	if err != nil {
		return "", false, err
	}
	var found []string
	for _, r := range rows {
		if r["framework_id"] == fwID && r["status"] == registry.StatusActive {
			found = append(found, r["spec_id"])
		}
	}
	switch len(found) {
	case 0:
		return derived, true, nil
	case 1:
		return found[0], false, nil
	}
	slices.Sort(found)
	return "", false, cli.Errorf(cli.ExitDenied, "SPEC_AMBIGUOUS", "framework %s has %d active specs (%s); choose one with --spec", fwID, len(found), strings.Join(found, ", ")).
		WithDetails(map[string]any{"specs": found})
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

// stageResult is what stage answers.
type stageResult struct {
	PackageID        string       `json:"package_id"`
	Version          string       `json:"version"`
	Archive          string       `json:"archive"`
	ArchiveSHA256    string       `json:"archive_sha256"`
	ManifestHash     string       `json:"manifest_hash"`
	Files            int          `json:"files"`
	Bytes            int64        `json:"bytes"`
	Declared         []string     `json:"declared"`
	Dropped          []string     `json:"dropped"`
	RemovedSignature string       `json:"removed_signature,omitempty"`
	Preflight        *gate.Report `json:"preflight"`
}

// stage reads --src/manifest.json, fills every asset's sha256, size and
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
func stage(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
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
	if out == "" {
		out = filepath.Join(root, "_staging")
	}
	if err := checkOutside(src, out); err != nil {
		return fail(err)
	}
	if out, err = checkOutOfPlane(root, out); err != nil {
		return fail(err)
	}
	if fi, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return fail(cli.Usagef("--src %s does not exist", src))
	} else if err != nil {
		return fail(err)
	} else if !fi.IsDir() {
		return fail(cli.Usagef("--src %s is not a directory", src))
	}

	srcRoot, err := os.OpenRoot(src)
	if err != nil {
		return fail(err)
	}
	defer srcRoot.Close()
	orig, err := regfile.ReadIn(srcRoot, manifest.FileName)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(cli.Invalidf("MANIFEST_INVALID", "%s has no %s", src, manifest.FileName).
			WithHint("create the tree with cp-pkg init %s --spec SPEC-ID --output %s", id, src))
	}
	if err != nil {
		return fail(err)
	}
	doc, err := looseManifest(orig)
	if err != nil {
		return fail(err)
	}
	if got, ok := doc["package_id"].(string); ok && got != id {
		return fail(cli.Errorf(cli.ExitDenied, "PACKAGE_ID_MISMATCH", "%s declares package %s, not %s", filepath.Join(src, manifest.FileName), got, id).
			WithDetails(map[string]any{"manifest_package_id": got, "package_id": id}))
	}

	// One hashing pass over the tree serves the manifest and preflight.
	tree, err := gate.ReadTree(src)
	if err != nil {
		return fail(err)
	}
	onDisk := make([]string, 0, len(tree.Files))
	for p := range tree.Files {
		onDisk = append(onDisk, p)
	}
	slices.Sort(onDisk)
	var dropped []string
	if req.Bool("declare") {
		if dropped, err = dropMissing(tree, doc); err != nil {
			return fail(err)
		}
	}
	declared, err := fillAssets(tree, doc)
	if err != nil {
		return fail(err)
	}
	var undeclared []string
	for _, p := range onDisk {
		if p != manifest.FileName && !declared[p] {
			undeclared = append(undeclared, p)
		}
	}
	if len(undeclared) > 0 && !req.Bool("declare") {
		return fail(cli.Errorf(cli.ExitDenied, "UNDECLARED", "%d file(s) in %s not declared in %s: %s",
			len(undeclared), src, manifest.FileName, strings.Join(undeclared, ", ")).
			WithHint("declare them in %s, or run again with --declare", filepath.Join(src, manifest.FileName)).
			WithDetails(map[string]any{"undeclared": undeclared}))
	}
	if len(undeclared) > 0 {
		if err := declare(tree, doc, undeclared); err != nil {
			return fail(err)
		}
	}

	filled, err := json.Marshal(doc)
	if err != nil {
		return fail(err)
	}
	m, err := manifest.Parse(filled)
	if err != nil {
		return fail(err)
	}
	mb, err := m.Marshal()
	if err != nil {
		return fail(err)
	}
	mhash, err := m.Hash()
	if err != nil {
		return fail(err)
	}
	if !bytes.Equal(mb, orig) {
		if err := atomicfile.Write(filepath.Join(src, manifest.FileName), mb, 0o644); err != nil {
			return fail(err)
		}
	}

	tree.Manifest = mb
	rep, err := gate.Preflight(ctx, root, gate.Source{Tree: tree}, gate.Options{AllowUnsigned: c.Env.AllowUnsigned, VerifyKey: c.Env.VerifyKey})
	if err != nil {
		return fail(err)
	}
	if !rep.Passed {
		return fail(preflightFailed(rep))
	}

	res := stageResult{PackageID: m.PackageID, Version: m.Version, ManifestHash: mhash,
		Archive: filepath.Join(out, id+".tar.gz"), Files: len(m.Assets) + 1, Declared: undeclared, Dropped: dropped, Preflight: rep}
	if res.Declared == nil {
		res.Declared = []string{}
	}
	if res.Dropped == nil {
		res.Dropped = []string{}
	}
	if err := writeArchive(src, m, mb, &res); err != nil {
		return fail(err)
	}
	c.Logf("staged %s %s: %s (%d files, %d bytes)", m.PackageID, m.Version, res.Archive, res.Files, res.Bytes)
	return cli.Outcome{Result: res}
}

// checkOutside refuses an --out inside --src: the archive would land in the
// tree it packs, and be an undeclared file next time.
func checkOutside(src, out string) error {
	as, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	ao, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(as, ao); err == nil && filepath.IsLocal(rel) {
		return cli.Usagef("--out %s is inside --src %s; the archive would become part of the package", out, src)
	}
	return nil
}

// checkOutOfPlane refuses an --out inside the plane other than _staging/
// or packages_store/: an archive under a governed root would be a file no
// package owns, and installed/ is immutable. It judges where --out really
// is (its symlinks resolved, as far as it exists), refuses an --out that
// reaches into the plane through a symlink, and returns the resolved
// directory (out itself when no symlink is involved), which the archive is
// then written to: a symlink changed after the check is not followed again.
func checkOutOfPlane(root, out string) (string, error) {
	ao, err := filepath.Abs(out)
	if err != nil {
		return "", err
	}
	real, err := realPath(out)
	if err != nil {
		return "", err
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	realRoot, err := filepath.EvalSymlinks(absRoot)
	if err != nil {
		return "", err
	}
	write := out
	if real != ao {
		write = real // a symlink on the way: write where it was judged
	}
	rel, err := filepath.Rel(realRoot, real)
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return write, nil // outside the plane
	}
	lexical := func(base string) string { r, _ := filepath.Rel(base, ao); return r }
	if lexical(absRoot) != rel && lexical(realRoot) != rel {
		return "", cli.Usagef("--out %s leads into the plane (%s) through a symlink; give the directory itself", out, filepath.ToSlash(rel))
	}
	top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	if top == "_staging" || top == "packages_store" {
		return write, nil
	}
	return "", cli.Usagef("--out %s is inside the plane; archives go to _staging/ or packages_store/, or outside the plane", out)
}

// realPath returns where the OS takes path p: each existing component
// resolved in turn, a ".." applied after the symlinks before it (as the
// OS does, and filepath.Abs does not), and the part that does not exist
// yet (stage creates it) joined as written.
func realPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		p = wd + string(filepath.Separator) + p
	}
	cur, err := filepath.EvalSymlinks(filepath.VolumeName(p) + string(filepath.Separator))
	if err != nil {
		return "", err
	}
	elems := strings.Split(filepath.ToSlash(p), "/")
	for i, e := range elems {
		switch e {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur is real: its parent is where ".." goes
			continue
		}
		next := filepath.Join(cur, e)
		r, err := filepath.EvalSymlinks(next)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{next}, elems[i+1:]...)...), nil
		} else if err != nil {
			return "", err
		}
		cur = r
	}
	return cur, nil
}

// looseManifest decodes manifest.json before its hashes are filled in: one
// JSON object, decoded strictly, not yet checked against the schema.
func looseManifest(b []byte) (map[string]any, error) {
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, &manifest.Error{Message: fmt.Sprintf("not valid JSON: %v", err)}
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, &manifest.Error{Message: "not a JSON object"}
	}
	return doc, nil
}

// fillAssets sets each declared asset's sha256, size and mode from the
// file on disk (and a missing classification from its top directory), sets
// schema_version 1.3 (the version whose assets carry a mode), and returns
// the declared paths. A declared file that is not in the tree is MISSING.
// Entries it cannot read (not an object, no string path) are left for
// manifest.Parse to report.
func fillAssets(tree *gate.Tree, doc map[string]any) (map[string]bool, error) {
	declared := map[string]bool{}
	assets, ok := doc["assets"].([]any)
	if !ok {
		return declared, nil
	}
	var missing []string
	for i, x := range assets {
		a, ok := x.(map[string]any)
		if !ok {
			continue
		}
		p, ok := a["path"].(string)
		if !ok {
			continue
		}
		if !fs.ValidPath(p) || p == "." || strings.Contains(p, `\`) {
			return nil, &manifest.Error{Path: fmt.Sprintf("/assets/%d/path", i), Message: fmt.Sprintf("%q is not a clean relative path", p)}
		}
		declared[p] = true
		f, present := tree.Files[p]
		if !present {
			missing = append(missing, p)
			continue
		}
		a["sha256"], a["size"], a["mode"] = f.SHA256, json.Number(strconv.FormatInt(f.Size, 10)), manifest.ModeFor(f.Mode)
		if _, ok := a["classification"]; !ok {
			a["classification"] = classify(p)
		}
	}
	if len(missing) > 0 {
		return nil, cli.Errorf(cli.ExitDenied, "MISSING", "%d declared file(s) not in the tree: %s", len(missing), strings.Join(missing, ", ")).
			WithHint("add the files, or run again with --declare to drop them from manifest.json").
			WithDetails(map[string]any{"missing": missing})
	}
	doc["schema_version"] = manifest.SchemaVersionModes
	return declared, nil
}

// dropMissing removes from the manifest's assets (for --declare) every
// entry whose path is a string naming no file of the tree, and returns
// those paths, sorted. Entries it cannot read are left for manifest.Parse.
func dropMissing(tree *gate.Tree, doc map[string]any) ([]string, error) {
	assets, ok := doc["assets"].([]any)
	if !ok {
		return nil, nil
	}
	kept := assets[:0:0]
	var dropped []string
	for _, x := range assets {
		if a, ok := x.(map[string]any); ok {
			if p, ok := a["path"].(string); ok {
				if _, present := tree.Files[p]; !present {
					dropped = append(dropped, p)
					continue
				}
			}
		}
		kept = append(kept, x)
	}
	doc["assets"] = kept
	slices.Sort(dropped)
	return dropped, nil
}

// declare appends the undeclared files (sorted) to the manifest's assets.
func declare(tree *gate.Tree, doc map[string]any, paths []string) error {
	assets, ok := doc["assets"].([]any)
	if !ok {
		if _, present := doc["assets"]; present {
			return &manifest.Error{Path: "/assets", Message: "not an array"}
		}
		assets = []any{}
	}
	for _, p := range paths {
		f := tree.Files[p]
		assets = append(assets, map[string]any{"path": p, "sha256": f.SHA256,
			"size": json.Number(strconv.FormatInt(f.Size, 10)), "classification": classify(p), "mode": manifest.ModeFor(f.Mode)})
	}
	doc["assets"] = assets
	return nil
}

// classByRoot maps a governed root to the classification of its files;
// anything else is documentation.
var classByRoot = map[string]string{
	"frameworks": "framework", "specs": "spec", "schemas": "schema", "policies": "policy", "lib": "library",
	"scripts": "script", "modules": "module", "governed_prompts": "prompt", "config": "config",
}

// classify guesses an asset's classification from its top directory.
func classify(p string) string {
	top, _, ok := strings.Cut(p, "/")
	if c := classByRoot[top]; ok && c != "" {
		return c
	}
	return "doc"
}

// preflightFailed is the negative verdict of a failed preflight: the
// report goes out as the envelope's result, the failing gates and codes in
// the error's details.
func preflightFailed(rep *gate.Report) *cli.Error {
	gates, codes := []string{}, []string{}
	for _, r := range rep.Results {
		if r.Passed {
			continue
		}
		gates = append(gates, r.Gate)
		for _, f := range r.Errors {
			codes = append(codes, f.Code)
		}
	}
	e := cli.Errorf(cli.ExitDenied, "PREFLIGHT_FAILED", "preflight of %s %s failed: %s", rep.PackageID, rep.Version, firstFailure(rep)).
		WithDetails(map[string]any{"failed_gates": gates, "codes": codes}).
		WithHint("no archive was written; .result.results holds every gate's findings")
	e.Result = rep
	return e
}

// writeArchive writes <res.Archive> from src through a temporary file in
// the same directory: archive.WriteContents, fsync, a check that the bytes
// written are what the manifest declares, then rename. A .sig left beside an older, different archive is
// removed: it can no longer verify.
func writeArchive(src string, m *manifest.Manifest, mb []byte, res *stageResult) error {
	dir := filepath.Dir(res.Archive)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	paths := []string{manifest.FileName}
	for _, a := range m.Assets {
		paths = append(paths, a.Path)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(res.Archive)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	// WriteContents describes the archive from the bytes it wrote (a file
	// changed since it was hashed shows up here), so the check against the
	// manifest needs no second read.
	contents, err := archive.WriteContents(tmp, src, paths)
	if err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	fi, err := tmp.Stat()
	if err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := matchManifest(contents, m, mb); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	res.ArchiveSHA256 = "sha256:" + contents.ArchiveSHA256
	res.Bytes = fi.Size()

	sig := res.Archive + ".sig"
	stale := false
	if _, err := os.Stat(sig); err == nil {
		old, err := fileSHA256(res.Archive)
		stale = err != nil || old != res.ArchiveSHA256
	}
	if err := os.Rename(tmp.Name(), res.Archive); err != nil {
		return err
	}
	if stale {
		if err := os.Remove(sig); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		res.RemovedSignature = sig
	}
	return atomicfile.SyncDir(dir)
}

// matchManifest checks that an archive holds exactly manifest bytes mb and
// the assets m declares, with their hashes and sizes: the tree did not
// change between hashing and archiving.
func matchManifest(c *archive.Contents, m *manifest.Manifest, mb []byte) error {
	if !bytes.Equal(c.Manifest, mb) {
		return cli.Errorf(cli.ExitDenied, "HASH_MISMATCH", "manifest.json changed while the archive was written")
	}
	want := map[string]manifest.Asset{}
	for _, a := range m.Assets {
		want[a.Path] = a
	}
	for _, f := range c.Files {
		if f.Path == manifest.FileName {
			continue
		}
		a, ok := want[f.Path]
		if !ok {
			return cli.Errorf(cli.ExitDenied, "UNDECLARED", "%s is in the archive but not declared", f.Path)
		}
		if a.SHA256 != "sha256:"+f.SHA256 || a.Size != f.Size {
			return cli.Errorf(cli.ExitDenied, "HASH_MISMATCH", "%s changed while the archive was written (or does not match its declaration)", f.Path)
		}
		delete(want, f.Path)
	}
	for p := range want {
		return cli.Errorf(cli.ExitDenied, "MISSING", "%s is declared but not in the archive", p)
	}
	return nil
}

func textStage(w io.Writer, result any) error {
	r := result.(stageResult)
	_, err := fmt.Fprintf(w, "staged %s %s: %s\n  archive  %s\n  manifest %s\n  %d files, %d bytes; preflight passed\n",
		r.PackageID, r.Version, r.Archive, r.ArchiveSHA256, r.ManifestHash, r.Files, r.Bytes)
	return err
}

// ---- sign ----

// signResult is what sign answers: the signature file and the statement
// it signs.
type signResult struct {
	Signature     string `json:"signature"`
	Archive       string `json:"archive"`
	KeyName       string `json:"key_name"`
	KeyHash       string `json:"key_hash"`
	Purpose       string `json:"purpose"`
	PackageID     string `json:"package_id"`
	Version       string `json:"version"`
	ManifestHash  string `json:"manifest_hash"`
	ArchiveSHA256 string `json:"archive_sha256"`
}

// sign reads --archive (checked as the installer checks it, and its files
// against its manifest) and writes <archive>.sig, a package signature by
// --key (or $CONTROL_PLANE_SIGNING_KEY), replacing any earlier one
// atomically. Exit status: 1 the archive does not match its manifest (or
// the archive_sha256/manifest_hash piped from stage); 2 usage (no key, a
// bad key); 3 an unsafe archive or malformed manifest; 4 filesystem error.
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
	f, err := regfile.Open(a)
	if errors.Is(err, fs.ErrNotExist) {
		return fail(cli.Usagef("--archive %s does not exist", a))
	}
	if err != nil {
		return fail(err)
	}
	contents, err := archive.Scan(f, archive.DefaultLimits())
	f.Close()
	if err != nil {
		return fail(err)
	}
	m, err := manifest.Parse(contents.Manifest)
	if err != nil {
		return fail(err)
	}
	mhash, err := m.Hash()
	if err != nil {
		return fail(err)
	}
	if err := matchManifest(contents, m, contents.Manifest); err != nil {
		e := cli.AsError(err)
		e.Message = a + ": " + e.Message
		return fail(e)
	}
	ahash := "sha256:" + contents.ArchiveSHA256
	for field, got := range map[string]string{"archive_sha256": ahash, "manifest_hash": mhash} {
		if want := req.String(field); want != "" && want != got {
			return fail(cli.Errorf(cli.ExitDenied, "HASH_MISMATCH", "%s has %s %s, not %s as requested (changed since it was staged?)", a, field, got, want))
		}
	}
	st := pkgsig.Statement{PackageID: m.PackageID, Version: m.Version, ManifestHash: mhash, ArchiveHash: ahash}
	sig, err := pkgsig.Sign(st, signer)
	if err != nil {
		return fail(err)
	}
	if err := atomicfile.Write(filepath.Join(filepath.Dir(a), filepath.Base(a)+".sig"), sig, 0o644); err != nil {
		return fail(err)
	}
	return cli.Outcome{Result: signResult{Signature: a + ".sig", Archive: a, KeyName: signer.Name(),
		KeyHash: fmt.Sprintf("%08x", signer.KeyHash()), Purpose: pkgsig.Purpose, PackageID: m.PackageID,
		Version: m.Version, ManifestHash: mhash, ArchiveSHA256: ahash}}
}

func textSign(w io.Writer, result any) error {
	r := result.(signResult)
	_, err := fmt.Fprintf(w, "signed %s %s by %s: %s\n", r.PackageID, r.Version, r.KeyName, r.Signature)
	return err
}

// ---- files ----

// fileSHA256 returns the "sha256:"-prefixed hash of a file's bytes.
func fileSHA256(p string) (string, error) {
	f, err := regfile.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func fail(err error) cli.Outcome { return cli.Outcome{Err: err} }
