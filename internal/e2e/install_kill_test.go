package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/control-plane/cp/internal/plane"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The package the kill test upgrades, and where its files go.
const (
	killPkg  = "PKG-KILL-001"
	killSpec = "SPEC-KILL-001"
	killFmwk = "FMWK-KILL-001"
	killLib  = "lib/kill"
)

var (
	planeToolsOnce      sync.Once
	cpInstall, cpPkg    string
	cpRoute             string // built with them (routeTool)
	planeToolsErr       error
	planeToolsBuildTime time.Duration
)

// planeTools builds cp-install, cp-pkg (and cp-route) once, with go build, into the
// temporary directory TestMain made (so they go when it goes), and returns
// their paths.
func planeTools(t *testing.T) (install, pkg string) {
	t.Helper()
	planeToolsOnce.Do(func() {
		began := time.Now()
		defer func() { planeToolsBuildTime = time.Since(began) }()
		dir := filepath.Join(filepath.Dir(home), "plane-bin")
		if planeToolsErr = os.Mkdir(dir, 0o755); planeToolsErr != nil {
			return
		}
		gomod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || len(bytes.TrimSpace(gomod)) == 0 {
			planeToolsErr = fmt.Errorf("finding the module root: %v", err)
			return
		}
		build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/cp-install", "./cmd/cp-pkg", "./cmd/cp-route")
		build.Dir = filepath.Dir(string(bytes.TrimSpace(gomod)))
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			planeToolsErr = fmt.Errorf("building cp-install, cp-pkg and cp-route: %v\n%s", err, out)
			return
		}
		cpInstall, cpPkg, cpRoute = filepath.Join(dir, "cp-install"), filepath.Join(dir, "cp-pkg"), filepath.Join(dir, "cp-route")
	})
	require.NoError(t, planeToolsErr)
	return cpInstall, cpPkg
}

// planeCmd returns bin with args, run in dir, in an environment that holds
// none of the caller's Control Plane settings but CONTROL_PLANE=root, and a
// HOME of its own. Stdin is /dev/null.
func planeCmd(bin, root, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "CONTROL_PLANE=" + root}
	cmd.Dir = dir
	return cmd
}

// runPlane runs bin to completion.
func runPlane(t *testing.T, bin, root, dir string, args ...string) result {
	t.Helper()
	cmd := planeCmd(bin, root, dir, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		require.NoError(t, err, "running %s %v", filepath.Base(bin), args)
	}
	return result{out.Bytes(), errb.Bytes(), cmd.ProcessState.ExitCode()}
}

// mustPlane runs bin and requires it to succeed.
func mustPlane(t *testing.T, bin, root, dir string, args ...string) result {
	t.Helper()
	r := runPlane(t, bin, root, dir, args...)
	require.Equal(t, 0, r.code, "%s %v: %s%s", filepath.Base(bin), args, r.stdout, r.stderr)
	return r
}

// TestKillDuringUpgrade kills cp-install with SIGKILL at instants spread over
// an upgrade of a package of 1,500 files (about a third of them
// changed, a tenth removed, some added), runs cp-install recover, and
// requires the plane to be exactly as before the upgrade or exactly as after
// it (DESIGN.md §6, "a crash at any instant leaves the plane wholly before
// or wholly after"), the ledger to verify and to hold, for the killed
// operation, INSTALL_STARTED and exactly one outcome matching the plane (or
// nothing, if it died before INSTALL_STARTED), and the plane to take the
// upgrade afterwards.
func TestKillDuringUpgrade(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	kp := newKillPlane(t)
	killRounds(t, kp, killOp{
		name: "upgrade", did: "upgraded",
		args:  func(root string) []string { return []string{"--root", root, "--archive", kp.archive2} },
		start: "INSTALL_STARTED", done: "INSTALLED", failed: "INSTALL_FAILED",
		events: []string{"INSTALL_STARTED", "CHECKPOINT_CREATED", "INSTALLED"},
		// Two runs of the same upgrade differ in their installed_at.
		afterNorm: true,
	}, rounds)
}

