package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runPrompt runs bin with args (stdin /dev/null) and fails the test if it
// has not ended within 20 s: a tool handed a FIFO must refuse it, not wait
// on it.
func runPrompt(t *testing.T, env []string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v still running after 20 s (blocked on a FIFO?)", filepath.Base(bin), args)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		require.NoError(t, err)
	}
	return result{out.Bytes(), errb.Bytes(), cmd.ProcessState.ExitCode()}
}

func errorCode(t *testing.T, stdout []byte) string {
	t.Helper()
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(stdout), &env), "%s", stdout)
	return env.Error.Code
}

// TestFIFOsRefused: a FIFO where a tool expects a ledger, a side file, a
// checkpoint or a key is refused at once with NOT_REGULAR (issue 10, item
// 15), by every verb that reads it; /dev/zero behind a ledger name too.
func TestFIFOsRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := func(name string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, syscall.Mkfifo(p, 0o644))
		return p
	}
	good := filepath.Join(dir, "good.jsonl")
	r := run(t, []byte("{\"event_type\":\"A\"}\n{\"event_type\":\"B\"}\n"), "append", "--ledger", good)
	require.Equal(t, 0, r.code, "%s", r.stderr)

	ledgerFIFO := fifo("fifo.jsonl")
	for _, args := range [][]string{
		{"verify", "--ledger", ledgerFIFO},
		{"verify", "--legacy", "--ledger", ledgerFIFO},
		{"show", "--ledger", ledgerFIFO},
		{"show", "--ledger", ledgerFIFO, "--where", ".seq == 0"},
		{"checkpoint", "--ledger", ledgerFIFO},
		{"prove", "--ledger", ledgerFIFO, "--seq", "0"},
		{"consistency", "--ledger", ledgerFIFO, "--from", "1"},
		{"append", "--ledger", ledgerFIFO, "--event-type", "X"},
		{"genesis", "--ledger", ledgerFIFO},
		{"verify", "--ledger", good, "--trusted-checkpoint", fifo("held.checkpoint")},
	} {
		r := runPrompt(t, nil, cpLedger, args...)
		require.Equal(t, 3, r.code, "%v: %s%s", args, r.stdout, r.stderr)
		require.Equal(t, "NOT_REGULAR", errorCode(t, r.stdout), "%v", args)
		require.Regexp(t, `^cp-ledger: error: .*is a FIFO, not a regular file`, string(r.stderr), "%v", args)
	}
	// A key is a usage error (KEY_INVALID, exit 2) that says why.
	for _, args := range [][]string{
		{"checkpoint", "--ledger", good, "--sign-key", fifo("sign.key")},
		{"verify", "--ledger", good, "--verify-key", fifo("verify.pub")},
	} {
		r := runPrompt(t, nil, cpLedger, args...)
		require.Equal(t, 2, r.code, "%v: %s%s", args, r.stdout, r.stderr)
		require.Equal(t, "KEY_INVALID", errorCode(t, r.stdout), "%v", args)
		require.Contains(t, string(r.stderr), "is a FIFO, not a regular file")
	}
	// A FIFO as a side file of a good ledger.
	for _, side := range []string{"good.tlog", "good.lock"} {
		p := filepath.Join(dir, side)
		require.NoError(t, os.Rename(p, p+".keep"))
		fifo(side)
		for _, args := range [][]string{{"verify"}, {"append", "--event-type", "X"}, {"checkpoint"}} {
			r := runPrompt(t, nil, cpLedger, append(args, "--ledger", good)...)
			verb := args[0]
			require.Equal(t, 3, r.code, "%s with %s a FIFO: %s%s", verb, side, r.stdout, r.stderr)
			require.Equal(t, "NOT_REGULAR", errorCode(t, r.stdout))
		}
		require.NoError(t, os.Remove(p))
		require.NoError(t, os.Rename(p+".keep", p))
	}
	// /dev/zero is not an empty ledger.
	zero := filepath.Join(dir, "zero.jsonl")
	require.NoError(t, os.Symlink("/dev/zero", zero))
	r = runPrompt(t, nil, cpLedger, "verify", "--ledger", zero)
	require.Equal(t, 3, r.code, "%s%s", r.stdout, r.stderr)
	require.Equal(t, "NOT_REGULAR", errorCode(t, r.stdout))

	// cp-pkg: a FIFO as an archive or a signing key, against a real plane
	// (a --root that is no plane is refused before anything is read).
	install, pkg := planeTools(t)
	keys := t.TempDir()
	mustPlane(t, pkg, dir, dir, "keygen", "--name", "ops", "--out", keys)
	root := filepath.Join(t.TempDir(), "plane")
	mustPlane(t, install, root, dir, "bootstrap", "--root", root)
	archive := fifo("PKG-X.tar.gz")
	r = runPrompt(t, nil, pkg, "preflight", "--archive", archive, "--root", root)
	require.NotEqual(t, 0, r.code)
	require.Contains(t, string(r.stderr), "is a FIFO, not a regular file", "%s", r.stdout)
	r = runPrompt(t, nil, pkg, "sign", "--archive", archive, "--key", filepath.Join(keys, "ops.key"))
	require.Equal(t, 3, r.code, "%s%s", r.stdout, r.stderr)
	require.Equal(t, "NOT_REGULAR", errorCode(t, r.stdout))
	// A source tree whose manifest.json is a FIFO.
	src := filepath.Join(dir, "src")
	require.NoError(t, os.Mkdir(src, 0o755))
	require.NoError(t, syscall.Mkfifo(filepath.Join(src, "manifest.json"), 0o644))
	for _, verb := range []string{"preflight"} { // stage needs a plane first
		r = runPrompt(t, nil, pkg, verb, "PKG-X-001", "--src", src, "--root", root)
		require.NotEqual(t, 0, r.code, "%s: %s%s", verb, r.stdout, r.stderr)
		require.Contains(t, string(r.stderr), "is a FIFO, not a regular file", "%s: %s", verb, r.stdout)
	}
}

