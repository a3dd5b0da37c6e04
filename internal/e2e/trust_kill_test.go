package e2e

import (
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	cpGateOnce sync.Once
	cpGate     string
	cpGateErr  error
)

// gateTool builds cp-gate once, beside the binaries planeTools builds.
func gateTool(t *testing.T) string {
	t.Helper()
	install, _ := planeTools(t)
	cpGateOnce.Do(func() {
		cpGate = filepath.Join(filepath.Dir(install), "cp-gate")
		build := exec.Command("go", "build", "-o", cpGate, "./cmd/cp-gate")
		build.Dir = filepath.Join("..", "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			cpGateErr = fmt.Errorf("building cp-gate: %v\n%s", err, out)
		}
	})
	require.NoError(t, cpGateErr)
	return cpGate
}

// kernelState is what a trust change changes on one tier: the kernel's
// row in packages_state.csv and the trusted keys file.
type kernelState struct{ version, manifestHash, trusted string }

// kernelStates reads the kernel state of the three tiers of the plane at
// root, HO3 first.
func kernelStates(t *testing.T, root string) []kernelState {
	t.Helper()
	var out []kernelState
	for _, dir := range []string{"", "planes/ho2", "planes/ho1"} {
		f, err := os.Open(filepath.Join(root, dir, "registries", "packages_state.csv"))
		require.NoError(t, err)
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		require.NoError(t, err)
		var s kernelState
		for _, r := range rows {
			if r[0] == "PKG-KERNEL-001" {
				s.version, s.manifestHash = r[1], r[2]
			}
		}
		b, err := os.ReadFile(filepath.Join(root, dir, "config", "trusted_keys.json"))
		require.NoError(t, err)
		s.trusted = string(b)
		out = append(out, s)
	}
	return out
}

// TestKillDuringTrustChange kills cp-install trust add (a kernel patch
// release installed on HO3, HO2 and HO1 as one journaled change) with
// SIGKILL at instants spread over it, runs cp-install recover, and requires
// all three tiers to be wholly before (kernel 1.0.0, the key untrusted) or
// wholly after (kernel 1.0.1 with the key, on every tier), every gate to
// pass on every tier, and the ledger to hold for the killed operation
// INSTALL_STARTED and exactly one outcome matching the plane, with one
// TRUST_CHANGED exactly when it took effect (or nothing, killed before its
// start). A plane left before then takes the change.
func TestKillDuringTrustChange(t *testing.T) {
	rounds := 16
	if testing.Short() {
		rounds = 6
	}
	install, pkg := planeTools(t)
	gate := gateTool(t)
	work := t.TempDir()
	base := filepath.Join(work, "base")
	keys := filepath.Join(work, "keys")
	require.NoError(t, os.Mkdir(keys, 0o755))
	mustPlane(t, pkg, base, work, "keygen", "--name", "ops", "--out", keys)
	mustPlane(t, pkg, base, work, "keygen", "--name", "rel", "--out", keys)
	mustPlane(t, install, base, work, "bootstrap", "--root", base, "--trust-key", filepath.Join(keys, "ops.pub"))
	args := func(root string) []string {
		return []string{"trust", "add", "--root", root, "--purpose", "package", filepath.Join(keys, "rel.pub")}
	}
	before := kernelStates(t, base)
	baseEntries := showLedger(t, base)

	// The uninterrupted run, to time it.
	scratch := filepath.Join(work, "scratch")
	syncTree(t, base, scratch)
	killed, r, ref := killAfter(t, install, scratch, noKill, 0, args(scratch)...)
	require.False(t, killed)
	require.Equal(t, 0, r.code, "the uninterrupted trust add: %s%s", r.stdout, r.stderr)
	after := kernelStates(t, scratch)
	require.Equal(t, "1.0.1", after[0].version)
	require.Contains(t, after[0].trusted, `"rel"`)
	spans := [anchors]time.Duration{fromStart: ref.exited, fromStarted: ref.journal - ref.started,
		fromJournal: ref.plan - ref.journal, fromPlan: (ref.retired - ref.plan) * 3 / 2}

	isWhole := func(got []kernelState, want kernelState) bool {
		for _, s := range got {
			if s.version != want.version || s.manifestHash != got[0].manifestHash || s.trusted != got[0].trusted {
				return false
			}
		}
		return want.version == "1.0.0" && got[0].trusted == want.trusted ||
			want.version == "1.0.1" && strings.Contains(got[0].trusted, `"rel"`)
	}
	var nBefore, nAfter int
	for round := range rounds {
		from, k := anchor(round%int(anchors)), round/int(anchors)
		n := (rounds - int(from) + int(anchors) - 1) / int(anchors)
		frac := 0.5
		if n > 1 {
			frac = float64(k) / float64(n-1)
		}
		delay := time.Duration(float64(spans[from]) * 1.1 * frac)
		how := fmt.Sprintf("%v after %v", delay.Round(time.Microsecond), from)
		dir := filepath.Join(work, "plane")
		syncTree(t, base, dir)
		_, _, ph := killAfter(t, install, dir, from, delay, args(dir)...)
		left := leftovers(t, dir)
		rec := runPlane(t, install, dir, work, "recover", "--root", dir)
		require.Equal(t, 0, rec.code, "round %d (killed %s): recover: %s%s; left %s", round, how, rec.stdout, rec.stderr, left)
		require.Equal(t, "nothing", leftovers(t, dir), "round %d: recover left something", round)

		got := kernelStates(t, dir)
		wasBefore, wasAfter := isWhole(got, before[0]), isWhole(got, after[0])
		require.True(t, wasBefore || wasAfter, "round %d (killed %s): the tiers are neither all before nor all after: %+v; left %s", round, how, got, left)
		for _, p := range []string{"ho3", "ho2", "ho1"} {
			g := runPlane(t, gate, dir, work, "check", "--all", "--root", dir, "--plane", p)
			require.Equal(t, 0, g.code, "round %d (killed %s): cp-gate check --all --plane %s: %s%s", round, how, p, g.stdout, g.stderr)
		}
		entries := showLedger(t, dir)
		requireSameHistory(t, baseEntries, entries, fmt.Sprintf("round %d", round))
		var types []string
		for _, e := range entries[len(baseEntries):] {
			types = append(types, e.EventType)
		}
		switch {
		case len(types) == 0:
			require.True(t, wasBefore, "round %d: nothing recorded but the plane is after", round)
		case wasAfter:
			require.Equal(t, []string{"INSTALL_STARTED", "INSTALLED", "TRUST_CHANGED"}, types, "round %d (killed %s)", round, how)
		default:
			require.Equal(t, []string{"INSTALL_STARTED", "INSTALL_FAILED"}, types, "round %d (killed %s)", round, how)
		}
		t.Logf("round %2d: kill %s (seen %v): left %s; %v -> before %v", round, how, ph, left, types, wasBefore)
		if wasBefore {
			nBefore++
			mustPlane(t, install, dir, work, args(dir)...)
			require.True(t, isWhole(kernelStates(t, dir), after[0]), "round %d: the trust add after recovery", round)
		} else {
			nAfter++
		}
	}
	t.Logf("%d rounds: %d before, %d after", rounds, nBefore, nAfter)
}
