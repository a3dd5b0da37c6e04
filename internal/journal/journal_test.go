package journal

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tree is a whole-tree snapshot: every directory and regular file under a
// root (the root itself excluded), with its mode and bytes.
type tree map[string]string

func snapshot(t testing.TB, root string) tree {
	t.Helper()
	s := tree{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "stage" {
			return filepath.SkipDir // a caller's staging area: Src files are consumed either way
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			s[rel] = "dir " + fi.Mode().Perm().String()
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s[rel] = "file " + fi.Mode().Perm().String() + " " + string(b)
		default:
			s[rel] = "other " + fi.Mode().String()
		}
		return nil
	})
	require.NoError(t, err)
	return s
}

// diff returns the first difference between two snapshots, or "".
func diff(got, want tree) string {
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		g, gok := got[k]
		w, wok := want[k]
		if gok != wok || g != w {
			short := func(s string, ok bool) string {
				if !ok {
					return "<absent>"
				}
				if len(s) > 40 {
					return s[:40] + "..."
				}
				return s
			}
			return fmt.Sprintf("%s: got %q, want %q", k, short(g, gok), short(w, wok))
		}
	}
	return ""
}

// copyTree copies src's directories and regular files into dst, modes kept.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			return os.Chmod(out, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, b, 0o600); err != nil {
			return err
		}
		return os.Chmod(out, fi.Mode().Perm())
	})
	require.NoError(t, err)
}

func writeTree(t testing.TB, root string, files map[string]string, mode fs.FileMode) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(data), mode))
		require.NoError(t, os.Chmod(full, mode))
	}
}

func TestApply(t *testing.T) {
	base := map[string]string{"a.txt": "alpha", "dir/b.txt": "beta", "dir/c.txt": "gamma"}
	tests := []struct {
		name    string
		changes []Change
		want    map[string]string // path → "mode data"; absent means removed
	}{
		{
			name:    "create with parent dirs",
			changes: []Change{{Path: "x/y/z/new.md", Data: []byte("new"), Mode: 0o444}},
			want:    map[string]string{"x/y/z/new.md": "-r--r--r-- new"},
		},
		{
			name:    "replace keeps the new mode",
			changes: []Change{{Path: "dir/b.txt", Data: []byte("BETA"), Mode: 0o444}},
			want:    map[string]string{"dir/b.txt": "-r--r--r-- BETA"},
		},
		{
			name:    "same bytes, new mode",
			changes: []Change{{Path: "a.txt", Data: []byte("alpha"), Mode: 0o600}},
			want:    map[string]string{"a.txt": "-rw------- alpha"},
		},
		{
			name:    "remove",
			changes: []Change{{Path: "dir/c.txt", Remove: true}, {Path: "absent", Remove: true}},
			want:    map[string]string{"dir/c.txt": ""},
		},
		{
			name: "mixed",
			changes: []Change{
				{Path: "a.txt", Remove: true},
				{Path: "dir/b.txt", Data: []byte{}, Mode: 0o644},
				{Path: "dir/sub/d.txt", Data: []byte("delta"), Mode: 0o755},
			},
			want: map[string]string{"a.txt": "", "dir/b.txt": "-rw-r--r-- ", "dir/sub/d.txt": "-rwxr-xr-x delta"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, base, 0o644)
			require.NoError(t, Apply(root, tt.changes, Options{}))
			for p, w := range tt.want {
				full := filepath.Join(root, filepath.FromSlash(p))
				fi, err := os.Stat(full)
				if w == "" {
					require.True(t, errors.Is(err, fs.ErrNotExist), "%s should be removed", p)
					continue
				}
				require.NoError(t, err)
				b, err := os.ReadFile(full)
				require.NoError(t, err)
				require.Equal(t, w, fi.Mode().Perm().String()+" "+string(b), p)
			}
			_, err := os.Lstat(filepath.Join(root, Dir))
			require.True(t, errors.Is(err, fs.ErrNotExist), "journal removed")
			entries, _ := os.ReadDir(root)
			for _, e := range entries {
				require.False(t, strings.HasPrefix(e.Name(), Dir), "leftover %s", e.Name())
			}
			before := snapshot(t, root)
			out, err := Recover(root, nil)
			require.NoError(t, err)
			require.Equal(t, Outcome{}, out, "Recover on a clean root is a no-op")
			require.Empty(t, diff(snapshot(t, root), before))
		})
	}
}

