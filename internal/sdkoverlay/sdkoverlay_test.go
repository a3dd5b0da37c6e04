package sdkoverlay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	fakeMod = "example.com/sdk/v2"
	fakeVer = "v2.1.0"
)

// fake is a module root with go.mod and one patch of fakeMod, and a
// module-cache directory of fakeMod holding the upstream files.
type fake struct {
	root, cache, out string
	patches          []Patch
	mods             map[string]Module
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{root: t.TempDir(), cache: t.TempDir(), out: t.TempDir()}
	write := func(name, data string) {
		t.Helper()
		require.NoError(t, os.MkdirAll(filepath.Dir(name), 0o755))
		require.NoError(t, os.WriteFile(name, []byte(data), 0o644))
	}
	write(filepath.Join(f.root, "go.mod"), "module example.com/app\n\ngo 1.26.0\n\nrequire "+fakeMod+" "+fakeVer+"\n")
	write(filepath.Join(f.cache, "go.mod"), "module "+fakeMod+"\n")
	write(filepath.Join(f.cache, "sdk.go"), "package sdk\n")
	write(filepath.Join(f.cache, "internal/reg/reg.go"), "package reg // upstream\n")
	write(filepath.Join(f.cache, "internal/reg/reg_test.go"), "package reg\n")
	write(filepath.Join(f.root, PatchDir, fakeMod+"@"+fakeVer, "internal/reg/reg.go"), "package reg // patched\n")
	f.patches = []Patch{{Module: fakeMod, Version: fakeVer, Path: "internal/reg/reg.go", Upstream: sum("package reg // upstream\n")}}
	f.mods = map[string]Module{fakeMod: {Path: fakeMod, Version: fakeVer, Dir: f.cache}}
	f.writeGoSum(t)
	return f
}

func (f *fake) write() (string, error) { return write(f.root, f.out, f.patches, f.mods) }

func readOverlay(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var o struct{ Replace map[string]string }
	require.NoError(t, json.Unmarshal(data, &o))
	return o.Replace
}

func TestWrite(t *testing.T) {
	f := newFake(t)
	path, err := f.write()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(f.out, "overlay.json"), path)
	r := readOverlay(t, path)
	virtual := filepath.Join(f.out, "sdk", fakeMod+"@"+fakeVer)
	require.Equal(t, map[string]string{
		filepath.Join(virtual, "go.mod"):              filepath.Join(f.cache, "go.mod"),
		filepath.Join(virtual, "sdk.go"):              filepath.Join(f.cache, "sdk.go"),
		filepath.Join(virtual, "internal/reg/reg.go"): filepath.Join(f.root, PatchDir, fakeMod+"@"+fakeVer, "internal/reg/reg.go"),
		filepath.Join(f.root, "go.mod"):               filepath.Join(f.out, "sdk", "go.mod"),
	}, r, "every upstream file but tests, the patched one from third_party, go.mod replaced")
	fi, err := os.Stat(filepath.Join(virtual, "internal/reg"))
	require.NoError(t, err, "go vet runs in a package's directory: it must exist")
	require.True(t, fi.IsDir())
	mod, err := os.ReadFile(filepath.Join(f.out, "sdk", "go.mod"))
	require.NoError(t, err)
	require.Contains(t, string(mod), "replace "+fakeMod+" => "+virtual+"\n")
	require.Contains(t, string(mod), "require "+fakeMod+" "+fakeVer)
	for k := range r {
		require.False(t, strings.HasPrefix(k, f.cache), "%s: the go command refuses overlays of module-cache files", k)
	}
}

