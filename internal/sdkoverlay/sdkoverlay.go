// Package sdkoverlay writes the build overlay (go build -overlay=FILE) that
// compiles the LLM SDKs and yaml/v4 with the patched files kept in
// third_party/overlay (third_party/README.md): their package init records
// registrations instead of building registries, so a process that links them
// starts ~2.5 ms sooner; the SDKs' generated registration inits are renamed
// and deferred to the first decode (deferinit.go), and x/text's,
// invopop/jsonschema's and a few regexps' init work is done on first use.
//
// The go command refuses an overlay entry for a file under GOMODCACHE, so
// the overlay does not name the module cache's files: it replaces go.mod
// with a copy that adds `replace MODULE => ROOT/build/sdk/MODULE@VERSION`, and
// maps every file of that directory, which does not exist on disk, to the
// module cache's file (nothing is copied), or, for a patched file, to its
// patched version. It fails, and writes nothing, when go.mod requires
// another version than the patch's, when an upstream file's sha256 is not
// the one the patch was made against, or when go.mod already replaces the
// module, or when the module cache's copy of a replaced module does not
// hash to go.sum's h1 line for it (the go command checks no go.sum line for
// a module replaced by a directory): a build is patched as recorded or not
// at all. A module-cache file changed after generation is not seen until
// the next (the Makefile generates before every go command).
//
// A plain `go build` (no -overlay) compiles the unpatched SDKs: slower to
// start, the same behaviour.
package sdkoverlay

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
)

// Paths relative to the module root.
const (
	// PatchDir holds the patched files, as PatchDir/MODULE@VERSION/PATH.
	PatchDir = "third_party/overlay"
	// ManifestFile lists them with the upstream file's sha256.
	ManifestFile = PatchDir + "/PATCHES"
	// OverlayFile is what Generate writes (gitignored), with the go.mod it
	// substitutes in build/sdk, and the replaced modules' directories
	// (virtual: only in the overlay) under build/sdk too.
	OverlayFile = "build/overlay.json"
)

// Patch is one line of the manifest: the file Path of Module at Version is
// replaced by PatchDir/Module@Version/Path; Upstream is the sha256 (hex) of
// the file it replaces.
type Patch struct {
	Module, Version, Path, Upstream string
}