func TestApplyRefuses(t *testing.T) {
	tests := []struct {
		name    string
		changes []Change
	}{
		{"absolute", []Change{{Path: "/etc/passwd", Data: []byte("x"), Mode: 0o644}}},
		{"dotdot", []Change{{Path: "../x", Data: []byte("x"), Mode: 0o644}}},
		{"unclean", []Change{{Path: "a//b", Data: []byte("x"), Mode: 0o644}}},
		{"dot", []Change{{Path: ".", Remove: true}}},
		{"backslash", []Change{{Path: `a\b`, Data: []byte("x"), Mode: 0o644}}},
		{"journal", []Change{{Path: "_journal/plan.json", Data: []byte("x"), Mode: 0o644}}},
		{"retired journal", []Change{{Path: "_journal.done-1/x", Remove: true}}},
		{"duplicate", []Change{{Path: "a", Remove: true}, {Path: "a", Data: []byte("x"), Mode: 0o644}}},
		{"nested", []Change{{Path: "a", Remove: true}, {Path: "a/b", Data: []byte("x"), Mode: 0o644}}},
		{"nil data", []Change{{Path: "a", Mode: 0o644}}},
		{"data and remove", []Change{{Path: "a", Data: []byte("x"), Remove: true}}},
		{"zero mode", []Change{{Path: "a", Data: []byte("x")}}},
		{"setuid", []Change{{Path: "a", Data: []byte("x"), Mode: 0o644 | fs.ModeSetuid}}},
		{"directory target", []Change{{Path: "d", Remove: true}}},
		{"file parent", []Change{{Path: "f/x", Data: []byte("x"), Mode: 0o644}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
			writeTree(t, root, map[string]string{"f": "file"}, 0o644)
			before := snapshot(t, root)
			err := Apply(root, tt.changes, Options{})
			var je *Error
			require.ErrorAs(t, err, &je)
			require.Equal(t, "INVALID_INPUT", je.Code())
			require.Empty(t, diff(snapshot(t, root), before))
		})
	}
}

func TestPendingAndCorrupt(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"a": "alpha"}, 0o644)
	require.NoError(t, os.MkdirAll(filepath.Join(root, Dir), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(root, Dir, "plan.json"), []byte(`{"version":1,"changes":[{"n":0,`), 0o600))
	before := snapshot(t, root)

	err := Apply(root, []Change{{Path: "a", Remove: true}}, Options{})
	var je *Error
	require.ErrorAs(t, err, &je)
	require.Equal(t, "JOURNAL_PENDING", je.Code())

	out, err := Recover(root, nil)
	require.ErrorAs(t, err, &je)
	require.Equal(t, "JOURNAL_CORRUPT", je.Code())
	require.True(t, out.Found)
	require.Empty(t, diff(snapshot(t, root), before), "a corrupt journal touches nothing")

	// A plan that is valid JSON but names a path outside the root.
	plan := `{"version":1,"changes":[{"n":0,"path":"../a","op":"remove","existed":false}]}`
	require.NoError(t, os.WriteFile(filepath.Join(root, Dir, "plan.json"), []byte(plan), 0o600))
	_, err = Recover(root, nil)
	require.ErrorAs(t, err, &je)
	require.Equal(t, "JOURNAL_CORRUPT", je.Code())
}

// crashFixture is a small change set exercising every kind of change.
func crashFixture(t *testing.T) (root string, changes []Change, before, after tree) {
	t.Helper()
	files := map[string]string{"a": "alpha", "b": "beta", "c": "gamma", "d/e": "epsilon", "keep": "kept", "stage/m": "moved in"}
	changes = []Change{
		{Path: "s/moved", Src: "stage/m", Mode: 0o444},
		{Path: "a", Data: []byte("ALPHA"), Mode: 0o444},
		{Path: "b", Remove: true},
		{Path: "c", Data: []byte("gamma"), Mode: 0o600},
		{Path: "d/e", Remove: true},
		{Path: "x/y/z", Data: []byte("zeta"), Mode: 0o444},
		{Path: "f", Data: []byte{}, Mode: 0o644},
		{Path: "nope", Remove: true},
	}
	ref := t.TempDir()
	writeTree(t, ref, files, 0o644)
	before = snapshot(t, ref)
	require.NoError(t, Apply(ref, changes, Options{}))
	after = snapshot(t, ref)
	root = t.TempDir()
	writeTree(t, root, files, 0o644)
	return root, changes, before, after
}

