package sdkoverlay

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// initLimit is the most a patched package's init may allocate: what
// remains is the registrations recorded (the generated callers' variadic
// arrays and the slices they are appended to). Measured at 2026-12-06
// (cp-route -version): openai-go/v3 1095 allocations and 146 KB unpatched,
// 249 and 84 KB patched; responses 614 → 117 allocations; anthropic
// 91 KB → 38 KB (most of its allocations are the callers'); yaml/v4 278 →
// 43 allocations.
type initLimit struct{ allocs, bytes float64 }

// Session 27 (cp-llm -version): x/text's cases 38 allocations (2600 B) →
// 11 (288 B), internal/language/compact 8 → 2; invopop/jsonschema 42 → 6;
// anthropic's config 42 → 7 and internal/requestconfig 51 → 4. With the
// generated registration inits deferred (deferinit.go): openai-go/v3 249
// allocations → 1 (3 KB: the deferred list), responses 117 → 1, anthropic
// 156 allocations and 38 KB → 13 and 2.7 KB.
var patchedInits = map[string]initLimit{
	"github.com/openai/openai-go/v3":                                   {allocs: 20},
	"github.com/openai/openai-go/v3/responses":                         {allocs: 20},
	"github.com/anthropics/anthropic-sdk-go/v2":                        {allocs: 40, bytes: 8 << 10},
	"go.yaml.in/yaml/v4":                                               {allocs: 120},
	"golang.org/x/text/cases":                                          {allocs: 25},
	"golang.org/x/text/internal/language/compact":                      {allocs: 5},
	"github.com/invopop/jsonschema":                                    {allocs: 20},
	"github.com/anthropics/anthropic-sdk-go/v2/config":                 {allocs: 20},
	"github.com/anthropics/anthropic-sdk-go/v2/internal/requestconfig": {allocs: 20},
}

// patchedOnly are limits checked on the patched build alone: x/text's
// secure/precis makes a Caser for language.Und at its init, which must not
// build cases' matcher (the patch's shortcut for "und"): its init makes 11
// allocations either way, ~40 with the matcher.
var patchedOnly = map[string]initLimit{
	"golang.org/x/text/secure/precis": {allocs: 20},
}

// The overlay takes effect, told without timing anything: a binary linking
// the SDKs (testdata/sdkinit), built with the repository's overlay, shows
// in its init trace the patched packages' inits allocating less than the
// limits above; built without it (unless -short), it shows openai-go/v3's
// over them, so that the check tells the two apart.
func TestOverlayTakesEffect(t *testing.T) {
	dir := t.TempDir()
	overlay, err := GenerateTo("../..", filepath.Join(dir, "gen"))
	require.NoError(t, err)
	got := initAllocs(t, buildInit(t, filepath.Join(dir, "patched"), "-overlay="+overlay))
	for pkg, most := range patchedInits {
		a, ok := got[pkg]
		require.True(t, ok, "%s: no init in the trace", pkg)
		t.Logf("patched %s: init allocated %.0f bytes in %.0f allocations", pkg, a.bytes, a.allocs)
		if most.allocs > 0 {
			require.Less(t, a.allocs, most.allocs, "%s: the patched init made %.0f allocations: is the overlay in effect?", pkg, a.allocs)
		}
		if most.bytes > 0 {
			require.Less(t, a.bytes, most.bytes, "%s: the patched init allocated %.0f bytes: is the overlay in effect?", pkg, a.bytes)
		}
	}
	for pkg, most := range patchedOnly {
		a, ok := got[pkg]
		require.True(t, ok, "%s: no init in the trace", pkg)
		t.Logf("patched %s: init allocated %.0f bytes in %.0f allocations", pkg, a.bytes, a.allocs)
		require.Less(t, a.allocs, most.allocs, "%s: its init made %.0f allocations", pkg, a.allocs)
	}
	if testing.Short() {
		return
	}
	got = initAllocs(t, buildInit(t, filepath.Join(dir, "plain")))
	for pkg, most := range patchedInits {
		t.Logf("unpatched %s: init allocated %.0f bytes in %.0f allocations", pkg, got[pkg].bytes, got[pkg].allocs)
		if most.allocs > 0 {
			require.Greater(t, got[pkg].allocs, most.allocs, "%s unpatched: the check cannot tell the builds apart", pkg)
		}
		if most.bytes > 0 {
			require.Greater(t, got[pkg].bytes, most.bytes, "%s unpatched: the check cannot tell the builds apart", pkg)
		}
	}
}

func buildInit(t *testing.T, out string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(out, "sdkinit")
	cmd := exec.Command("go", append(append([]string{"build", "-trimpath"}, flags...), "-o", bin, "./testdata/sdkinit")...)
	cmd.Env = append(environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	return bin
}

// initAllocs runs bin with GODEBUG=inittrace=1 and returns what each
// package's init allocated.
func initAllocs(t *testing.T, bin string) map[string]initLimit {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), "%s", stderr.String())
	got := map[string]initLimit{}
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		// init github.com/openai/openai-go/v3 @21 ms, 0.47 ms clock, 146256 bytes, 1095 allocs
		f := strings.Fields(sc.Text())
		if len(f) < 11 || f[0] != "init" || f[8] != "bytes," || f[10] != "allocs" {
			continue
		}
		by, err1 := strconv.ParseFloat(f[7], 64)
		n, err2 := strconv.ParseFloat(f[9], 64)
		require.NoError(t, err1, sc.Text())
		require.NoError(t, err2, sc.Text())
		l := got[f[1]]
		got[f[1]] = initLimit{allocs: l.allocs + n, bytes: l.bytes + by}
	}
	return got
}
