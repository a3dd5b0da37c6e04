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

// patchedInits are the packages whose init the patches empty, with the
// most their init may allocate when patched (recording registrations);
// unpatched, openai-go/v3's allocated ~146 KB.
var patchedInits = map[string]float64{
	"github.com/openai/openai-go/v3":            48 << 10,
	"github.com/openai/openai-go/v3/responses":  32 << 10,
	"github.com/anthropics/anthropic-sdk-go/v2": 32 << 10,
	"go.yaml.in/yaml/v4":                        8 << 10,
}

// The overlay takes effect, told without timing anything: a binary linking
// the SDKs (testdata/sdkinit), built with the repository's overlay, shows
// in its init trace the patched packages' inits allocating little; built
// without it (unless -short), openai-go/v3's allocates much more.
func TestOverlayTakesEffect(t *testing.T) {
	dir := t.TempDir()
	overlay, err := GenerateTo("../..", filepath.Join(dir, "gen"))
	require.NoError(t, err)
	got := initAllocs(t, buildInit(t, filepath.Join(dir, "patched"), "-overlay="+overlay))
	for pkg, most := range patchedInits {
		a, ok := got[pkg]
		require.True(t, ok, "%s: no init in the trace", pkg)
		t.Logf("patched %s: init allocated %.0f bytes", pkg, a)
		require.Less(t, a, most, "%s: the patched init allocated %.0f bytes: is the overlay in effect?", pkg, a)
	}
	if testing.Short() {
		return
	}
	got = initAllocs(t, buildInit(t, filepath.Join(dir, "plain")))
	t.Logf("unpatched github.com/openai/openai-go/v3: init allocated %.0f bytes", got["github.com/openai/openai-go/v3"])
	require.Greater(t, got["github.com/openai/openai-go/v3"], 2*patchedInits["github.com/openai/openai-go/v3"],
		"the unpatched build should allocate far more at init: the check cannot tell the builds apart")
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

// initAllocs runs bin with GODEBUG=inittrace=1 and returns the bytes each
// package's init allocated.
func initAllocs(t *testing.T, bin string) map[string]float64 {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), "%s", stderr.String())
	got := map[string]float64{}
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		// init github.com/openai/openai-go/v3 @1.2 ms, 0.71 ms clock, 146000 bytes, 1500 allocs
		f := strings.Fields(sc.Text())
		if len(f) < 9 || f[0] != "init" || f[8] != "bytes," {
			continue
		}
		n, err := strconv.ParseFloat(f[7], 64)
		require.NoError(t, err, sc.Text())
		got[f[1]] += n
	}
	return got
}
