package gate

import (
	"errors"
	"strings"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/manifest"
)

// Prompt packs (DESIGN.md §9) arrive only in a package of type prompt_pack,
// and such a package holds nothing but packs: each asset is
// governed_prompts/<PRM-ID>/<file>, and each pack directory holds a
// pack.json. The layout rule is judged in G0A (promptRule); preflight then
// parses each pack.json and its template (promptContent), so stage,
// preflight, cp-gate check and install refuse the same packages with
// PROMPT_PACK_INVALID before anything is written. A pack id registered to
// another package is an OWNERSHIP_CONFLICT (promptOwners).

// packDirOf says whether asset path p lies in a prompt pack's directory,
// governed_prompts/<name> with a name that folds like a pack id's (as a
// case-insensitive file system sees it), and returns that directory, its
// name and the file name below it ("" when p is not directly in it).
func packDirOf(p string) (dir, name, file string, ok bool) {
	rest, ok := strings.CutPrefix(archive.Key(p), archive.Key(prompt.Dir+"/"))
	if !ok || !strings.HasPrefix(rest, archive.Key("PRM-")) {
		return "", "", "", false
	}
	parts := strings.Split(p, "/")
	if len(parts) != 3 {
		return strings.Join(parts[:min(2, len(parts))], "/"), parts[min(1, len(parts)-1)], "", true
	}
	return parts[0] + "/" + parts[1], parts[1], parts[2], true
}

// promptRule adds PROMPT_PACK_INVALID to r for an asset of m that breaks
// the layout rule above. The kernel is judged by G0K, never here.
func promptRule(r *Result, m *manifest.Manifest) {
	if m.PackageType == "kernel" {
		return
	}
	isPack := m.PackageType == prompt.PackageType
	packs := map[string]bool{} // pack dir → has pack.json
	for _, a := range m.Assets {
		dir, name, file, inPack := packDirOf(a.Path)
		switch {
		case !isPack && inPack:
			r.fail(prompt.CodeInvalid, a.Path, "%s/ is a prompt pack's directory: only a package of type prompt_pack may hold it (this one is type %s)", dir, m.PackageType)
		case !isPack:
		case !inPack:
			r.fail(prompt.CodeInvalid, a.Path, "a prompt_pack package holds only prompt packs, governed_prompts/<PRM-ID>/<file>; %s is not in one", a.Path)
		case file == "":
			r.fail(prompt.CodeInvalid, a.Path, "a pack's files sit directly in its directory governed_prompts/<PRM-ID>/; %s does not", a.Path)
		case !prompt.ValidID(name) || !strings.HasPrefix(a.Path, prompt.Dir+"/"):
			r.fail(prompt.CodeInvalid, a.Path, "%s is not a prompt pack directory: its name must be the pack's id (^PRM-[A-Z0-9-]+$)", dir)
		default:
			packs[dir] = packs[dir] || file == prompt.PackFile
		}
	}
	if !isPack {
		return
	}
	if len(m.Assets) == 0 {
		r.fail(prompt.CodeInvalid, m.PackageID, "a prompt_pack package holds at least one pack, governed_prompts/<PRM-ID>/pack.json and its template")
	}
	for dir, has := range packs {
		if !has {
			r.fail(prompt.CodeInvalid, dir+"/"+prompt.PackFile, "prompt pack %s has no %s", dir, prompt.PackFile)
		}
	}
}

// Pack is a prompt pack of a package, as the gates judged it: its id, its
// template's file name and its digest (prompt.Digest), from the asset
// hashes G0A checked.
type Pack struct {
	ID, Version, Template, SHA256 string
}

