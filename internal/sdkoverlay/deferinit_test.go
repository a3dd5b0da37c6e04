package sdkoverlay

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// deferModuleFiles is a module with apijson registrations in init: pkg a
// all deferrable (two files, two inits in one), b with an init that mixes
// a registration with another statement, c with a build-constrained file.
var deferModuleFiles = map[string]string{
	"a/x.go": `package a

import "example.com/m/internal/apijson"

func init() {
	apijson.RegisterUnion[int]("type")
}

func init() {
	apijson.RegisterFieldValidator[int, string]("f", "v")
}

func init() { println("kept") }
`,
	"a/y.go": `package a

import api "example.com/m/internal/apijson"

func init() {
	api.RegisterDiscriminatedUnion[int]("k", nil)
}
`,
	"b/b.go": `package b

import "example.com/m/internal/apijson"

func init() {
	apijson.RegisterUnion[int]("type")
	println("mixed")
}
`,
	"b/c.go": `package b

import "example.com/m/internal/apijson"

func init() {
	apijson.RegisterUnion[int]("type")
}
`,
	"c/c.go": `//go:build linux

package c

import "example.com/m/internal/apijson"

func init() {
	apijson.RegisterUnion[int]("type")
}
`,
	"r.go": `package m

import "example.com/m/internal/apijson"

func init() {
	apijson.RegisterUnion[int]("type")
}
`,
	"internal/apijson/registry.go": "package apijson\n",
}

func TestDeferInits(t *testing.T) {
	dir := t.TempDir()
	mod, gen, virtual := filepath.Join(dir, "mod"), filepath.Join(dir, "gen"), filepath.Join(dir, "virtual")
	for name, src := range deferModuleFiles {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(mod, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(mod, name), []byte(src), 0o644))
	}
	replace := map[string]string{}
	n, err := deferInits("example.com/m", mod, virtual, gen, map[string]bool{ApijsonRegistry: true}, replace)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.Equal(t, map[string]string{
		filepath.Join(virtual, "a/x.go"):               filepath.Join(gen, "a/x.go"),
		filepath.Join(virtual, "a/y.go"):               filepath.Join(gen, "a/y.go"),
		filepath.Join(virtual, "a", DeferredInitsFile): filepath.Join(gen, "a", DeferredInitsFile),
		filepath.Join(virtual, "r.go"):                 filepath.Join(gen, "r.go"),
		filepath.Join(virtual, DeferredInitsFile):      filepath.Join(gen, DeferredInitsFile),
	}, replace, "packages a and the root are rewritten: b mixes, c is constrained")
	root, err := os.ReadFile(filepath.Join(gen, DeferredInitsFile))
	require.NoError(t, err)
	require.Contains(t, string(root), "package m\n")
	require.Contains(t, string(root), "func "+CountsFunc+"() (deferred, ran int) { return cpapijson.DeferredCounts() }", "the root package reports the counts")
	x, err := os.ReadFile(filepath.Join(gen, "a/x.go"))
	require.NoError(t, err)
	require.Equal(t, strings.Replace(strings.Replace(deferModuleFiles["a/x.go"],
		"func init() {\n\tapijson.RegisterUnion", "func cpDeferredInit0() {\n\tapijson.RegisterUnion", 1),
		"func init() {\n\tapijson.RegisterFieldValidator", "func cpDeferredInit1() {\n\tapijson.RegisterFieldValidator", 1),
		string(x), "renamed in place, nothing else changed")
	y, err := os.ReadFile(filepath.Join(gen, "a/y.go"))
	require.NoError(t, err)
	require.Contains(t, string(y), "func cpDeferredInit2() {\n\tapi.RegisterDiscriminatedUnion")
	z, err := os.ReadFile(filepath.Join(gen, "a", DeferredInitsFile))
	require.NoError(t, err)
	require.Contains(t, string(z), "package a\n")
	require.NotContains(t, string(z), CountsFunc, "only the root package reports the counts")
	require.Contains(t, string(z), "cpapijson.DeferRegistrations(\n\t\tcpDeferredInit0,\n\t\tcpDeferredInit1,\n\t\tcpDeferredInit2,\n\t)")

	// A file the manifest patches is never rewritten: its package stays
	// (the root's is deferred still).
	replace = map[string]string{}
	gen2 := filepath.Join(dir, "gen2")
	n, err = deferInits("example.com/m", mod, virtual, gen2, map[string]bool{"a/y.go": true}, replace)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, map[string]string{
		filepath.Join(virtual, "r.go"):            filepath.Join(gen2, "r.go"),
		filepath.Join(virtual, DeferredInitsFile): filepath.Join(gen2, DeferredInitsFile),
	}, replace)

	// A file that does not parse fails the generation.
	require.NoError(t, os.WriteFile(filepath.Join(mod, "a/z.go"), []byte("package a\nfunc {"), 0o644))
	_, err = deferInits("example.com/m", mod, virtual, filepath.Join(dir, "gen3"), nil, map[string]string{})
	require.Error(t, err)
}

// The deferred registrations run, once, before the first decode, however
// many goroutines decode at once: testdata/sdkdecode, built with the
// repository's overlay (with -race when cgo can build it), decodes both
// SDKs' responses from 80 goroutines at its first use of them.
func TestDeferredInitsDecode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both SDKs")
	}
	dir := t.TempDir()
	overlay, err := GenerateTo("../..", filepath.Join(dir, "gen"))
	require.NoError(t, err)
	bin := filepath.Join(dir, "sdkdecode")
	args := []string{"build", "-trimpath", "-overlay=" + overlay, "-o", bin}
	env := append(environ(), "CGO_ENABLED=0")
	if _, err := exec.LookPath("gcc"); err == nil {
		args = append(args, "-race")
		env = append(environ(), "CGO_ENABLED=1")
	}
	cmd := exec.Command("go", append(args, "./testdata/sdkdecode")...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(bin).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// It also checks that both SDKs' registrations were deferred (none
	// run before its first decode) and all ran after it.
	require.Regexp(t, `^ok 80 deferred [1-9][0-9]* [1-9][0-9]*\n$`, string(out))
}