// TestKillDuringRollback is TestKillDuringUpgrade for a rollback: from the
// plane with v0.2.0 installed (the upgrade done), cp-install rollback back to
// the checkpoint taken right after v0.1.0 was installed is killed at
// instants spread over it; after recover the plane must be exactly the
// v0.2.0 state (before) or exactly the checkpoint's (after: its very bytes,
// installed_at included, packages_store/ too), the ledger must verify and
// hold, for the killed operation, CHECKPOINT_CREATED (the automatic
// checkpoint of the state before), ROLLBACK_STARTED and exactly one outcome
// matching the plane (ROLLED_BACK after, ROLLBACK_FAILED before), or, killed
// before ROLLBACK_STARTED, no outcome and the plane before; and the plane
// must take the rollback afterwards.
func TestKillDuringRollback(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	kp := newKillPlane(t)
	// After: the plane as the checkpoint recorded it, byte for byte.
	checkpointed := snapshotPlane(t, kp.base)
	mustPlane(t, kp.install, kp.base, kp.work, "--root", kp.base, "--archive", kp.archive2)
	killRounds(t, kp, killOp{
		name: "rollback", did: "rolled back",
		args: func(root string) []string {
			return []string{"rollback", "--version-id", kp.checkpoint1, "--root", root}
		},
		start: "ROLLBACK_STARTED", done: "ROLLED_BACK", failed: "ROLLBACK_FAILED",
		events: []string{"CHECKPOINT_CREATED", "ROLLBACK_STARTED", "ROLLED_BACK"},
		after:  checkpointed,
	}, rounds)
}

// killPlane is where a kill test starts: a plane with killPkg v0.1.0
// installed and checkpointed, and v0.2.0 of it staged and signed.
type killPlane struct {
	install, pkg string    // the binaries
	work, base   string    // the test's directory; the plane
	archive2     string    // v0.2.0's archive
	checkpoint1  string    // the version_id of the checkpoint of v0.1.0 installed
	began        time.Time // when the test began
}