// crashAfter makes the k-th step boundary (counting from 0) crash, and
// records the steps passed.
func crashAfter(k int, steps *[]string) func(string) bool {
	i := 0
	return func(step string) bool {
		*steps = append(*steps, step)
		i++
		return i-1 == k
	}
}

func TestCrashAtEveryStep(t *testing.T) {
	t.Cleanup(func() { crashAt = nil })
	for k := 0; ; k++ {
		root, changes, before, after := crashFixture(t)
		var steps []string
		crashAt = crashAfter(k, &steps)
		err := Apply(root, changes, Options{})
		crashAt = nil
		if err == nil {
			require.Greater(t, k, 5, "the hook saw too few steps: %v", steps)
			require.Empty(t, diff(snapshot(t, root), after))
			break
		}
		require.ErrorIs(t, err, errCrash)
		committed := false
		for _, s := range steps {
			committed = committed || s == "plan"
		}
		crashed := steps[len(steps)-1]

		// Crash recovery itself at each of its steps, then recover again.
		state := t.TempDir()
		copyTree(t, root, state)
		for j := 0; ; j++ {
			r := t.TempDir()
			copyTree(t, state, r)
			var rsteps []string
			crashAt = crashAfter(j, &rsteps)
			_, rerr := Recover(r, nil)
			crashAt = nil
			out, err := Recover(r, nil)
			require.NoError(t, err, "crash at %s, recover crash at %v", crashed, rsteps)
			got := snapshot(t, r)
			want := before
			if committed {
				want = after
			}
			require.Empty(t, diff(got, want), "crash at %s (committed %v), recover crash at %v: %+v", crashed, committed, rsteps, out)
			if rerr == nil {
				break
			}
			require.ErrorIs(t, rerr, errCrash)
		}
	}
}

func TestRollBackWhenForwardImpossible(t *testing.T) {
	t.Cleanup(func() { crashAt = nil })
	root, changes, before, _ := crashFixture(t)
	crashAt = func(step string) bool { return step == "plan" }
	require.ErrorIs(t, Apply(root, changes, Options{}), errCrash)
	crashAt = nil
	require.NoError(t, os.Remove(filepath.Join(root, Dir, "new", "0"))) // new bytes of "a" lost
	out, err := Recover(root, nil)
	require.NoError(t, err)
	require.Equal(t, Outcome{Found: true, RolledBack: true, Paths: len(changes)}, out)
	require.Empty(t, diff(snapshot(t, root), before))
}

// The kill test's change set: 150 replaced, 50 removed, 100 created, 10 KB
// each, with 20 untouched bystanders; the same on every call.
func killFixture() (files map[string]string, changes []Change) {
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func() []byte {
		b := make([]byte, 10<<10)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	files = map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("frameworks/f%03d.md", i)] = string(blob())
	}
	for i := range 20 {
		files[fmt.Sprintf("specs/keep%02d.json", i)] = string(blob())
	}
	for i := range 150 {
		changes = append(changes, Change{Path: fmt.Sprintf("frameworks/f%03d.md", i), Data: blob(), Mode: 0o444})
	}
	for i := 150; i < 200; i++ {
		changes = append(changes, Change{Path: fmt.Sprintf("frameworks/f%03d.md", i), Remove: true})
	}
	for i := range 100 {
		changes = append(changes, Change{Path: fmt.Sprintf("modules/m%d/n%03d.py", i%10, i), Data: blob(), Mode: 0o444})
	}
	return files, changes
}

const childEnv = "JOURNAL_TEST_CHILD_ROOT"

// reported are the steps a child announces on stdout, so that the parent can
// aim its kills at the phases of an Apply.
var reported = map[string]bool{"begin": true, "new": true, "old": true, "plan": true, "apply:synced": true, "retired": true}

