package pkgcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/stage"
	"github.com/control-plane/cp/pkg/manifest"
)

var initPromptPackVerb = &cli.Verb{Name: "init-prompt-pack", Schema: "cp-pkg.init-prompt-pack.request.json", Action: cli.ActionAuthor, Tier: cli.TierNone,
	Scope: writesScope("output"), Args: []string{"prompt_pack_id"}, Run: initPromptPack, Text: textInit, Flags: []cli.Flag{
		{Name: "package", Kind: cli.String, Field: "package_id", Usage: "package id (default: PKG-<name of the pack>)"},
		{Name: "spec", Kind: cli.String, Usage: "spec id"},
		{Name: "framework", Kind: cli.String, Usage: "framework id"},
		{Name: "output", Kind: cli.String, Usage: "directory to create (default: PRM-ID)"},
	}}

// initPromptPack creates --output (default: the pack id, in the working
// directory) holding a package of type prompt_pack with one pack
// (DESIGN.md §9): governed_prompts/<PRM-ID>/pack.json (version 0.1.0, one
// required string variable "input", the default mock provider and model,
// max_tokens 1024) and its template.txt, declared in a manifest under
// --spec/--framework (resolved as init does), so the tree stages, signs
// and installs as it is where that spec allows governed_prompts/**. Exit
// status: 1 --output is not empty, the spec is not registered, or the
// framework has several specs; 2 usage; 4 filesystem error.
func initPromptPack(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	id, pkgID, specID, fwID, out := req.String("prompt_pack_id"), req.String("package_id"), req.String("spec"), req.String("framework"), req.String("output")
	switch {
	case id == "":
		return fail(cli.Usagef("init-prompt-pack needs a prompt pack id: cp-pkg init-prompt-pack PRM-ID (--spec SPEC-ID | --framework FMWK-ID) [--output DIR]"))
	case specID == "" && fwID == "":
		return fail(cli.Usagef("init-prompt-pack needs --spec SPEC-ID or --framework FMWK-ID (a spec whose assets allow governed_prompts/**)"))
	}
	if pkgID == "" {
		pkgID = "PKG-" + strings.TrimPrefix(id, "PRM-")
	}
	if out == "" {
		out = id
	}
	if err := checkOutput(out); err != nil {
		return fail(err)
	}
	fwID, specID, unregistered, err := governance(c, fwID, specID, pkgID)
	if err != nil {
		return fail(err)
	}
	pack, err := json.MarshalIndent(map[string]any{
		"prompt_pack_id": id, "version": "0.1.0", "template": "template.txt",
		"description": "what this prompt is for",
		"variables": map[string]any{"type": "object", "required": []string{"input"}, "additionalProperties": false,
			"properties": map[string]any{"input": map[string]any{"type": "string", "minLength": 1, "maxLength": 100000}}},
		"providers": []string{"mock"}, "models": []string{"mock-1"}, "max_tokens": 1024,
	}, "", "  ")
	if err != nil {
		return fail(err)
	}
	pack = append(pack, '\n')
	if _, err := prompt.Parse(pack); err != nil {
		return fail(err) // a scaffold that would not stage: a bug the tests catch
	}
	dir := prompt.PackDir(id)
	files := map[string][]byte{
		dir + "/" + prompt.PackFile: pack,
		dir + "/template.txt": []byte("You are a careful assistant. Answer the request below; say so when you do not know.\n\n" +
			"Request:\n{{.input}}\n"),
	}
	m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, PackageID: pkgID, Version: "0.1.0",
		PackageType: prompt.PackageType, SpecID: specID, FrameworkID: fwID, PlaneID: "ho3",
		Dependencies: []string{}, Assets: []manifest.Asset{}}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		m.Assets = append(m.Assets, manifest.Asset{Path: p, SHA256: plane.SHA256(files[p]), Size: int64(len(files[p])), Classification: stage.Classify(p)})
	}
	if err := writePackage(out, m, files); err != nil {
		return fail(err)
	}
	next := fmt.Sprintf("edit %s and %s (raise the versions for an upgrade), then: cp-pkg stage %s --src %s | cp-pkg sign --key KEY | cp-install install",
		filepath.Join(out, filepath.FromSlash(dir+"/"+prompt.PackFile)), filepath.Join(out, filepath.FromSlash(dir+"/template.txt")), pkgID, out)
	if unregistered {
		next = fmt.Sprintf("register spec %s (framework %s, its assets covering governed_prompts/**) with cp-pkg register-spec %s --src DIR; %s",
			specID, fwID, specID, next)
	}
	res := initResult{PackageID: pkgID, PackageType: m.PackageType, Version: m.Version, SpecID: specID, FrameworkID: fwID, Output: out, Next: next}
	for p := range files {
		res.Files = append(res.Files, filepath.Join(out, filepath.FromSlash(p)))
	}
	slices.Sort(res.Files)
	return cli.Outcome{Result: res}
}