// ParseManifest reads the manifest: one patch a line, "MODULE@VERSION PATH
// SHA256"; blank lines and lines starting with # are ignored. Every field
// is checked (a module path, a semantic version, a clean relative file
// path, 64 lower-case hex digits); a file listed twice is an error.
func ParseManifest(data []byte) ([]Patch, error) {
	var out []Patch
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("manifest line %d: want \"MODULE@VERSION PATH SHA256\", got %d fields", n, len(f))
		}
		mod, ver, ok := strings.Cut(f[0], "@")
		if !ok {
			return nil, fmt.Errorf("manifest line %d: %q has no @VERSION", n, f[0])
		}
		if err := module.Check(mod, ver); err != nil {
			return nil, fmt.Errorf("manifest line %d: %v", n, err)
		}
		if semver.Canonical(ver) != ver {
			return nil, fmt.Errorf("manifest line %d: version %q is not canonical", n, ver)
		}
		p := f[1]
		if !fs.ValidPath(p) || p == "." || strings.Contains(p, `\`) {
			return nil, fmt.Errorf("manifest line %d: %q is not a clean relative path", n, p)
		}
		if err := module.CheckFilePath(p); err != nil {
			return nil, fmt.Errorf("manifest line %d: %v", n, err)
		}
		if len(f[2]) != 64 || strings.ToLower(f[2]) != f[2] {
			return nil, fmt.Errorf("manifest line %d: %q is not a sha256 in lower-case hex", n, f[2])
		}
		if _, err := hex.DecodeString(f[2]); err != nil {
			return nil, fmt.Errorf("manifest line %d: %q is not a sha256 in lower-case hex", n, f[2])
		}
		key := mod + " " + p
		if seen[key] {
			return nil, fmt.Errorf("manifest line %d: %s %s is listed twice", n, mod, p)
		}
		seen[key] = true
		out = append(out, Patch{Module: mod, Version: ver, Path: p, Upstream: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("manifest: %v", err)
	}
	return out, nil
}

// Module is what the build list says of a module (go list -m -json).
type Module struct {
	Path, Version, Dir string
	Replace            *Module
}

// Generate reads root's manifest, checks it against the build list and
// the module cache, and writes root/build/overlay.json (and the go.mod it
// points to); it returns the overlay's absolute path. On an error it
// removes any overlay.json a previous run left, so that a build told to
// use it fails rather than compiling the unpatched SDKs unnoticed.
func Generate(root string) (string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	out := filepath.Join(root, "build")
	path, err := GenerateTo(root, out)
	if err != nil {
		os.Remove(filepath.Join(out, "overlay.json"))
	}
	return path, err
}

// GenerateTo is Generate writing outDir/overlay.json, with the replaced
// modules' (virtual) directories under outDir/sdk.
func GenerateTo(root, outDir string) (string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	if outDir, err = filepath.Abs(outDir); err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(root, ManifestFile))
	if err != nil {
		return "", err
	}
	patches, err := ParseManifest(data)
	if err != nil {
		return "", err
	}
	var paths []string
	for _, p := range patches {
		if !slices.Contains(paths, p.Module) {
			paths = append(paths, p.Module)
		}
	}
	mods, err := listModules(root, paths)
	if err != nil {
		return "", err
	}
	var missing []string
	for _, m := range mods {
		if m.Dir == "" && m.Replace == nil && m.Version != "" {
			missing = append(missing, m.Path+"@"+m.Version)
		}
	}
	if len(missing) > 0 { // a fresh clone: fetch them as go build would
		if err := goCommand(root, append([]string{"mod", "download"}, missing...)...); err != nil {
			return "", err
		}
		if mods, err = listModules(root, paths); err != nil {
			return "", err
		}
	}
	return write(root, outDir, patches, mods)
}

// Off is the value of CP_SDK_OVERLAY that makes BuildArgs build without
// the overlay (to measure the unpatched SDKs).
const Off = "off"

// BuildArgs is what a test that builds binaries (go build) of root's
// commands adds to the command: the flag naming a freshly generated
// overlay, and an environment (os.Environ with any -overlay removed from
// GOFLAGS). With CP_SDK_OVERLAY=off it returns no flag: the unpatched SDKs.
func BuildArgs(root string) (flags, env []string, err error) {
	env = environ()
	if os.Getenv("CP_SDK_OVERLAY") == Off {
		return nil, env, nil
	}
	path, err := Generate(root)
	if err != nil {
		return nil, nil, err
	}
	return []string{"-overlay=" + path}, env, nil
}

// listModules asks the go command for the modules' versions and
// directories, without any overlay (it may replace go.mod).
func listModules(root string, paths []string) (map[string]Module, error) {
	mods := map[string]Module{}
	if len(paths) == 0 {
		return mods, nil
	}
	var out bytes.Buffer
	if err := goCommandOut(&out, root, append([]string{"list", "-m", "-json"}, paths...)...); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(&out)
	for {
		var m Module
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list -m: %v", err)
		}
		mods[m.Path] = m
	}
	return mods, nil
}

func goCommand(root string, args ...string) error { return goCommandOut(io.Discard, root, args...) }

// goCommandOut runs the go command in root without any overlay (the one
// in GOFLAGS may be the file being written, or a stale one) or workspace.
func goCommandOut(stdout io.Writer, root string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS="+withoutOverlay(os.Getenv("GOFLAGS")), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// environ is os.Environ with any -overlay removed from GOFLAGS.
func environ() []string {
	env := os.Environ()
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			env[i] = "GOFLAGS=" + withoutOverlay(v)
		}
	}
	return env
}

// withoutOverlay is a GOFLAGS value with its -overlay flags removed.
func withoutOverlay(flags string) string {
	var keep []string
	for _, f := range strings.Fields(flags) {
		if !strings.HasPrefix(f, "-overlay=") && !strings.HasPrefix(f, "--overlay=") {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// write checks the patches against the modules and writes the overlay.
func write(root, outDir string, patches []Patch, mods map[string]Module) (string, error) {
	replace := map[string]string{}
	gomod := filepath.Join(root, "go.mod")
	modData, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	mf, err := modfile.Parse(gomod, modData, nil)
	if err != nil {
		return "", err
	}
	done := map[string]bool{}
	for _, p := range patches {
		m, ok := mods[p.Module]
		if !ok || m.Version == "" {
			return "", fmt.Errorf("%s: not in the build list (go.mod): remove its patch from %s", p.Module, ManifestFile)
		}
		if m.Replace != nil {
			return "", fmt.Errorf("%s: go.mod replaces it (=> %s): the overlay would not be what is built; remove the replace or the patch", p.Module, m.Replace.Path)
		}
		if m.Version != p.Version {
			return "", fmt.Errorf("%s: go.mod requires %s, the patch in %s is for %s: redo the patch for %s (third_party/README.md)", p.Module, m.Version, ManifestFile, p.Version, m.Version)
		}
		if m.Dir == "" {
			return "", fmt.Errorf("%s@%s: not in the module cache (go mod download %s)", p.Module, p.Version, p.Module)
		}
		virtual := filepath.Join(outDir, "sdk", filepath.FromSlash(p.Module+"@"+p.Version))
		if !done[p.Module] {
			done[p.Module] = true
			for _, r := range mf.Replace {
				if r.Old.Path == p.Module {
					return "", fmt.Errorf("%s: go.mod replaces it: the overlay would not be what is built; remove the replace or the patch", p.Module)
				}
			}
			if err := mf.AddReplace(p.Module, "", virtual, ""); err != nil {
				return "", err
			}
			err := filepath.WalkDir(m.Dir, func(file string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() || strings.HasSuffix(file, "_test.go") {
					return err
				}
				rel, err := filepath.Rel(m.Dir, file)
				if err != nil {
					return err
				}
				replace[filepath.Join(virtual, rel)] = file
				// The directory exists, empty: go vet runs its tool in a
				// package's directory (the files come from the overlay).
				return os.MkdirAll(filepath.Dir(filepath.Join(virtual, rel)), 0o755)
			})
			if err != nil {
				return "", err
			}
			if err := deferModule(outDir, virtual, p, m, patches, replace); err != nil {
				return "", err
			}
		}
		upstream := filepath.Join(m.Dir, filepath.FromSlash(p.Path))
		sum, err := fileSHA256(upstream)
		if err != nil {
			return "", fmt.Errorf("%s@%s: %v", p.Module, p.Version, err)
		}
		if sum != p.Upstream {
			return "", fmt.Errorf("%s@%s: %s has sha256 %s, the patch was made against %s: the module cache's copy differs from the release the patch is for", p.Module, p.Version, p.Path, sum, p.Upstream)
		}
		patched := filepath.Join(root, PatchDir, filepath.FromSlash(p.Module+"@"+p.Version), filepath.FromSlash(p.Path))
		if fi, err := os.Stat(patched); err != nil {
			return "", fmt.Errorf("patched file: %v", err)
		} else if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("patched file %s is not a regular file", patched)
		}
		replace[filepath.Join(virtual, filepath.FromSlash(p.Path))] = patched
	}
	if len(done) > 0 {
		// The go command checks no go.sum line for a module replaced by a
		// directory: the module cache's copy is checked here, whole.
		if err := checkSums(root, patches, mods); err != nil {
			return "", err
		}
		mf.Cleanup()
		out, err := mf.Format()
		if err != nil {
			return "", err
		}
		modCopy := filepath.Join(outDir, "sdk", "go.mod")
		if err := writeFile(modCopy, out); err != nil {
			return "", err
		}
		replace[gomod] = modCopy
	}
	js, err := json.MarshalIndent(struct{ Replace map[string]string }{replace}, "", "\t")
	if err != nil {
		return "", err
	}
	overlay := filepath.Join(outDir, "overlay.json")
	return overlay, writeFile(overlay, append(js, '\n'))
}

// checkSums holds the module cache's copy of every patched module to the
// hash root's go.sum records for it (what `go mod verify` checks): a
// replace by a directory turns off the go command's own check, and the
// overlay compiles the files of that copy as they are, so one changed
// since the download (a file added, removed or altered by whoever can
// write the module cache) fails here instead of being built unnoticed.
func checkSums(root string, patches []Patch, mods map[string]Module) error {
	data, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		return fmt.Errorf("the replaced modules are checked against go.sum: %v", err)
	}
	sums := map[string]string{}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) == 3 && strings.HasPrefix(f[2], "h1:") {
			sums[f[0]+"@"+f[1]] = f[2]
		}
	}
	checked := map[string]bool{}
	for _, p := range patches {
		mv := p.Module + "@" + p.Version
		if checked[mv] {
			continue
		}
		checked[mv] = true
		want, ok := sums[mv]
		if !ok {
			return fmt.Errorf("%s: go.sum has no hash of it: the module cache's copy cannot be checked (go mod download %s)", mv, p.Module)
		}
		got, err := dirhash.HashDir(mods[p.Module].Dir, mv, dirhash.Hash1)
		if err != nil {
			return fmt.Errorf("%s: hashing the module cache's copy: %v", mv, err)
		}
		if got != want {
			return fmt.Errorf("%s: the module cache's copy %s hashes to %s, go.sum says %s: it changed after it was downloaded (go clean -modcache, then go mod download)", mv, mods[p.Module].Dir, got, want)
		}
	}
	return nil
}

func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeFile replaces name atomically: two builds generating at once (the
// Makefile and a benchmark's build) each rename a whole file into place.
func writeFile(name string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// deferModule runs deferInits for p's module when the manifest patches its
// ApijsonRegistry (the patched registry has DeferRegistrations), writing
// under outDir/_sdkgen/MODULE@VERSION (a directory whose name starts with
// "_", so that `go build ./...` and `go vet ./...` from the repository's
// root do not take its Go files for packages of the main module). Each file is replaced atomically and
// nothing is removed there: a build may be reading them while another
// process (a benchmark's BuildArgs) regenerates; a file no longer
// generated is no longer in the overlay, so it is never compiled.
func deferModule(outDir, virtual string, p Patch, m Module, patches []Patch, replace map[string]string) error {
	skip := map[string]bool{}
	for _, q := range patches {
		if q.Module == p.Module {
			skip[q.Path] = true
		}
	}
	gen := filepath.Join(outDir, "_sdkgen", filepath.FromSlash(p.Module+"@"+p.Version))
	if !skip[ApijsonRegistry] {
		return nil
	}
	n, err := deferInits(p.Module, m.Dir, virtual, gen, skip, replace)
	if err != nil {
		return fmt.Errorf("%s@%s: %v", p.Module, p.Version, err)
	}
	if n == 0 {
		return fmt.Errorf("%s@%s: its apijson is patched to defer registrations but no init was deferred: has the generated code changed?", p.Module, p.Version)
	}
	return nil
}