// TestKillChild is the child half of TestKillProcess: it runs only when
// re-executed with childEnv set, and announces each reported step.
func TestKillChild(t *testing.T) {
	root := os.Getenv(childEnv)
	if root == "" {
		t.Skip("child process only")
	}
	_, changes := killFixture()
	crashAt = func(step string) bool {
		if reported[step] {
			fmt.Println(step)
		}
		return false
	}
	if err := Apply(root, changes, Options{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func TestKillProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	files, changes := killFixture()
	ref := t.TempDir()
	writeTree(t, ref, files, 0o644)
	before := snapshot(t, ref)
	require.NoError(t, Apply(ref, changes, Options{}))
	after := snapshot(t, ref)

	// run starts a child applying to root and SIGKILLs it once step has been
	// announced ("" for process start) and then delay has passed; a negative
	// delay never kills. It returns whether the child died by the kill and
	// when each step was announced.
	run := func(t *testing.T, root, step string, delay time.Duration) (killed bool, seen map[string]time.Duration) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+root)
		stderr := &strings.Builder{}
		cmd.Stderr = stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, cmd.Start())
		seen = map[string]time.Duration{}
		reached := make(chan struct{})
		if step == "" {
			close(reached)
		}
		lines := make(chan struct{})
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				seen[sc.Text()] = time.Since(start)
				if sc.Text() == step {
					close(reached)
				}
			}
		}()
		if delay >= 0 {
			select {
			case <-reached:
				time.Sleep(delay)
				_ = cmd.Process.Signal(syscall.SIGKILL) // it may have finished already
			case <-lines: // exited without reaching step
			}
		}
		<-lines
		err = cmd.Wait()
		if err == nil {
			return false, seen
		}
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "stderr: %s", stderr)
		ws, ok := ee.Sys().(syscall.WaitStatus)
		require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "child failed: %v: %s", err, stderr)
		return true, seen
	}

	// Time one whole run, so that the kills spread across the child's life on
	// any machine: one at process start, 7 from the journal's creation to the
	// commit point (new and old files), 12 from the commit point to the end
	// (renames, directory fsyncs, retirement).
	root := t.TempDir()
	writeTree(t, root, files, 0o644)
	_, seen := run(t, root, "", -1)
	require.Empty(t, diff(snapshot(t, root), after), "an unkilled child completes")
	for step := range reported {
		require.Contains(t, seen, step)
	}
	type kill struct {
		step  string
		delay time.Duration
	}
	kills := []kill{{"", 0}}
	for i := range 7 {
		kills = append(kills, kill{"begin", (seen["plan"] - seen["begin"]) * time.Duration(i) / 6})
	}
	tail := seen["retired"] - seen["plan"] + 2*time.Millisecond
	for i := range 12 {
		kills = append(kills, kill{"plan", tail * time.Duration(i) / 11})
	}

	var mu sync.Mutex
	counts := map[string]int{}
	count := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		counts[s]++
	}
	t.Run("kills", func(t *testing.T) {
		for _, k := range kills {
			t.Run(fmt.Sprintf("%s+%v", k.step, k.delay.Round(time.Millisecond/10)), func(t *testing.T) {
				t.Parallel() // the children mostly wait for fsync
				root := filepath.Join(t.TempDir(), "plane")
				writeTree(t, root, files, 0o644)
				killed, _ := run(t, root, k.step, k.delay)
				out, err := Recover(root, nil)
				require.NoError(t, err)
				got := snapshot(t, root)
				switch {
				case diff(got, before) == "":
					count("before")
				case diff(got, after) == "":
					count("after")
				default:
					t.Fatalf("killed %v, %+v: neither before (%s) nor after (%s)", killed, out, diff(got, before), diff(got, after))
				}
				if k.step == "plan" && killed {
					require.Empty(t, diff(got, after), "a kill after the commit point ends wholly after: %+v", out)
				}
				switch {
				case !killed:
					count("finished")
				case out.RolledForward:
					count("rolled forward")
				case out.RolledBack:
					count("rolled back")
				default:
					count("no journal")
				}
				require.NoError(t, Apply(root, changes, Options{}), "re-apply")
				require.Empty(t, diff(snapshot(t, root), after), "re-apply")
			})
		}
	})
	t.Logf("full child run: %v; %d kills: %v", seen, len(kills), counts)
}

