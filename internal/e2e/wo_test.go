package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	woToolsOnce  sync.Once
	cpWO, cpAuth string
	woToolsErr   error
)

// woTools builds cp-wo and cp-auth once, beside the binaries planeTools
// builds.
func woTools(t *testing.T) (wo, authBin string) {
	t.Helper()
	install, _ := planeTools(t)
	woToolsOnce.Do(func() {
		dir := filepath.Dir(install)
		build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/cp-wo", "./cmd/cp-auth")
		build.Dir = filepath.Join("..", "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			woToolsErr = fmt.Errorf("building cp-wo and cp-auth: %v\n%s", err, out)
		}
		cpWO, cpAuth = filepath.Join(dir, "cp-wo"), filepath.Join(dir, "cp-auth")
	})
	require.NoError(t, woToolsErr)
	return cpWO, cpAuth
}

// woPlane is a plane with auth on and one started work order.
type woPlane struct {
	root, work, admin, wo, session string
}

// woCmd is bin with args on the plane, as the holder of token tok.
func (p woPlane) cmd(bin, tok string, stdin []byte, args ...string) *exec.Cmd {
	cmd := planeCmd(bin, p.root, p.work, args...)
	cmd.Env = append(cmd.Env, "CONTROL_PLANE_TOKEN="+tok)
	cmd.Stdin = bytes.NewReader(stdin)
	return cmd
}

func (p woPlane) run(t *testing.T, bin, tok string, stdin []byte, args ...string) result {
	t.Helper()
	cmd := p.cmd(bin, tok, stdin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return result{out.Bytes(), errb.Bytes(), cmd.ProcessState.ExitCode()}
}

func (p woPlane) must(t *testing.T, bin, tok string, stdin []byte, args ...string) map[string]any {
	t.Helper()
	r := p.run(t, bin, tok, stdin, args...)
	require.Equal(t, 0, r.code, "%s %v: %s%s", filepath.Base(bin), args, r.stdout, r.stderr)
	var env map[string]any
	require.NoError(t, json.Unmarshal(r.stdout, &env))
	res, _ := env["result"].(map[string]any)
	return res
}

// newWOPlane bootstraps a plane, turns auth on, and has ops create a work
// order (turns budget: turns) that maint approves and ops starts.
func newWOPlane(t *testing.T, turns int) woPlane {
	t.Helper()
	install, pkg := planeTools(t)
	wo, authBin := woTools(t)
	work := t.TempDir()
	p := woPlane{root: filepath.Join(work, "plane"), work: work}
	mustPlane(t, pkg, p.root, work, "keygen", "--name", "appr", "--out", work)
	mustPlane(t, install, p.root, work, "bootstrap", "--root", p.root, "--trust-key", "work_order="+filepath.Join(work, "appr.pub"))
	p.admin = p.must(t, authBin, "", nil, "init", "--sub", "ops")["token"].(string)
	maint := p.must(t, authBin, p.admin, nil, "token", "--sub", "maint", "--role", "maintainer", "--tiers", "ho3,ho2")["token"].(string)
	p.wo = p.must(t, wo, p.admin, nil, "create", "--type", "code_change", "--title", "e2e", "--paths", "notes/**",
		"--turns", fmt.Sprint(turns), "--expires-in", "2h")["wo_id"].(string)
	p.must(t, wo, maint, nil, "approve", p.wo, "--key", filepath.Join(work, "appr.key"))
	p.session = p.must(t, wo, p.admin, nil, "start", p.wo)["session_id"].(string)
	require.NoError(t, os.MkdirAll(filepath.Join(p.root, "notes"), 0o755))
	return p
}

func (p woPlane) header(n int) []byte {
	return []byte(fmt.Sprintf(`{"session_id":%q,"turn_number":%d,"work_order_id":%q,"declared_inputs":[]}`, p.session, n, p.wo))
}

// count returns how many complete lines of the ledger at rel (below the
// plane root) have event type et.
func (p woPlane) count(t *testing.T, rel, et string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.root, rel))
	require.NoError(t, err)
	n := 0
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.HasSuffix(line, "\n") && strings.Contains(line, `"event_type":"`+et+`"`) {
			n++
		}
	}
	return n
}

func (p woPlane) sessionLedger() string {
	return "planes/ho1/sessions/" + p.session + "/ledger/session.jsonl"
}

const ho2Ledger = "planes/ho2/ledger/workorder.jsonl"