// Every mismatch between the patch and what would be built fails, and
// writes no overlay.
func TestWriteFailsClosed(t *testing.T) {
	for name, c := range map[string]struct {
		change func(*fake)
		want   string
	}{
		"version": {func(f *fake) {
			m := f.mods[fakeMod]
			m.Version = "v2.2.0"
			f.mods[fakeMod] = m
		}, "go.mod requires v2.2.0, the patch in third_party/overlay/PATCHES is for v2.1.0"},
		"upstream hash": {func(f *fake) {
			require.NoError(t, os.WriteFile(filepath.Join(f.cache, "internal/reg/reg.go"), []byte("package reg // changed\n"), 0o644))
		}, "the patch was made against"},
		"upstream file gone": {func(f *fake) {
			require.NoError(t, os.Remove(filepath.Join(f.cache, "internal/reg/reg.go")))
		}, "no such file"},
		"patched file gone": {func(f *fake) {
			require.NoError(t, os.Remove(filepath.Join(f.root, PatchDir, fakeMod+"@"+fakeVer, "internal/reg/reg.go")))
		}, "patched file"},
		"not required": {func(f *fake) { delete(f.mods, fakeMod) }, "not in the build list"},
		"replaced in the build list": {func(f *fake) {
			m := f.mods[fakeMod]
			m.Replace = &Module{Path: "../elsewhere"}
			f.mods[fakeMod] = m
		}, "go.mod replaces it"},
		"replaced in go.mod": {func(f *fake) {
			gm := filepath.Join(f.root, "go.mod")
			data, err := os.ReadFile(gm)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(gm, append(data, "replace "+fakeMod+" => ../fork\n"...), 0o644))
		}, "go.mod replaces it"},
		"not downloaded": {func(f *fake) {
			m := f.mods[fakeMod]
			m.Dir = ""
			f.mods[fakeMod] = m
		}, "not in the module cache"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			c.change(f)
			_, err := f.write()
			require.ErrorContains(t, err, c.want)
			_, err = os.Stat(filepath.Join(f.out, "overlay.json"))
			require.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

// Generate removes the overlay a previous run left when it fails.
func TestGenerateRemovesStaleOverlay(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "build"), 0o755))
	stale := filepath.Join(root, "build", "overlay.json")
	require.NoError(t, os.WriteFile(stale, []byte(`{"Replace":{}}`), 0o644))
	_, err := Generate(root) // no go.mod, no manifest
	require.Error(t, err)
	_, err = os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestParseManifest(t *testing.T) {
	h := strings.Repeat("ab", 32)
	got, err := ParseManifest([]byte("# comment\n\n" + fakeMod + "@" + fakeVer + " internal/reg/reg.go " + h + "\ngo.yaml.in/yaml/v4@v4.0.0-rc.2 encode.go " + h + "\n"))
	require.NoError(t, err)
	require.Equal(t, []Patch{
		{Module: fakeMod, Version: fakeVer, Path: "internal/reg/reg.go", Upstream: h},
		{Module: "go.yaml.in/yaml/v4", Version: "v4.0.0-rc.2", Path: "encode.go", Upstream: h},
	}, got)
	for line, want := range map[string]string{
		fakeMod + " reg.go " + h:                                                          "no @VERSION",
		fakeMod + "@" + fakeVer + " reg.go":                                               "got 2 fields",
		fakeMod + "@" + fakeVer + " reg.go " + h + " x":                                   "got 4 fields",
		fakeMod + "@latest reg.go " + h:                                                   "version",
		fakeMod + "@v2.1 reg.go " + h:                                                     "version",
		"Example.com/x@v1.0.0 reg.go " + h:                                                "",
		fakeMod + "@" + fakeVer + " ../reg.go " + h:                                       "clean relative path",
		fakeMod + "@" + fakeVer + " /etc/passwd " + h:                                     "clean relative path",
		fakeMod + "@" + fakeVer + " a//b.go " + h:                                         "clean relative path",
		fakeMod + "@" + fakeVer + ` a\b.go ` + h:                                          "clean relative path",
		fakeMod + "@" + fakeVer + " reg.go " + strings.ToUpper(h):                         "sha256",
		fakeMod + "@" + fakeVer + " reg.go " + h[:63]:                                     "sha256",
		fakeMod + "@" + fakeVer + " reg.go " + h[:62] + "zz":                              "sha256",
		"@" + fakeVer + " reg.go " + h:                                                    "",
		fakeMod + "@" + fakeVer + " reg.go " + h + "\n" + fakeMod + "@v2.2.0 reg.go " + h: "listed twice",
	} {
		_, err := ParseManifest([]byte(line))
		require.Error(t, err, line)
		require.ErrorContains(t, err, want, line)
	}
}

func FuzzParseManifest(f *testing.F) {
	h := strings.Repeat("0f", 32)
	f.Add([]byte(fakeMod + "@" + fakeVer + " internal/reg/reg.go " + h + "\n"))
	f.Add([]byte("# x\n\ngo.yaml.in/yaml/v4@v4.0.0-rc.2 encode.go " + h))
	f.Fuzz(func(t *testing.T, data []byte) {
		patches, err := ParseManifest(data)
		if err != nil {
			return
		}
		for _, p := range patches {
			// What is accepted is safe to join under a directory.
			if !filepath.IsLocal(filepath.FromSlash(p.Path)) || !filepath.IsLocal(filepath.FromSlash(p.Module+"@"+p.Version)) {
				t.Fatalf("accepted %q %q", p.Module+"@"+p.Version, p.Path)
			}
			if len(p.Upstream) != 64 {
				t.Fatalf("accepted hash %q", p.Upstream)
			}
		}
	})
}

// The repository's patches match go.mod and the module cache: the overlay
// the Makefile passes to every go command can be generated.
func TestRepoManifest(t *testing.T) {
	out := t.TempDir()
	path, err := GenerateTo("../..", out)
	require.NoError(t, err)
	r := readOverlay(t, path)
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(root, ManifestFile))
	require.NoError(t, err)
	patches, err := ParseManifest(data)
	require.NoError(t, err)
	require.NotEmpty(t, patches)
	for _, p := range patches {
		virtual := filepath.Join(out, "sdk", p.Module+"@"+p.Version, p.Path)
		require.Equal(t, filepath.Join(root, PatchDir, p.Module+"@"+p.Version, p.Path), r[virtual])
	}
	require.Equal(t, filepath.Join(out, "sdk", "go.mod"), r[filepath.Join(root, "go.mod")])
}