func BenchmarkApply300(b *testing.B) {
	files, changes := killFixture()
	for i := range b.N {
		b.StopTimer()
		root := filepath.Join(b.TempDir(), strconv.Itoa(i))
		writeTree(b, root, files, 0o644)
		b.StartTimer()
		if err := Apply(root, changes, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMetaCommittedFinish(t *testing.T) {
	t.Cleanup(func() { crashAt = nil })
	root := t.TempDir()
	writeTree(t, root, map[string]string{"a": "alpha"}, 0o644)
	meta := []byte(`{"op":"install"}`)

	// Committed fails: the change is in place, the journal stays, and
	// Recover hands its meta to finish; finish failing keeps it again.
	boom := errors.New("ledger unavailable")
	err := Apply(root, []Change{{Path: "a", Data: []byte("A"), Mode: 0o444}}, Options{Meta: meta, Committed: func() error { return boom }})
	require.ErrorIs(t, err, boom)
	got, err := os.ReadFile(filepath.Join(root, "a"))
	require.NoError(t, err)
	require.Equal(t, "A", string(got))
	_, err = Recover(root, func(Outcome) error { return boom })
	require.ErrorIs(t, err, boom)
	var seen Outcome
	out, err := Recover(root, func(o Outcome) error { seen = o; return nil })
	require.NoError(t, err)
	require.True(t, out.RolledForward)
	require.Equal(t, meta, seen.Meta)
	require.True(t, seen.RolledForward)
	_, err = os.Stat(filepath.Join(root, Dir))
	require.ErrorIs(t, err, fs.ErrNotExist)

	// A crash before the commit point: finish still learns what was meant.
	crashAt = func(step string) bool { return step == "new" }
	err = Apply(root, []Change{{Path: "a", Data: []byte("B"), Mode: 0o444}}, Options{Meta: meta})
	require.ErrorIs(t, err, errCrash)
	crashAt = nil
	seen = Outcome{}
	_, err = Recover(root, func(o Outcome) error { seen = o; return nil })
	require.NoError(t, err)
	require.True(t, seen.RolledBack)
	require.Equal(t, meta, seen.Meta)
	got, err = os.ReadFile(filepath.Join(root, "a"))
	require.NoError(t, err)
	require.Equal(t, "A", string(got))

	// No journal: finish is not called.
	_, err = Recover(root, func(Outcome) error { t.Fatal("finish called without a journal"); return nil })
	require.NoError(t, err)
}

func TestSrcMovedIn(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"stage/x": "staged bytes"}, 0o600)
	require.NoError(t, Apply(root, []Change{{Path: "lib/x", Src: "stage/x", Mode: 0o444}}, Options{}))
	fi, err := os.Stat(filepath.Join(root, "lib/x"))
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o444), fi.Mode().Perm())
	_, err = os.Stat(filepath.Join(root, "stage/x"))
	require.ErrorIs(t, err, fs.ErrNotExist, "a Src file is consumed")

	for name, c := range map[string]Change{
		"missing src":    {Path: "lib/y", Src: "stage/none", Mode: 0o444},
		"src and data":   {Path: "lib/y", Src: "stage/x", Data: []byte("x"), Mode: 0o444},
		"src in journal": {Path: "lib/y", Src: "_journal/x", Mode: 0o444},
		"src is a dir":   {Path: "lib/y", Src: "stage", Mode: 0o444},
	} {
		writeTree(t, root, map[string]string{"stage/x": "again"}, 0o600)
		require.Error(t, Apply(root, []Change{c}, Options{}), name)
	}
}

func FuzzParsePlan(f *testing.F) {
	h := strings.Repeat("ab", 32)
	f.Add([]byte(`{"version":1,"changes":[{"n":0,"path":"a/b","op":"write","mode":"0444","existed":false,"new_sha256":"` + h + `"}]}`))
	f.Add([]byte(`{"version":1,"changes":[{"n":0,"path":"a","op":"remove","existed":true,"old_mode":"0644","old_sha256":"` + h + `"}]}`))
	f.Add([]byte(`{"version":1,"changes":[{"n":0,"path":"../x","op":"write"}]}`))
	f.Add([]byte(`{"version":2,"changes":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePlan(b)
		if err != nil {
			var je *Error
			if !errors.As(err, &je) || je.Code() != "JOURNAL_CORRUPT" {
				t.Fatalf("a bad plan must be JOURNAL_CORRUPT, got %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for i, e := range p.Changes {
			if e.N != i || checkPath(e.Path) != nil || seen[e.Path] {
				t.Fatalf("accepted change %d: %+v", i, e)
			}
			seen[e.Path] = true
			if e.Op == opWrite && (!isHash(e.NewSHA256) || !validMode(e.Mode)) {
				t.Fatalf("accepted write %+v", e)
			}
		}
	})
}