// TestConcurrentCompletes runs 8 cp-wo complete processes on one work
// order at once: all succeed, exactly one writes WO_COMPLETED, the others
// answer a no-op.
func TestConcurrentCompletes(t *testing.T) {
	p := newWOPlane(t, 5)
	wo, _ := woTools(t)
	const n = 8
	h := "sha256:" + strings.Repeat("ab", 32)
	var wg sync.WaitGroup
	rs := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i] = p.run(t, wo, p.admin, nil, "complete", p.wo, "--result-sha256", h)
		}()
	}
	wg.Wait()
	wrote := 0
	for i, r := range rs {
		require.Equal(t, 0, r.code, "complete %d: %s%s", i, r.stdout, r.stderr)
		if bytes.Contains(r.stdout, []byte(`"noop":false`)) {
			wrote++
		}
	}
	require.Equal(t, 1, wrote, "completes that wrote")
	require.Equal(t, 1, p.count(t, ho2Ledger, "WO_COMPLETED"))
}

// TestConcurrentTurns runs 8 cp-wo turn processes with the same turn
// number at once: exactly one lands; the others are TURN_OUT_OF_ORDER.
func TestConcurrentTurns(t *testing.T) {
	p := newWOPlane(t, 20)
	wo, _ := woTools(t)
	const n = 8
	var wg sync.WaitGroup
	rs := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i] = p.run(t, wo, p.admin, p.header(1), "turn")
		}()
	}
	wg.Wait()
	ok := 0
	for i, r := range rs {
		switch r.code {
		case 0:
			ok++
		case 1:
			require.Contains(t, string(r.stdout), `"code":"TURN_OUT_OF_ORDER"`, "turn %d", i)
		default:
			t.Fatalf("turn %d: exit %d: %s%s", i, r.code, r.stdout, r.stderr)
		}
	}
	require.Equal(t, 1, ok, "turns that landed")
	require.Equal(t, 1, p.count(t, p.sessionLedger(), "TURN"))
	require.Equal(t, n-1, p.count(t, p.sessionLedger(), "TURN_REFUSED"))
}

// killAt starts cmd and kills it with SIGKILL after delay (unless it has
// exited), and reports whether it was killed.
func killAt(t *testing.T, cmd *exec.Cmd, delay time.Duration) bool {
	t.Helper()
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return false
	case <-time.After(delay):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}

// TestKillDuringTurnAndComplete kills cp-wo turn and cp-wo complete with
// SIGKILL at instants spread over their run: afterwards the session
// ledger and HO2's hold the turn (or the completion) wholly or not at
// all, the next turn (or complete) goes on from there, and every ledger
// verifies; a work order completes exactly once.
func TestKillDuringTurnAndComplete(t *testing.T) {
	rounds := 12
	if testing.Short() {
		rounds = 5
	}
	p := newWOPlane(t, 1000)
	wo, _ := woTools(t)
	// the uninterrupted turn, to time it
	began := time.Now()
	p.must(t, wo, p.admin, p.header(1), "turn")
	span := time.Since(began)
	turns, nKilled := 1, 0
	for round := range rounds {
		delay := time.Duration(float64(span) * 1.2 * float64(round) / float64(rounds))
		killed := killAt(t, p.cmd(wo, p.admin, p.header(turns+1)), delay)
		got := p.count(t, p.sessionLedger(), "TURN")
		require.True(t, got == turns || got == turns+1, "round %d (killed %v after %v): %d turns, want %d or %d", round, killed, delay, got, turns, turns+1)
		if killed {
			nKilled++
		}
		turns = got
		// the next turn goes on from what was recorded, repairing a torn tail
		p.must(t, wo, p.admin, p.header(turns+1), "turn")
		turns++
		r := p.run(t, cpLedger, p.admin, nil, "verify", "--session", p.session)
		require.Equal(t, 0, r.code, "round %d: verify: %s%s", round, r.stdout, r.stderr)
	}
	t.Logf("turn: %d of %d rounds killed (an uninterrupted turn took %v); %d turns recorded", nKilled, rounds, span, turns)
	for round := range rounds {
		delay := time.Duration(float64(span) * 1.2 * float64(round) / float64(rounds))
		killed := killAt(t, p.cmd(wo, p.admin, nil, "complete", p.wo), delay)
		require.LessOrEqual(t, p.count(t, ho2Ledger, "WO_COMPLETED"), 1, "round %d (killed %v after %v)", round, killed, delay)
	}
	p.must(t, wo, p.admin, nil, "complete", p.wo)
	require.Equal(t, 1, p.count(t, ho2Ledger, "WO_COMPLETED"))
	for _, args := range [][]string{{"verify", "--plane", "ho2"}, {"verify", "--session", p.session}} {
		r := p.run(t, cpLedger, p.admin, nil, args...)
		require.Equal(t, 0, r.code, "%v: %s%s", args, r.stdout, r.stderr)
	}
	require.Equal(t, 0, p.count(t, p.sessionLedger(), "TURN_REFUSED"))
}