// newKillPlane makes the plane of a kill test in a temporary directory of
// t: a trusted key, a framework and a spec for lib/kill/**, killPkg v0.1.0
// (1,500 files) installed and checkpointed, v0.2.0 (about a third of them
// changed, a tenth removed, some added) staged and signed.
func newKillPlane(t *testing.T) *killPlane {
	t.Helper()
	install, pkg := planeTools(t)
	kp := &killPlane{install: install, pkg: pkg, work: t.TempDir(), began: time.Now()}
	const files = 1500
	work := kp.work

	// 1. A plane, a trusted key, a framework and a spec for lib/kill/**.
	base := filepath.Join(work, "base")
	kp.base = base
	keys := filepath.Join(work, "keys")
	require.NoError(t, os.Mkdir(keys, 0o755))
	mustPlane(t, pkg, base, work, "keygen", "--name", "ops", "--out", keys)
	mustPlane(t, install, base, work, "bootstrap", "--root", base, "--trust-key", filepath.Join(keys, "ops.pub"))
	writeFile(t, filepath.Join(work, "fmwk.md"), "---\nframework_id: "+killFmwk+"\ntitle: Kill test\nversion: 1.0.0\n---\n"+
		"# Kill test\n- MUST leave the plane wholly before or wholly after a change.\n")
	writeFile(t, filepath.Join(work, "spec", "manifest.yaml"), "spec_id: "+killSpec+"\nframework_id: "+killFmwk+
		"\ntitle: Kill test files\nassets: [\""+killLib+"/**\"]\n")
	mustPlane(t, pkg, base, work, "register-framework", killFmwk, "--src", filepath.Join(work, "fmwk.md"), "--root", base)
	mustPlane(t, pkg, base, work, "register-spec", killSpec, "--src", filepath.Join(work, "spec"), "--root", base)

	// 2. v0.1.0, installed; v0.2.0, staged and signed.
	v1 := map[string]string{}
	for i := range files {
		v1[fmt.Sprintf("%s/d%02d/f%04d.txt", killLib, i/100, i)] = fileBody("v0.1.0", i)
	}
	v2 := map[string]string{}
	for p, body := range v1 {
		var i int
		fmt.Sscanf(path.Base(p), "f%04d.txt", &i)
		switch {
		case i%10 == 9, i/100 == 7: // dropped: a tenth, and all of d07 (its directory goes)
		case i%3 == 0:
			v2[p] = fileBody("v0.2.0", i) // changed
		default:
			v2[p] = body
		}
	}
	for i := range 200 { // added, some in a directory v0.1.0 did not have
		v2[fmt.Sprintf("%s/new/sub%d/n%03d.txt", killLib, i%4, i)] = fileBody("new", i)
	}
	archive1 := buildPackage(t, pkg, base, work, "0.1.0", v1, filepath.Join(keys, "ops.key"))
	mustPlane(t, install, base, work, "--root", base, "--archive", archive1)
	// A checkpoint of v0.1.0 installed: the upgrade's automatic checkpoint
	// then finds its files' blobs stored already, as on a plane that keeps
	// checkpoints, which keeps each round short; the rollback test rolls
	// back to it.
	r := mustPlane(t, install, base, work, "checkpoint", "--root", base, "--label", "v0.1.0 installed")
	var cp struct {
		Result struct {
			VersionID string `json:"version_id"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(r.stdout, &cp), "cp-install checkpoint's output: %s", r.stdout)
	require.NotEmpty(t, cp.Result.VersionID, "cp-install checkpoint's output: %s", r.stdout)
	kp.checkpoint1 = cp.Result.VersionID
	kp.archive2 = buildPackage(t, pkg, base, work, "0.2.0", v2, filepath.Join(keys, "ops.key"))
	return kp
}

// killOp is the cp-install operation a kill test interrupts.
type killOp struct {
	name, did string                     // "upgrade", "upgraded": for messages
	args      func(root string) []string // cp-install's arguments, on the plane at root
	start     string                     // its *_STARTED event
	done      string                     // its outcome when it took effect: the plane is after
	failed    string                     // its outcome when it did not: the plane is before
	events    []string                   // the events of an uninterrupted run; those before start may be all a kill leaves
	afterNorm bool                       // compare with the after state's normalised bytes, not its raw bytes
	after     planeState                 // the after state, if known beforehand: the uninterrupted run must end in it, raw
}

// prelude returns the events the operation records before its start.
func (op killOp) prelude() []string {
	return op.events[:slices.Index(op.events, op.start)]
}

// anchor names what a kill's delay counts from, for op.
func (op killOp) anchor(a anchor) string {
	if a == fromStarted {
		return op.events[0]
	}
	return a.String()
}

// killRounds runs op on a copy of kp's plane uninterrupted, to learn the
// after state and how long each step takes, then kills it rounds times at
// spread-out instants and checks, after cp-install recover, the plane, the
// ledger and the operation's events; a plane left before runs op again, up
// to twice. kp.base must not change. (Not a helper: its messages name
// its own lines.)
func killRounds(t *testing.T, kp *killPlane, op killOp, rounds int) {
	install, work, base, began := kp.install, kp.work, kp.base, kp.began
	setup := time.Since(began)

	// 3. Before: the plane now; after: a scratch copy taken through op to
	// the end, which also times an uninterrupted run.
	baseEntries := showLedger(t, base)
	before := snapshotPlane(t, base)
	scratch := filepath.Join(work, "scratch")
	syncTree(t, base, scratch)
	killed, r, ref := killAfter(t, install, scratch, noKill, 0, op.args(scratch)...)
	require.False(t, killed)
	require.Equal(t, 0, r.code, "the uninterrupted %s: %s%s", op.name, r.stdout, r.stderr)
	require.True(t, ref.started >= 0 && ref.journal >= ref.started && ref.plan >= ref.journal && ref.retired >= ref.plan,
		"the uninterrupted %s's steps were not all seen: %v", op.name, ref)
	spans := [anchors]time.Duration{fromStart: ref.exited, fromStarted: ref.journal - ref.started,
		fromJournal: ref.plan - ref.journal, fromPlan: (ref.retired - ref.plan) * 3 / 2}
	after := snapshotPlane(t, scratch)
	if op.after != nil {
		require.Empty(t, diffStates(op.after, after, false), "the uninterrupted %s does not end in the expected state", op.name)
		after = op.after
	}
	require.NotEmpty(t, diffStates(before, after, true), "the %s changed nothing", op.name)
	events := readOpEvents(t, showLedger(t, scratch)[len(baseEntries):], op)
	require.Equal(t, op.events, events.types, "the uninterrupted %s's events", op.name)
	t.Logf("setup %v (binaries built in %v); the uninterrupted %s: %v; before %d files, after %d files, %d paths differ",
		setup.Round(time.Millisecond), planeToolsBuildTime.Round(time.Millisecond), op.name, ref, len(before), len(after),
		len(diffStates(before, after, true)))

	// 4-6. The rounds.
	prelude := op.prelude()
	var nBefore, nAfter, nNoStart, nCompleted, again int
	againStarted := false
	for round := range rounds {
		// A quarter of the rounds kill at delays spread from the start to
		// 1.1 times the uninterrupted run. The timing of a real process
		// varies too much from run to run to aim at its steps that way, so
		// the others count from a step seen on disk, each spread over 1.1
		// times the time to the next step of the uninterrupted run: from
		// the first event in the ledger (the start, the plan, the
		// checkpoint), from the journal's appearance (the journal is
		// written: undone on recovery), and from plan.json's, over 1.5
		// times the time to the journal's retirement (the commit point: the
		// files are moved in, the outcome recorded, the journal retired;
		// finished on recovery; then the tidying after it).
		from, k := anchor(round%int(anchors)), round/int(anchors)
		n := (rounds - int(from) + int(anchors) - 1) / int(anchors) // rounds of this kind
		frac := 0.5
		if n > 1 {
			frac = float64(k) / float64(n-1)
		}
		delay := time.Duration(float64(spans[from]) * 1.1 * frac)
		how := fmt.Sprintf("%v after %v", delay.Round(time.Millisecond), op.anchor(from))
		roundBegan := time.Now()
		// Each round starts from an exact copy of the base plane.
		dir := filepath.Join(work, "plane")
		syncTree(t, base, dir)
		copied := time.Since(roundBegan)

		killed, out, ph := killAfter(t, install, dir, from, delay, op.args(dir)...)
		if !killed {
			nCompleted++
			if out.code != 0 {
				t.Errorf("round %d: the %s finished before the kill (%s) but failed: %s%s", round, op.name, how, out.stdout, out.stderr)
				continue
			}
		}
		left := leftovers(t, dir)

		recoverBegan := time.Now()
		rec := runPlane(t, install, dir, work, "recover", "--root", dir)
		recoverTook := time.Since(recoverBegan)
		if rec.code != 0 {
			t.Errorf("round %d (killed %s): cp-install recover exited %d: %s%s\nleft by the kill: %s",
				round, how, rec.code, rec.stdout, rec.stderr, left)
			continue
		}
		var recovered struct {
			Result struct {
				Found         bool   `json:"found"`
				RolledForward bool   `json:"rolled_forward"`
				RolledBack    bool   `json:"rolled_back"`
				OpID          string `json:"op_id"`
				Staging       int    `json:"staging_removed"`
			} `json:"result"`
		}
		require.NoError(t, json.Unmarshal(rec.stdout, &recovered), "round %d: recover's output", round)
		if rest := leftovers(t, dir); rest != "nothing" {
			t.Errorf("round %d (killed %s): recover left %s", round, how, rest)
		}

		// The plane: wholly before or wholly after.
		got := snapshotPlane(t, dir)
		dBefore, dAfter := diffStates(before, got, false), diffStates(after, got, op.afterNorm)
		isBefore, isAfter := len(dBefore) == 0, len(dAfter) == 0
		state := "NEITHER"
		switch {
		case isBefore:
			state = "before"
			nBefore++
		case isAfter:
			state = "after"
			nAfter++
		default:
			t.Errorf("round %d (killed %s): the plane is neither before nor after the %s\nleft by the kill: %s\nrecover: %s\n"+
				"differs from before (%d paths): %s\ndiffers from after (%d paths): %s",
				round, how, op.name, left, bytes.TrimSpace(rec.stdout), len(dBefore), headLines(dBefore, 12), len(dAfter), headLines(dAfter, 12))
		}

		// The ledger: verifies; the earlier entries untouched; the killed
		// operation has its start and exactly one outcome, which matches
		// the plane, or (killed before it started) no outcome and at most
		// the events it records before its start.
		v := run(t, nil, "verify", "--root", dir)
		if v.code != 0 {
			t.Errorf("round %d (killed %s): cp-ledger verify exited %d: %s%s", round, how, v.code, v.stdout, v.stderr)
		}
		entries := showLedger(t, dir)
		requireSameHistory(t, baseEntries, entries, fmt.Sprintf("round %d", round))
		ev := readOpEvents(t, entries[len(baseEntries):], op)
		switch {
		case ev.started == 0 && ev.outcomes == 0 && len(ev.types) <= len(prelude) && slices.Equal(ev.types, prelude[:len(ev.types)]):
			nNoStart++
			if !isBefore {
				t.Errorf("round %d (killed %s): no %s of the %s in the ledger (events %v), but the plane is %s",
					round, how, op.start, op.name, ev.types, state)
			}
		case ev.started != 1, len(ev.types) <= len(prelude), !slices.Equal(ev.types[:len(prelude)], prelude), ev.types[len(prelude)] != op.start:
			t.Errorf("round %d (killed %s): the %s's events %v do not open with %v then one %s", round, how, op.name, ev.types, prelude, op.start)
		case ev.outcomes != 1:
			t.Errorf("round %d (killed %s): operation %s has %d outcome entries after recovery, want exactly 1: events %v; plane %s\n"+
				"left by the kill: %s\nrecover: %s", round, how, ev.opID, ev.outcomes, ev.types, state, left, bytes.TrimSpace(rec.stdout))
		case ev.last == op.done && !isAfter:
			t.Errorf("round %d (killed %s): %s is recorded but the plane is %s", round, how, op.done, state)
		case ev.last == op.failed && !isBefore:
			t.Errorf("round %d (killed %s): %s is recorded but the plane is %s", round, how, op.failed, state)
		}
		// (An operation killed after writing its intent but before
		// recording anything is found by recover, by its intent, and has
		// no event to compare with.)
		if recovered.Result.Found && recovered.Result.OpID != "" && ev.opID != "" && recovered.Result.OpID != ev.opID {
			t.Errorf("round %d: recover names operation %s, the ledger %s", round, recovered.Result.OpID, ev.opID)
		}
		t.Logf("round %2d: kill %s: %s (seen: %v); left %s; recover: found %v, forward %v, back %v, staging removed %d; events %v -> %s (round: %v, restore %v, recover %v)",
			round, how, map[bool]string{true: "killed", false: "finished first"}[killed], ph, left,
			recovered.Result.Found, recovered.Result.RolledForward, recovered.Result.RolledBack, recovered.Result.Staging, ev.types, state,
			time.Since(roundBegan).Round(time.Millisecond), copied.Round(time.Millisecond), recoverTook.Round(time.Millisecond))

		// 6. A plane left before takes op: once after a kill that came
		// after its start and once after one that came before, if the
		// rounds give both, else twice.
		if isBefore && again < 2 && (again == 0 || (ev.started > 0) != againStarted || round >= rounds/2) {
			again++
			againStarted = ev.started > 0
			start := time.Now()
			r := runPlane(t, install, dir, work, op.args(dir)...)
			took := time.Since(start)
			if r.code != 0 {
				t.Errorf("round %d: the %s after recovery exited %d: %s%s", round, op.name, r.code, r.stdout, r.stderr)
			} else if d := diffStates(after, snapshotPlane(t, dir), op.afterNorm); len(d) > 0 {
				t.Errorf("round %d: the %s after recovery does not end in the after state (%d paths): %s", round, op.name, len(d), headLines(d, 12))
			}
			if v := run(t, nil, "verify", "--root", dir); v.code != 0 {
				t.Errorf("round %d: cp-ledger verify after the second %s exited %d: %s%s", round, op.name, v.code, v.stdout, v.stderr)
			}
			more := showLedger(t, dir)
			requireSameHistory(t, entries, more, fmt.Sprintf("round %d, second %s", round, op.name))
			if ev2 := readOpEvents(t, more[len(entries):], op); !slices.Equal(ev2.types, op.events) || ev2.opID == ev.opID {
				t.Errorf("round %d: the second %s recorded %v as %s (the killed one was %s)", round, op.name, ev2.types, ev2.opID, ev.opID)
			}
			t.Logf("round %2d: %s again after recovery in %v: after", round, op.did, took.Round(time.Millisecond))
		}
	}
	require.Equal(t, before, snapshotPlane(t, base), "the base plane changed")
	t.Logf("%d rounds in %v: %d ended before (%d of them before %s), %d after (%d finished before the kill); %d %s again",
		rounds, time.Since(began).Round(time.Millisecond), nBefore, nNoStart, op.start, nAfter, nCompleted, again, op.did)
	if nBefore == 0 || nAfter == 0 {
		t.Logf("WARNING: the kills did not land on both sides of the commit point (%d before, %d after): this run proves less than it should", nBefore, nAfter)
	}
	if again == 0 {
		t.Logf("WARNING: no round ended before, so no plane was %s again after recovery", op.did)
	}
}

// fileBody is the text of file i of a package version: small, of varied
// sizes.
func fileBody(version string, i int) string {
	return strings.Repeat(fmt.Sprintf("%s file %d\n", version, i), 1+i%17)
}

func writeFile(t *testing.T, name, body string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(name), 0o755))
	require.NoError(t, os.WriteFile(name, []byte(body), 0o644))
}

// buildPackage makes killPkg at version from files (install path → body) in
// work/src-VERSION, stages it into work/dist-VERSION and signs it; it returns
// the archive's path.
func buildPackage(t *testing.T, pkg, root, work, version string, files map[string]string, key string) string {
	t.Helper()
	src := filepath.Join(work, "src-"+version)
	mustPlane(t, pkg, root, work, "init", killPkg, "--spec", killSpec, "--output", src, "--root", root)
	mpath := filepath.Join(src, "manifest.json")
	b, err := os.ReadFile(mpath)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	m["version"] = version
	b, err = json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(mpath, append(b, '\n'), 0o644))
	for p, body := range files {
		writeFile(t, filepath.Join(src, filepath.FromSlash(p)), body)
	}
	out := filepath.Join(work, "dist-"+version)
	require.NoError(t, os.Mkdir(out, 0o755))
	mustPlane(t, pkg, root, work, "stage", killPkg, "--src", src, "--declare", "--out", out, "--root", root)
	archive := filepath.Join(out, killPkg+".tar.gz")
	mustPlane(t, pkg, root, work, "sign", "--archive", archive, "--key", key)
	return archive
}

// phases is when the steps of an install or rollback became visible on
// disk, since the process started; -1 for a step not seen.
type phases struct {
	started time.Duration // HO3's ledger grew: INSTALL_STARTED (a rollback: its CHECKPOINT_CREATED)
	journal time.Duration // _journal appeared: the atomic apply began
	plan    time.Duration // _journal/plan.json appeared: the commit point
	retired time.Duration // _journal went away again
	exited  time.Duration
}

func (p phases) String() string {
	f := func(d time.Duration) string {
		if d < 0 {
			return "-"
		}
		return d.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("started %s, journal %s, plan %s, retired %s, exited %s", f(p.started), f(p.journal), f(p.plan), f(p.retired), f(p.exited))
}

// anchor is what a kill's delay counts from.
type anchor int

const (
	fromStart   anchor = iota // the process started
	fromStarted               // the operation's first event reached the ledger (killOp.anchor names it)
	fromJournal               // the journal appeared: the atomic apply
	fromPlan                  // plan.json appeared: the commit point; the rest is rolled forward
	anchors                   // how many there are
	noKill      = anchors
)

func (a anchor) String() string {
	return [...]string{"the start", "INSTALL_STARTED", "the journal", "plan.json", "never"}[a]
}

// killAfter starts cp-install (bin) on the plane at root with args, and
// kills it with SIGKILL delay after the anchor, unless it finishes first.
// Meanwhile it polls the plane to see its steps. It reports whether the kill
// ended it.
func killAfter(t *testing.T, bin, root string, from anchor, delay time.Duration, args ...string) (bool, result, phases) {
	t.Helper()
	ledgerPath := filepath.Join(root, "ledger", "governance.jsonl")
	fi, err := os.Stat(ledgerPath)
	require.NoError(t, err)
	size0 := fi.Size()
	cmd := planeCmd(bin, root, filepath.Dir(root), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	ph := phases{-1, -1, -1, -1, -1}
	began := time.Now()
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	startedSeen, journalSeen, planSeen := make(chan struct{}), make(chan struct{}), make(chan struct{})
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() { // the watcher: polls until stop
		defer close(stopped)
		jdir, plan := filepath.Join(root, "_journal"), filepath.Join(root, "_journal", "plan.json")
		for {
			select {
			case <-stop:
				return
			default:
			}
			now := time.Since(began)
			if ph.started < 0 {
				if fi, err := os.Stat(ledgerPath); err == nil && fi.Size() > size0 {
					ph.started = now
					close(startedSeen)
				}
			}
			_, jerr := os.Lstat(jdir)
			switch {
			case jerr == nil && ph.journal < 0:
				ph.journal = now
				close(journalSeen)
			case jerr != nil && ph.journal >= 0 && ph.retired < 0:
				ph.retired = now
			}
			if ph.journal >= 0 && ph.plan < 0 {
				if _, err := os.Lstat(plan); err == nil {
					ph.plan = now
					close(planSeen)
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	var at chan struct{}
	switch from {
	case fromStart:
		at = make(chan struct{})
		close(at)
	case fromStarted:
		at = startedSeen
	case fromJournal:
		at = journalSeen
	case fromPlan:
		at = planSeen
	}
	select {
	case <-done:
	case <-at:
		timer := time.NewTimer(delay)
		select {
		case <-done:
		case <-timer.C:
			cmd.Process.Kill() // fails only if it has just exited
			<-done
		}
		timer.Stop()
	}
	ph.exited = time.Since(began)
	close(stop)
	<-stopped
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
	return killed, result{out.Bytes(), errb.Bytes(), cmd.ProcessState.ExitCode()}, ph
}

// syncTree makes dst (absent or not) an exact copy of the directory src:
// the same directories and regular files, the same bytes and permission
// bits, nothing else. It rewrites only what differs, since creating files is
// what costs most here, and then checks the whole of dst against src.
func syncTree(t *testing.T, src, dst string) {
	t.Helper()
	type dir struct {
		path string
		mode fs.FileMode
	}
	var dirs []dir
	want := map[string]bool{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		want[rel] = true
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		have, herr := os.Lstat(to)
		switch {
		case d.IsDir():
			dirs = append(dirs, dir{to, info.Mode().Perm()})
			if herr == nil && !have.IsDir() {
				if err := os.Remove(to); err != nil {
					return err
				}
				herr = fs.ErrNotExist
			}
			if herr != nil {
				return os.Mkdir(to, 0o700)
			}
			return os.Chmod(to, 0o700|have.Mode().Perm()) // writable until the end
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if herr == nil && have.Mode().IsRegular() && have.Size() == int64(len(b)) {
				if old, err := os.ReadFile(to); err == nil && bytes.Equal(old, b) {
					return os.Chmod(to, info.Mode().Perm())
				}
			}
			if herr == nil {
				if err := os.RemoveAll(to); err != nil {
					return err
				}
			}
			if err := os.WriteFile(to, b, 0o600); err != nil {
				return err
			}
			return os.Chmod(to, info.Mode().Perm())
		default:
			return fmt.Errorf("%s is a %v: not copied", p, d.Type())
		}
	})
	require.NoError(t, err)
	// What src does not have goes.
	var extra []string
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dst, p)
		if err != nil {
			return err
		}
		if !want[rel] {
			extra = append(extra, p)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	require.NoError(t, err)
	for _, p := range extra {
		require.NoError(t, os.RemoveAll(p))
	}
	for i := len(dirs) - 1; i >= 0; i-- { // deepest first, in case one is read-only
		require.NoError(t, os.Chmod(dirs[i].path, dirs[i].mode))
	}
	require.Equal(t, treeOf(t, src), treeOf(t, dst), "%s is not a copy of %s", dst, src)
	bindKeys(t, dst)
}

// treeOf describes every directory and regular file under root, with its
// mode and (files) SHA-256, by slash path.
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(h[:])
		}
		tree[filepath.ToSlash(rel)] = desc
		return nil
	})
	require.NoError(t, err)
	return tree
}

// planeFile is one regular file of a plane: its permission bits, the
// SHA-256 of its bytes, and of its normalised bytes (see snapshotPlane).
type planeFile struct {
	mode      fs.FileMode
	raw, norm [32]byte
}

// planeState is a plane's files by slash path.
type planeState map[string]planeFile

// snapshotPlane records every regular file of the plane at root, with its
// mode, except what an upgrade may change whichever way it ends: HO3's
// ledger/ (it grows with events), versions/ (checkpoints are taken before the
// apply), _staging/, _journal* and registries/.lock. Directories are not
// recorded: a crash may leave an empty one, which nothing counts.
//
// The normalised bytes blank what differs between two runs of the same
// upgrade: the installed_at of killPkg's rows in registries/*.csv and of its
// receipt.
func snapshotPlane(t *testing.T, root string) planeState {
	t.Helper()
	s := planeState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		first, _, _ := strings.Cut(rel, "/")
		if first == "ledger" || first == "versions" || first == "_staging" || strings.HasPrefix(first, "_journal") || rel == "registries/.lock" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: a %v in the plane", rel, d.Type())
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f := planeFile{mode: info.Mode().Perm(), raw: sha256.Sum256(b)}
		f.norm = f.raw
		switch {
		case path.Dir(rel) == "registries" && path.Ext(rel) == ".csv":
			n, err := blankCSV(b)
			if err != nil {
				return fmt.Errorf("%s: %v", rel, err)
			}
			f.norm = sha256.Sum256(n)
		case rel == "installed/"+killPkg+"/receipt.json":
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				return fmt.Errorf("%s: %v", rel, err)
			}
			m["installed_at"] = ""
			n, err := json.Marshal(m)
			if err != nil {
				return err
			}
			f.norm = sha256.Sum256(n)
		}
		s[rel] = f
		return nil
	})
	require.NoError(t, err)
	return s
}

// blankCSV returns a registry with the installed_at of killPkg's rows
// blanked.
func blankCSV(b []byte) ([]byte, error) {
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(rows) == 0 {
		return b, err
	}
	at, pkg := slices.Index(rows[0], "installed_at"), slices.Index(rows[0], "package_id")
	if at < 0 || pkg < 0 {
		return b, nil
	}
	for _, r := range rows[1:] {
		if r[pkg] == killPkg {
			r[at] = ""
		}
	}
	var out bytes.Buffer
	w := csv.NewWriter(&out)
	if err := w.WriteAll(rows); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// diffStates lists how got differs from want, comparing normalised bytes if
// norm, else raw bytes; modes always.
func diffStates(want, got planeState, norm bool) []string {
	sum := func(f planeFile) string {
		h := f.raw
		if norm {
			h = f.norm
		}
		return fmt.Sprintf("%04o %s", uint32(f.mode), hex.EncodeToString(h[:6]))
	}
	var d []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			d = append(d, p+": missing (want "+sum(w)+")")
		case sum(g) != sum(w):
			d = append(d, p+": "+sum(g)+", want "+sum(w))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			d = append(d, p+": unexpected ("+sum(g)+")")
		}
	}
	slices.Sort(d)
	return d
}

func headLines(lines []string, n int) string {
	if len(lines) > n {
		return "\n  " + strings.Join(lines[:n], "\n  ") + fmt.Sprintf("\n  ... and %d more", len(lines)-n)
	}
	return "\n  " + strings.Join(lines, "\n  ")
}

// leftovers describes what an interrupted cp-install left beside the plane's
// state: the journal and what it holds, retired journals, extraction
// directories. "nothing" if none.
func leftovers(t *testing.T, root string) string {
	t.Helper()
	var parts []string
	jdir := filepath.Join(root, "_journal")
	if _, err := os.Lstat(jdir); err == nil {
		var have []string
		for _, f := range []string{"meta.json", "meta.json.tmp", "plan.json", "plan.json.tmp"} {
			if _, err := os.Lstat(filepath.Join(jdir, f)); err == nil {
				have = append(have, f)
			}
		}
		for _, d := range []string{"new", "old"} {
			if es, err := os.ReadDir(filepath.Join(jdir, d)); err == nil {
				have = append(have, fmt.Sprintf("%s/ %d", d, len(es)))
			}
		}
		parts = append(parts, "_journal{"+strings.Join(have, ", ")+"}")
	}
	es, err := os.ReadDir(root)
	require.NoError(t, err)
	for _, e := range es {
		if strings.HasPrefix(e.Name(), "_journal.done-") {
			parts = append(parts, e.Name())
		}
	}
	if es, err := os.ReadDir(filepath.Join(root, "_staging")); err == nil {
		for _, e := range es {
			if strings.HasPrefix(e.Name(), ".cp-install-") {
				parts = append(parts, "_staging/"+e.Name())
			}
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, " ")
}

// showLedger returns HO3's ledger of the plane at root, read with
// cp-ledger show.
func showLedger(t *testing.T, root string) []entry {
	t.Helper()
	r := run(t, nil, "show", "--root", root)
	require.Equal(t, 0, r.code, "cp-ledger show: %s%s", r.stdout, r.stderr)
	var entries []entry
	sc := bufio.NewScanner(bytes.NewReader(r.stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e entry
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e), "cp-ledger show line %d", len(entries))
		e.line = slices.Clone(sc.Bytes())
		entries = append(entries, e)
	}
	require.NoError(t, sc.Err())
	return entries
}

// requireSameHistory requires got to extend want: its first len(want)
// entries are want's.
func requireSameHistory(t *testing.T, want, got []entry, who string) {
	t.Helper()
	require.GreaterOrEqual(t, len(got), len(want), "%s: entries lost from the ledger", who)
	for i := range want {
		require.Equal(t, want[i].EntryHash, got[i].EntryHash, "%s: ledger entry %d changed", who, i)
	}
}

// opEvents is one operation's entries in a ledger.
type opEvents struct {
	opID     string
	types    []string
	started  int    // start entries (INSTALL_STARTED, ROLLBACK_STARTED)
	outcomes int    // outcome entries (INSTALLED and INSTALL_FAILED, ROLLED_BACK and ROLLBACK_FAILED)
	last     string // the last outcome's type
}

// readOpEvents reads entries (all of one operation, op, which it requires)
// and returns their event types.
func readOpEvents(t *testing.T, entries []entry, op killOp) opEvents {
	t.Helper()
	var ev opEvents
	for _, e := range entries {
		id, _ := e.Metadata["op_id"].(string)
		require.NotEmpty(t, id, "entry %d (%s) has no op_id", e.Seq, e.EventType)
		if ev.opID == "" {
			ev.opID = id
		}
		require.Equal(t, ev.opID, id, "entry %d (%s) belongs to another operation", e.Seq, e.EventType)
		typ := e.EventType
		if e.Metadata["recovered"] == true {
			typ += "(recovered)" // recorded by cp-install recover
		}
		ev.types = append(ev.types, typ)
		switch e.EventType {
		case op.done, op.failed:
			ev.outcomes++
			ev.last = e.EventType
		case op.start:
			ev.started++
		case "CHECKPOINT_CREATED":
		default:
			t.Errorf("entry %d: unexpected event %s in a %s", e.Seq, e.EventType, op.name)
		}
	}
	return ev
}

// bindKeys moves the binding of the copied plane's key directory (under the
// tools' HOME) to dst: a plane's keys serve one directory (plane.KeyRoot),
// and the copy is the one the tools work on next.
func bindKeys(t *testing.T, dst string) {
	t.Helper()
	tr, err := plane.ReadTier(dst)
	if err != nil || tr.PlaneName == "" {
		return // not a plane, or one without keys
	}
	real, err := filepath.EvalSymlinks(dst)
	require.NoError(t, err)
	dir := filepath.Join(home, ".config", "control-plane", tr.PlaneName)
	require.NoError(t, os.WriteFile(filepath.Join(dir, plane.RootFile), []byte(real+"\n"), 0o600))
}
