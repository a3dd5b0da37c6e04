// Package pgtest starts a throwaway PostgreSQL cluster for a test binary:
// initdb and pg_ctl on a temporary directory, listening only on a Unix
// socket there, run as an unprivileged user (nobody, when the tests run
// as root: PostgreSQL refuses to run as root). Each test gets a database
// of its own in it (DB). In CI (CI=true) a missing PostgreSQL fails the
// tests; elsewhere they are skipped, and say so.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// cluster is the running cluster's socket directory, "" when none.
var (
	socketDir string
	skipWhy   string
	dbSeq     atomic.Int64
	// runAs is the user the cluster (and its poolers) run as: nil for
	// the tests' own.
	runAs *syscall.Credential
)

// inheritEnv names the running cluster's socket directory in the
// environment of the processes a test starts.
const inheritEnv = "PGTEST_CLUSTER_DIR"

// User is the cluster's superuser (trust authentication on its socket).
const User = "cp"

// Main starts the cluster, runs the tests and stops it: a test
// package's TestMain. CONTROL_PLANE_TEST_DSN, when set, names a server to
// use instead (a database per test is created in it).
func Main(m *testing.M) { os.Exit(M(m).Run()) }

// M wraps m so that its Run starts the cluster first and stops it after:
// for a TestMain that also does other things (testenv.Main(pgtest.M(m))).
func M(m interface{ Run() int }) interface{ Run() int } { return runner{m} }

type runner struct{ m interface{ Run() int } }

func (r runner) Run() int {
	if os.Getenv("CONTROL_PLANE_TEST_DSN") != "" {
		return r.m.Run()
	}
	// A test binary started by a test of the same package (a helper
	// process, killed at will by crash tests) uses the cluster its parent
	// started rather than starting one more: a helper killed between
	// initdb and its cleanup left a cluster's directory behind in /tmp
	// (~40 MB a time, ~1 GB a run), and a helper killed after pg_ctl
	// start a server.
	if dir := os.Getenv(inheritEnv); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, ".s.PGSQL.5432")); err == nil {
			socketDir = dir
			runAs, _ = clusterUser()
			code := r.m.Run()
			stopPoolers()
			sentinelDone()
			return code
		}
	}
	stop, err := start()
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "pgtest: %v: in CI PostgreSQL is required (.ci/run installs it)\n", err)
			return 1
		}
		skipWhy = err.Error()
		fmt.Fprintf(os.Stderr, "pgtest: SKIPPING the PostgreSQL tests: %v\n", err)
	}
	code := r.m.Run()
	stopPoolers()
	if stop != nil {
		stop()
	}
	sentinelDone()
	return code
}

// binDir finds initdb: on PATH, else in Debian's /usr/lib/postgresql/N/bin.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(ms) > 0 {
		return filepath.Dir(ms[len(ms)-1]), nil
	}
	return "", fmt.Errorf("PostgreSQL not found (no initdb on PATH or in /usr/lib/postgresql/*/bin)")
}

func start() (func(), error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	// Under root the cluster runs as nobody, who must reach its
	// directory: /tmp, whatever TMPDIR says (it may be under /root).
	// The path is short too, as a Unix socket's must be.
	parent := ""
	if os.Geteuid() == 0 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "pgtest-")
	if err != nil {
		return nil, err
	}
	tell("dir " + dir) // removed even if this process dies (sentinel.go)
	cred, err := clusterUser()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	run := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC", "HOME="+dir)
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	cleanup := func() { os.RemoveAll(dir) }
	if err := run("initdb", "-D", data, "-U", User, "--auth=trust", "--no-sync", "-E", "UTF8", "--no-instructions"); err != nil {
		cleanup()
		return nil, err
	}
	// Only the Unix socket; fsync off: a throwaway cluster for tests
	// (the benchmarks run with a durable one); small memory, none of it
	// in /dev/shm (a container's is small), as several test binaries run
	// a cluster each at once.
	// PGTEST_DURABLE=1 keeps fsync on (synchronous_commit is on either
	// way): for benchmarks of durable appends.
	durability := "-c fsync=off -c full_page_writes=off"
	if os.Getenv("PGTEST_DURABLE") == "1" {
		durability = "-c fsync=on -c synchronous_commit=on"
	}
	opts := fmt.Sprintf("-c listen_addresses= -k %s %s -c max_connections=60"+
		" -c shared_buffers=16MB -c dynamic_shared_memory_type=mmap -c max_wal_size=256MB", dir, durability)
	if err := run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start"); err != nil {
		cleanup()
		return nil, err
	}
	// The postmaster's pid, read once, now that pg_ctl has seen it start:
	// the sentinel stops it (SIGQUIT: immediate shutdown) if this process
	// dies without stopping it.
	if b, err := os.ReadFile(filepath.Join(data, "postmaster.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0]); err == nil && pid > 1 {
			tell(fmt.Sprintf("kill QUIT %d", pid))
		}
	}
	socketDir, runAs = dir, cred
	os.Setenv(inheritEnv, dir)
	return func() {
		run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
		cleanup()
	}, nil
}

// clusterUser is the user the cluster runs as: nobody when the tests run
// as root (PostgreSQL refuses root), nil (the tests' own) otherwise.
func clusterUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("running as root and no user nobody to run PostgreSQL as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// serverDSN is the DSN of the cluster's maintenance database.
func serverDSN() string {
	if d := os.Getenv("CONTROL_PLANE_TEST_DSN"); d != "" {
		return d
	}
	return fmt.Sprintf("host=%s user=%s dbname=postgres sslmode=disable", socketDir, User)
}

// Available reports whether a server is running for the tests.
func Available() bool { return socketDir != "" || os.Getenv("CONTROL_PLANE_TEST_DSN") != "" }

// NewDB creates a fresh, empty database and returns its DSN and the
// function that drops it: DB without a testing.TB (a testscript's Setup).
func NewDB() (dsn string, drop func(), err error) {
	if !Available() {
		return "", nil, fmt.Errorf("no PostgreSQL: %s", skipWhy)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverDSN())
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: connecting: %v", err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("pgtest: %v", err)
	}
	cfg, err := pgx.ParseConfig(serverDSN())
	if err != nil {
		return "", nil, err
	}
	return dsnWith(cfg, name), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, serverDSN()); err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	}, nil
}

// DB creates a fresh, empty database for the test and returns its DSN;
// it is dropped when the test ends. Without a server the test is
// skipped (Main has failed the run already in CI).
func DB(t testing.TB) string {
	t.Helper()
	if !Available() {
		t.Skipf("PostgreSQL tests skipped: %s", skipWhy)
	}
	dsn, drop, err := NewDB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return dsn
}

func dsnWith(cfg *pgx.ConnConfig, db string) string {
	parts := []string{"host=" + cfg.Host, "user=" + cfg.User, "dbname=" + db, "sslmode=disable"}
	if cfg.Port != 0 && !strings.HasPrefix(cfg.Host, "/") {
		parts = append(parts, fmt.Sprintf("port=%d", cfg.Port))
	}
	if cfg.Password != "" {
		parts = append(parts, "password="+cfg.Password)
	}
	return strings.Join(parts, " ")
}