// TestGateRefusesFIFOSessionLedger: a FIFO planted where G6 expects a
// session ledger (an HO1 worker can make one) no longer blocks every gate
// run: cp-gate check --all ends at once with G6 failing on it (exit 1).
func TestGateRefusesFIFOSessionLedger(t *testing.T) {
	install, _ := planeTools(t)
	gate := gateTool(t)
	work := t.TempDir()
	root := filepath.Join(work, "plane")
	mustPlane(t, install, root, work, "bootstrap", "--root", root)
	sdir := filepath.Join(root, "planes", "ho1", "sessions", "SES-20260101-0badf00d", "ledger")
	require.NoError(t, os.MkdirAll(sdir, 0o755))
	require.NoError(t, syscall.Mkfifo(filepath.Join(sdir, "session.jsonl"), 0o644))
	r := runPrompt(t, []string{"CONTROL_PLANE=" + root}, gate, "check", "--all", "--root", root)
	require.Equal(t, 1, r.code, "%s%s", r.stdout, r.stderr)
	require.Contains(t, string(r.stdout), `"code":"LEDGER_UNSAFE","path":"planes/ho1/sessions/SES-20260101-0badf00d/ledger/session.jsonl"`)
}

// TestAppendThroughTwoNames: writers through a ledger's own name and
// through a symbolic link to it run at once (issue 10, item 14: they took
// different locks and lost 43 of 341 acknowledged entries). The linked name
// is refused, every acknowledged entry is in the ledger, and it verifies.
func TestAppendThroughTwoNames(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real", "L.jsonl")
	require.NoError(t, os.MkdirAll(filepath.Dir(real), 0o755))
	r := run(t, []byte("{\"event_type\":\"GENESIS_LIKE\"}\n"), "append", "--ledger", real)
	require.Equal(t, 0, r.code, "%s", r.stderr)
	alias := filepath.Join(dir, "A.jsonl")
	require.NoError(t, os.Symlink(filepath.Join("real", "L.jsonl"), alias))

	const perProc = 40
	var reqs bytes.Buffer
	for i := range perProc {
		fmt.Fprintf(&reqs, "{\"event_type\":\"E\",\"metadata\":{\"n\":%d}}\n", i)
	}
	type out struct {
		name string
		res  result
	}
	names := []string{real, alias, real, alias, real, alias}
	results := make([]out, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			for range 3 { // three processes in a row per writer
				res := run(t, reqs.Bytes(), "append", "--ledger", name)
				results[i] = out{name, res}
				if res.code != 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	entries, torn := readLedger(t, real)
	require.Zero(t, torn)
	for _, o := range results {
		if o.name == alias {
			require.Equal(t, 3, o.res.code, "the linked name must be refused: %s%s", o.res.stdout, o.res.stderr)
			require.Equal(t, "NOT_REGULAR", errorCode(t, o.res.stdout))
			require.Contains(t, string(o.res.stderr), "symbolic link")
			continue
		}
		require.Equal(t, 0, o.res.code, "%s", o.res.stderr)
		requireAcked(t, entries, parseAcks(t, o.res.stdout), o.name)
	}
	requireVerifies(t, real, 1+3*3*perProc)
}
