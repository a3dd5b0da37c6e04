package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Environment of the helper process (see TestHelperProcess).
const (
	envRoot   = "REGISTRY_TEST_ROOT"
	envAction = "REGISTRY_TEST_ACTION"
	envWriter = "REGISTRY_TEST_WRITER"
)

// TestHelperProcess is not a test: the tests below re-run the test binary
// with envAction set to get a second writer in its own process.
func TestHelperProcess(t *testing.T) {
	root, action := os.Getenv(envRoot), os.Getenv(envAction)
	if root == "" {
		t.Skip("helper process only")
	}
	switch action {
	case "append":
		lockTimeout = contendedTimeout
		w, _ := strconv.Atoi(os.Getenv(envWriter))
		for i := range 25 {
			if err := appendRow(root, fmt.Sprintf("lib/w%d/f%02d.py", w, i)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	case "crash-written", "crash-renamed":
		testHook = func(point, file string) {
			if "crash-"+point == action {
				os.Exit(42) // no deferred cleanup, no unlock: as if killed
			}
		}
		err := UpdateMany(ctx, root, []Table{Ownership, Packages}, func(cur map[string][]Row) (map[string][]Row, error) {
			return map[string][]Row{
				Ownership.File: append(cur[Ownership.File], own("lib/new.py", "PKG-B-001", 1)),
				Packages.File:  fixtures()[Packages.File],
			}, nil
		})
		fmt.Fprintln(os.Stderr, "did not crash:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// contendedTimeout replaces DefaultLockTimeout while 8 writers loop on the
// lock: polling is not fair, so on a loaded machine one writer can wait out
// all the others' 199 updates. These tests check exclusion, not latency.
const contendedTimeout = 2 * time.Minute

func helper(t *testing.T, root, action string, writer int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envRoot+"="+root, envAction+"="+action, envWriter+"="+strconv.Itoa(writer))
	cmd.Stderr = os.Stderr
	return cmd
}

// appendRow adds one ownership row in its own Update.
func appendRow(root, path string) error {
	return Update(ctx, root, Ownership, func(rows []Row) ([]Row, error) {
		return append(rows, own(path, "PKG-A-001", 1)), nil
	})
}

func requireRows(t *testing.T, root string, tb Table, n int) []Row {
	t.Helper()
	rows, err := Read(root, tb)
	require.NoError(t, err)
	require.Len(t, rows, n)
	return rows
}

func TestConcurrentProcesses(t *testing.T) {
	root := newPlane(t)
	var cmds []*exec.Cmd
	for w := range 8 {
		cmd := helper(t, root, "append", w)
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	var errs []error
	for _, cmd := range cmds {
		errs = append(errs, cmd.Wait()) // all of them, before TempDir goes
	}
	for _, err := range errs {
		require.NoError(t, err)
	}
	rows := requireRows(t, root, Ownership, 200)
	for i := 1; i < len(rows); i++ {
		require.Less(t, rows[i-1]["path"], rows[i]["path"], "sorted, no duplicates")
	}
	requireNoTemps(t, root)
}

// TestConcurrentGoroutines: each Update opens its own lock description, so
// writers in one process exclude each other too.
func TestConcurrentGoroutines(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = contendedTimeout
	root := newPlane(t)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := range 8 {
		wg.Go(func() {
			for i := range 25 {
				errs <- appendRow(root, fmt.Sprintf("lib/g%d/f%02d.py", w, i))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	requireRows(t, root, Ownership, 200)
}

// TestUpdateRefusals covers every check of fn's result: nothing is written.
func TestUpdateRefusals(t *testing.T) {
	good := func() Row { return own("lib/a.py", "PKG-A-001", 1) }
	cases := []struct {
		name string
		rows []Row
		msg  string
	}{
		{"unknown column", []Row{withField(good(), "owner", "x")}, `rows[0]: unknown column "owner"`},
		{"missing column", []Row{func() Row { r := good(); delete(r, "size"); return r }()}, `rows[0]: missing column "size"`},
		{"empty key", []Row{good(), withField(good(), "path", "")}, "rows[1]: path \"\": path: empty primary key"},
		{"duplicate key", []Row{good(), own("lib/b.py", "PKG-A-001", 1), good()}, `rows[2]: duplicate path "lib/a.py" (also rows[0])`},
		{"absolute path", []Row{withField(good(), "path", "/etc/passwd")}, "is absolute"},
		{"dot-dot path", []Row{withField(good(), "path", "lib/../../x")}, ".. element"},
		{"newline in field", []Row{withField(good(), "classification", "a\nb")}, `classification: contains '\n'`},
		{"CR in field", []Row{withField(good(), "classification", "a\rb")}, `classification: contains '\r'`},
		{"NUL in field", []Row{withField(good(), "path", "lib/a\x00.py")}, `path: contains '\x00'`},
		{"invalid UTF-8", []Row{withField(good(), "classification", "\xff")}, "not valid UTF-8"},
		{"bad hash", []Row{withField(good(), "sha256", "md5:x")}, "sha256:"},
		{"local time", []Row{withField(good(), "installed_at", "2026-01-02T04:04:05+01:00")}, "installed_at:"},
		{"nil row", []Row{nil}, `missing column "path"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := newPlane(t)
			require.NoError(t, appendRow(root, "lib/keep.py"))
			before := readFile(t, root, Ownership)
			err := Update(ctx, root, Ownership, func([]Row) ([]Row, error) { return tc.rows, nil })
			requireError(t, err, CodeInvalid, "registries/file_ownership.csv", 0, "refusing to write")
			require.Contains(t, err.Error(), tc.msg)
			require.Equal(t, before, readFile(t, root, Ownership), "nothing written")
			requireNoTemps(t, root)
		})
	}
}

func TestUpdateFnErrorWritesNothing(t *testing.T) {
	root := newPlane(t)
	require.NoError(t, appendRow(root, "lib/keep.py"))
	before := readFile(t, root, Ownership)
	boom := errors.New("boom")
	err := Update(ctx, root, Ownership, func(rows []Row) ([]Row, error) { return nil, boom })
	require.ErrorIs(t, err, boom)
	require.Equal(t, before, readFile(t, root, Ownership))
}

func TestUpdateSeesLatestAndDeletes(t *testing.T) {
	root := newPlane(t)
	require.NoError(t, appendRow(root, "lib/a.py"))
	require.NoError(t, appendRow(root, "lib/b.py"))
	require.NoError(t, Update(ctx, root, Ownership, func(rows []Row) ([]Row, error) {
		require.Len(t, rows, 2)
		return rows[1:], nil
	}))
	require.Equal(t, "lib/b.py", requireRows(t, root, Ownership, 1)[0]["path"])
	require.NoError(t, Update(ctx, root, Ownership, func([]Row) ([]Row, error) { return nil, nil }))
	requireRows(t, root, Ownership, 0)
}

// TestUpdateUnchanged: an update that changes nothing leaves the file alone.
func TestUpdateUnchanged(t *testing.T) {
	root := newPlane(t)
	require.NoError(t, appendRow(root, "lib/a.py"))
	path := filepath.Join(root, Dir, Ownership.File)
	before, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, Update(ctx, root, Ownership, func(rows []Row) ([]Row, error) { return rows, nil }))
	after, err := os.Stat(path)
	require.NoError(t, err)
	require.True(t, os.SameFile(before, after), "file replaced although unchanged")
}

// TestUpdateRefusesInvalidFile: a corrupt registry is never "repaired" by a
// writer that did not see it.
func TestUpdateRefusesInvalidFile(t *testing.T) {
	root := newPlane(t)
	writeFile(t, root, Specs, "spec_id\n")
	called := false
	err := Update(ctx, root, Specs, func(rows []Row) ([]Row, error) { called = true; return rows, nil })
	requireError(t, err, CodeInvalid, "registries/specs_registry.csv", 1, "missing column")
	require.False(t, called)
}

func TestUpdateMany(t *testing.T) {
	root := newPlane(t)
	fx := fixtures()
	require.NoError(t, UpdateMany(ctx, root, []Table{Ownership, Packages}, func(cur map[string][]Row) (map[string][]Row, error) {
		require.Equal(t, map[string][]Row{Ownership.File: nil, Packages.File: nil}, cur)
		return map[string][]Row{Ownership.File: fx[Ownership.File], Packages.File: fx[Packages.File]}, nil
	}))
	requireRows(t, root, Ownership, 3)
	requireRows(t, root, Packages, 2)

	// A table left out of the result is left alone.
	require.NoError(t, UpdateMany(ctx, root, []Table{Ownership, Packages}, func(cur map[string][]Row) (map[string][]Row, error) {
		return map[string][]Row{Packages.File: cur[Packages.File][:1]}, nil
	}))
	requireRows(t, root, Ownership, 3)
	requireRows(t, root, Packages, 1)

	// One bad table: neither is written.
	before := readFile(t, root, Ownership)
	err := UpdateMany(ctx, root, []Table{Ownership, Packages}, func(cur map[string][]Row) (map[string][]Row, error) {
		return map[string][]Row{Ownership.File: nil, Packages.File: {withField(fx[Packages.File][0], "status", "x")}}, nil
	})
	requireError(t, err, CodeInvalid, "registries/packages_state.csv", 0, "status:")
	require.Equal(t, before, readFile(t, root, Ownership))

	// Rows for a table that was not locked and read: refused.
	err = UpdateMany(ctx, root, []Table{Ownership}, func(cur map[string][]Row) (map[string][]Row, error) {
		return map[string][]Row{Ownership.File: nil, Specs.File: nil}, nil
	})
	require.ErrorContains(t, err, "specs_registry.csv, which it did not lock and read")
	require.Equal(t, before, readFile(t, root, Ownership))

	err = UpdateMany(ctx, root, []Table{Ownership, Ownership}, nil)
	require.ErrorContains(t, err, "named twice")
}

func TestLockTimeout(t *testing.T) {
	root := newPlane(t)
	f, err := os.OpenFile(filepath.Join(root, Dir, ".lock"), os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX))

	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 200 * time.Millisecond
	start := time.Now()
	called := false
	err = Update(ctx, root, Ownership, func(rows []Row) ([]Row, error) { called = true; return rows, nil })
	requireError(t, err, CodeLockTimeout, "registries/.lock", 0, "still held by another writer after 200ms")
	require.GreaterOrEqual(t, time.Since(start), lockTimeout)
	require.False(t, called)
	require.Equal(t, 10*time.Second, DefaultLockTimeout)

	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	lockTimeout = time.Minute
	err = Update(cctx, root, Ownership, func(rows []Row) ([]Row, error) { return rows, nil })
	require.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_UN))
	require.NoError(t, appendRow(root, "lib/a.py"))
}

func TestUpdateCancelledWritesNothing(t *testing.T) {
	root := newPlane(t)
	cctx, cancel := context.WithCancel(ctx)
	err := Update(cctx, root, Ownership, func(rows []Row) ([]Row, error) {
		cancel()
		return append(rows, own("lib/a.py", "PKG-A-001", 1)), nil
	})
	require.ErrorIs(t, err, context.Canceled)
	requireRows(t, root, Ownership, 0)
}

func requireNoTemps(t *testing.T, root string) {
	t.Helper()
	temps, err := filepath.Glob(filepath.Join(root, Dir, tempPrefix+"*"))
	require.NoError(t, err)
	require.Empty(t, temps)
}

// TestLeftoverTemp: a temporary file from a crashed writer is ignored by
// readers and removed by the next writer.
func TestLeftoverTemp(t *testing.T) {
	root := newPlane(t)
	require.NoError(t, appendRow(root, "lib/a.py"))
	stale := filepath.Join(root, Dir, tempPrefix+Ownership.File+"-123456")
	require.NoError(t, os.WriteFile(stale, []byte("path,package_id\ntorn"), 0o600))
	requireRows(t, root, Ownership, 1)
	require.NoError(t, appendRow(root, "lib/b.py"))
	requireRows(t, root, Ownership, 2)
	requireNoTemps(t, root)
}

// TestCrash kills a writer (in its own process, holding the lock) after it
// wrote its temporary files, and after its first rename: every file is
// whole, old or new, and the next writer cleans up.
func TestCrash(t *testing.T) {
	for _, tc := range []struct {
		point              string
		ownership, packges int // rows after the crash
	}{
		{"written", 1, 0},
		{"renamed", 2, 0}, // the first rename happened, the second did not
	} {
		t.Run(tc.point, func(t *testing.T) {
			root := newPlane(t)
			require.NoError(t, appendRow(root, "lib/a.py"))
			before := readFile(t, root, Ownership)
			err := helper(t, root, "crash-"+tc.point, 0).Run()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, 42, ee.ExitCode(), "the helper crashed where asked")

			requireRows(t, root, Ownership, tc.ownership)
			requireRows(t, root, Packages, tc.packges)
			if tc.point == "written" {
				require.Equal(t, before, readFile(t, root, Ownership))
			}
			temps, _ := filepath.Glob(filepath.Join(root, Dir, tempPrefix+"*"))
			require.NotEmpty(t, temps, "the crash left temporary files")

			require.NoError(t, appendRow(root, "lib/c.py"), "the kernel released the crashed writer's lock")
			requireRows(t, root, Ownership, tc.ownership+1)
			requireNoTemps(t, root)
		})
	}
}
