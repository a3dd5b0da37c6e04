package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A throwaway PgBouncer beside the throwaway cluster, for the tests of a
// ledger reached through a pooler (README "A tier's ledger in
// PostgreSQL"): started on first use, one per pool mode, each listening
// only on a Unix socket in a directory of its own, run as the cluster's
// user; stopped by Main. In CI (CI=true) a missing pgbouncer fails the
// test that asks for one; elsewhere it is skipped, and says so.

// Pool modes of PgBouncer that Pooled starts.
const (
	Session     = "session"
	Transaction = "transaction"
)

// poolerPorts are the ports (the sockets' names: .s.PGSQL.PORT) of the
// poolers, one per mode.
var poolerPorts = map[string]int{Session: 6432, Transaction: 6433}

type pooler struct {
	dir  string
	port int
	cmd  *exec.Cmd
	err  error
}

var (
	poolersMu sync.Mutex
	poolers   = map[string]*pooler{}
)

// pgbouncerPath finds pgbouncer: on PATH, else in /usr/sbin (Debian's
// package puts it there, off an unprivileged user's PATH).
func pgbouncerPath() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", fmt.Errorf("PgBouncer not found (no pgbouncer on PATH or in /usr/sbin: apt-get install pgbouncer)")
}

// Pooled returns the DSN of the database dsn (one of DB's) through a
// PgBouncer in pool mode mode (Session or Transaction), started beside
// the cluster on first use. Without a pooler the test is skipped, or,
// in CI, fails.
func Pooled(t testing.TB, dsn, mode string) string {
	t.Helper()
	if !Available() {
		t.Skipf("PostgreSQL tests skipped: %s", skipWhy)
	}
	p, err := PooledDSN(dsn, mode)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v: in CI PgBouncer is required (.ci/run installs it)", err)
		}
		t.Skipf("PgBouncer tests skipped: %v", err)
	}
	return p
}

// PooledDSN is Pooled without a testing.TB (a benchmark's setup).
func PooledDSN(dsn, mode string) (string, error) {
	if socketDir == "" {
		return "", fmt.Errorf("no throwaway cluster to start a pooler beside (CONTROL_PLANE_TEST_DSN names a server: %v)", Available())
	}
	if _, ok := poolerPorts[mode]; !ok {
		return "", fmt.Errorf("pgtest: no pool mode %q", mode)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", err
	}
	poolersMu.Lock()
	defer poolersMu.Unlock()
	p := poolers[mode]
	if p == nil {
		p = startPooler(mode)
		poolers[mode] = p
	}
	if p.err != nil {
		return "", p.err
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", p.dir, p.port, User, cfg.Database), nil
}

func startPooler(mode string) *pooler {
	p := &pooler{port: poolerPorts[mode]}
	bin, err := pgbouncerPath()
	if err != nil {
		p.err = err
		return p
	}
	parent := ""
	if os.Geteuid() == 0 {
		parent = "/tmp" // reachable by nobody; a short socket path
	}
	dir, err := os.MkdirTemp(parent, "pgbouncer-")
	if err != nil {
		p.err = err
		return p
	}
	p.dir = dir
	tell("dir " + dir) // removed even if this process dies (sentinel.go)
	// trust on the pooler's own socket, as on the cluster's; the user
	// must be listed in auth_file all the same. DISCARD ALL (PgBouncer's
	// default, said here) when a session pool's client lets its server
	// connection go: the next client's prepared statements, settings and
	// locks start from nothing.
	conf := fmt.Sprintf(`[databases]
* = host=%s port=5432

[pgbouncer]
pool_mode = %s
listen_addr =
listen_port = %d
unix_socket_dir = %s
auth_type = trust
auth_file = %s
server_reset_query = DISCARD ALL
max_client_conn = 400
default_pool_size = 10
max_user_connections = 20
logfile = %s
pidfile =
`, socketDir, mode, p.port, dir, filepath.Join(dir, "users.txt"), filepath.Join(dir, "pgbouncer.log"))
	for name, body := range map[string]string{"pgbouncer.ini": conf, "users.txt": fmt.Sprintf("%q \"\"\n", User)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			p.err = err
			return p
		}
	}
	if runAs != nil {
		if err := os.Chown(dir, int(runAs.Uid), int(runAs.Gid)); err != nil {
			p.err = err
			return p
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		p.err = err
		return p
	}
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		p.err = fmt.Errorf("pgbouncer: %v", err)
		return p
	}
	p.cmd = cmd
	tell(fmt.Sprintf("kill TERM %d", cmd.Process.Pid))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	sock := filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", p.port))
	for deadline := time.Now().Add(30 * time.Second); ; {
		// Ready when it accepts a connection: its socket file exists from
		// bind(2), before listen(2), and a test that dialled in between
		// was refused (CI, session 30).
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			go func() { <-exited }()
			return p
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			p.err = fmt.Errorf("pgbouncer exited: %v\n%s%s", err, out.String(), log)
			p.cmd = nil
			return p
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.err = fmt.Errorf("pgbouncer: no socket %s after 30s", sock)
			return p
		}
	}
}

// stopPoolers stops the poolers Pooled started and removes their
// directories.
func stopPoolers() {
	poolersMu.Lock()
	defer poolersMu.Unlock()
	for mode, p := range poolers {
		if p.cmd != nil && p.cmd.Process != nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			for range 100 {
				if p.cmd.Process.Signal(syscall.Signal(0)) != nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if p.dir != "" {
			os.RemoveAll(p.dir)
		}
		delete(poolers, mode)
	}
}

// PoolerAvailable reports whether Pooled can start a PgBouncer: a
// throwaway cluster is running and pgbouncer is installed.
func PoolerAvailable() bool {
	_, err := pgbouncerPath()
	return socketDir != "" && err == nil
}