// promptContent parses the pack.json and the template of every pack of a
// prompt_pack package whose layout G0A passed, adding PROMPT_PACK_INVALID
// to g0a for each that breaks the rules of prompt.Parse and
// prompt.ParseTemplate, names another id than its directory, or names a
// template the package does not ship. The bytes judged are read from the
// source again and must hash to what G0A judged.
func promptContent(g0a *Result, m *manifest.Manifest, src Source, files map[string]File) error {
	if m.PackageType != prompt.PackageType || !g0a.Passed {
		return nil
	}
	_, err := PromptPacks(m, func(paths []string) (map[string][]byte, error) {
		want := map[string]bool{}
		for _, p := range paths {
			want[p] = true
		}
		got, err := sourceBytes(src, want, prompt.MaxTemplateBytes)
		if err != nil {
			return nil, err
		}
		for p, b := range got {
			if plane.SHA256(b) != files[p].SHA256 {
				delete(got, p) // reported unreadable: changed while checked
			}
		}
		return got, nil
	}, func(path, format string, args ...any) { g0a.fail(prompt.CodeInvalid, path, format, args...) })
	if err != nil {
		return err
	}
	g0a.done("")
	return nil
}

// PromptPacks returns the packs of prompt_pack package m whose files
// read gives (by path: read returns what it could read of the paths asked)
// and that pass every rule; fail is called for each finding (path, message).
// Install uses it to build the packs' registry rows from the extracted
// files.
func PromptPacks(m *manifest.Manifest, read func(paths []string) (map[string][]byte, error), fail func(path, format string, args ...any)) ([]Pack, error) {
	assets := map[string]manifest.Asset{}
	var packFiles []string
	for _, a := range m.Assets {
		assets[a.Path] = a
		if dir, name, file, ok := packDirOf(a.Path); ok && file == prompt.PackFile && dir == prompt.PackDir(name) {
			packFiles = append(packFiles, a.Path)
		}
	}
	got, err := read(packFiles)
	if err != nil {
		return nil, err
	}
	type pending struct {
		dir, packPath, tmplPath string
		sp                      *prompt.Spec
	}
	var ps []pending
	var tmpls []string
	for _, pp := range packFiles {
		dir := pp[:len(pp)-len(prompt.PackFile)-1]
		b, ok := got[pp]
		if !ok {
			fail(pp, "could not be read back from the package to be checked")
			continue
		}
		sp, err := prompt.Parse(b)
		if err == nil {
			err = sp.CheckDir(dir)
		}
		if err != nil {
			var pe *prompt.Error
			if !errors.As(err, &pe) {
				return nil, err
			}
			fail(pp, "%s", pe.Msg)
			continue
		}
		tp := dir + "/" + sp.Template
		if _, ok := assets[tp]; !ok {
			fail(pp, "names template %s, which the package does not ship (%s is not declared)", sp.Template, tp)
			continue
		}
		ps = append(ps, pending{dir: dir, packPath: pp, tmplPath: tp, sp: sp})
		tmpls = append(tmpls, tp)
	}
	if len(tmpls) == 0 {
		return nil, nil
	}
	tgot, err := read(tmpls)
	if err != nil {
		return nil, err
	}
	var out []Pack
	for _, p := range ps {
		b, ok := tgot[p.tmplPath]
		if !ok {
			fail(p.tmplPath, "could not be read back from the package to be checked")
			continue
		}
		if _, err := prompt.ParseTemplate(p.sp.Template, b); err != nil {
			var pe *prompt.Error
			if !errors.As(err, &pe) {
				return nil, err
			}
			fail(p.tmplPath, "%s", pe.Msg)
			continue
		}
		d, err := prompt.Digest(assets[p.packPath].SHA256, p.sp.Template, assets[p.tmplPath].SHA256)
		if err != nil {
			return nil, err
		}
		out = append(out, Pack{ID: p.sp.PromptPackID, Version: p.sp.Version, Template: p.sp.Template, SHA256: d})
	}
	return out, nil
}

// promptOwners adds OWNERSHIP_CONFLICT to r for each pack of m whose id
// registries/prompts_registry.csv registers to another package.
func promptOwners(r *Result, root string, m *manifest.Manifest) error {
	ids := map[string]string{}
	for _, a := range m.Assets {
		if _, name, file, ok := packDirOf(a.Path); ok && file == prompt.PackFile {
			ids[archive.Key(name)] = a.Path
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := registry.Read(root, registry.Prompts)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if p, ok := ids[archive.Key(row["prompt_pack_id"])]; ok && row["package_id"] != m.PackageID {
			r.fail("OWNERSHIP_CONFLICT", p, "prompt pack %s is registered to package %s; a pack id belongs to one package", row["prompt_pack_id"], row["package_id"])
		}
	}
	return nil
}
