package sdkoverlay

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/dirhash"
)

// writeGoSum records in f's go.sum the hash of the module cache's copy of
// fakeMod as it is now (what `go mod download` checked it against).
func (f *fake) writeGoSum(t *testing.T) {
	t.Helper()
	h, err := dirhash.HashDir(f.cache, fakeMod+"@"+fakeVer, dirhash.Hash1)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(f.root, "go.sum"), []byte(fakeMod+" "+fakeVer+" "+h+"\n"+fakeMod+" "+fakeVer+"/go.mod h1:AAAA\n"), 0o644))
}

// TestWriteChecksGoSum: a module the overlay replaces is built from the
// directory the replace names (the module cache's files through the
// overlay), and the go command checks no go.sum line for a directory
// replacement. So the overlay checks the module cache's copy itself: a
// file of it changed, added or removed after go.sum recorded its hash, or
// a go.sum without the module's hash, fails and writes no overlay (an
// attacker who can write the module cache otherwise compiles any code
// into every binary the Makefile builds).
func TestWriteChecksGoSum(t *testing.T) {
	f := newFake(t)
	_, err := f.write()
	require.NoError(t, err, "go.sum holds the cache's hash")

	for name, c := range map[string]struct {
		change func(*fake)
		want   string
	}{
		"file changed": {func(f *fake) {
			require.NoError(t, os.WriteFile(filepath.Join(f.cache, "sdk.go"), []byte("package sdk\n\nfunc init() { println(\"owned\") }\n"), 0o644))
		}, "go.sum"},
		"file added": {func(f *fake) {
			require.NoError(t, os.WriteFile(filepath.Join(f.cache, "zz_extra.go"), []byte("package sdk\n\nfunc init() { println(\"owned\") }\n"), 0o644))
		}, "go.sum"},
		"file removed": {func(f *fake) {
			require.NoError(t, os.Remove(filepath.Join(f.cache, "sdk.go")))
		}, "go.sum"},
		"test file changed": {func(f *fake) { // not compiled, but part of the module's hash
			require.NoError(t, os.WriteFile(filepath.Join(f.cache, "internal/reg/reg_test.go"), []byte("package reg // changed\n"), 0o644))
		}, "go.sum"},
		"no go.sum line": {func(f *fake) {
			require.NoError(t, os.WriteFile(filepath.Join(f.root, "go.sum"), []byte(fakeMod+" "+fakeVer+"/go.mod h1:AAAA\n"), 0o644))
		}, "go.sum has no hash"},
		"no go.sum": {func(f *fake) {
			require.NoError(t, os.Remove(filepath.Join(f.root, "go.sum")))
		}, "go.sum"},
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

// TestOverlayInUseIsCurrent: the overlay named in GOFLAGS (the Makefile's,
// or a helper's GOFLAGS=-overlay=...) is what Generate writes now. The go
// command reads go.mod through it, so an overlay generated before go.mod
// changed builds with the old go.mod (its requirements, replaces, godebug
// lines) and says nothing; `go test ./...` with a stale one fails here.
func TestOverlayInUseIsCurrent(t *testing.T) {
	var inUse string
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if v, ok := strings.CutPrefix(strings.TrimPrefix(strings.TrimPrefix(f, "-"), "-"), "overlay="); ok {
			inUse = v
		}
	}
	if inUse == "" {
		t.Skip("no -overlay in GOFLAGS")
	}
	fresh, err := GenerateTo("../..", filepath.Join(t.TempDir(), "gen"))
	require.NoError(t, err)
	require.NoError(t, overlaysSame(inUse, fresh), "the overlay in GOFLAGS is stale: run make overlay")
}

// overlaysSame reports how overlays a and b (each with its go.mod copy)
// differ but for the directory each was written to.
func overlaysSame(a, b string) error {
	norm := func(path string) (map[string]string, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var o struct{ Replace map[string]string }
		if err := json.Unmarshal(data, &o); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		dir := filepath.Dir(path)
		out := map[string]string{}
		for k, v := range o.Replace {
			if strings.HasSuffix(k, string(filepath.Separator)+"go.mod") && v == filepath.Join(dir, "sdk", "go.mod") {
				// The go.mod copy: compared by its contents.
				mod, err := os.ReadFile(v)
				if err != nil {
					return nil, err
				}
				v = "go.mod copy:\n" + strings.ReplaceAll(string(mod), dir, "$OUT")
			}
			out[strings.ReplaceAll(k, dir, "$OUT")] = strings.ReplaceAll(v, dir, "$OUT")
		}
		return out, nil
	}
	ma, err := norm(a)
	if err != nil {
		return err
	}
	mb, err := norm(b)
	if err != nil {
		return err
	}
	for k, v := range mb {
		if ma[k] != v && strings.HasPrefix(v, "go.mod copy:") {
			return fmt.Errorf("%s: the go.mod copy %s substitutes for it is not the one Generate writes now (go.mod changed since)", k, a)
		}
		if ma[k] != v {
			return fmt.Errorf("%s: %s maps it to %q, a fresh overlay to %q", k, a, ma[k], v)
		}
	}
	for k, v := range ma {
		if _, ok := mb[k]; !ok {
			return fmt.Errorf("%s: %s maps it to %q, a fresh overlay does not map it", k, a, v)
		}
	}
	return nil
}
