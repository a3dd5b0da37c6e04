package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/llm/llmtest"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/internal/pgtest"
)

var (
	llmOnce sync.Once
	cpLLM   string
	llmErr  error
)

// llmTool builds cp-llm once, beside the binaries planeTools builds.
func llmTool(t *testing.T) string {
	t.Helper()
	install, _ := planeTools(t)
	woTools(t)
	llmOnce.Do(func() {
		dir := filepath.Dir(install)
		build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/cp-llm")
		build.Dir = filepath.Join("..", "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			llmErr = fmt.Errorf("building cp-llm: %v\n%s", err, out)
		}
		cpLLM = filepath.Join(dir, "cp-llm")
	})
	require.NoError(t, llmErr)
	return cpLLM
}

// newLLMPlane is newWOPlane with a config package whose providers.json is
// providers (when not ""), installed before auth is turned on, and a work
// order whose budget allows calls LLM calls.
func newLLMPlane(t *testing.T, calls int, providers string) woPlane {
	t.Helper()
	install, pkg := planeTools(t)
	wo, authBin := woTools(t)
	llmTool(t)
	work := t.TempDir()
	p := woPlane{root: filepath.Join(work, "plane"), work: work}
	mustPlane(t, pkg, p.root, work, "keygen", "--name", "appr", "--out", work)
	mustPlane(t, pkg, p.root, work, "keygen", "--name", "ops", "--out", work)
	mustPlane(t, install, p.root, work, "bootstrap", "--root", p.root, "--trust-key", filepath.Join(work, "ops.pub"),
		"--trust-key", "work_order="+filepath.Join(work, "appr.pub"))
	if providers != "" {
		mustPlane(t, pkg, p.root, work, "init-config", "PKG-CONFIG-001", "--output", "conf")
		require.NoError(t, os.WriteFile(filepath.Join(work, "conf", "config", "providers.json"), []byte(providers), 0o644))
		mustPlane(t, pkg, p.root, work, "stage", "PKG-CONFIG-001", "--src", "conf", "--out", "staged")
		mustPlane(t, pkg, p.root, work, "sign", "--archive", "staged/PKG-CONFIG-001.tar.gz", "--key", filepath.Join(work, "ops.key"))
		mustPlane(t, install, p.root, work, "install", "--archive", "staged/PKG-CONFIG-001.tar.gz")
	}
	p.admin = p.must(t, authBin, "", nil, "init", "--sub", "ops")["token"].(string)
	maint := p.must(t, authBin, p.admin, nil, "token", "--sub", "maint", "--role", "maintainer", "--tiers", "ho3,ho2")["token"].(string)
	p.wo = p.must(t, wo, p.admin, nil, "create", "--type", "investigation", "--title", "llm e2e", "--paths", "notes/**",
		"--llm-calls", fmt.Sprint(calls), "--llm-tokens", "10000000", "--llm-cost-usd", "100", "--expires-in", "2h")["wo_id"].(string)
	p.must(t, wo, maint, nil, "approve", p.wo, "--key", filepath.Join(work, "appr.key"))
	p.session = p.must(t, wo, p.admin, nil, "start", p.wo)["session_id"].(string)
	return p
}

// call is one cp-llm complete under the work order and session, as admin.
func (p woPlane) llmArgs(extra ...string) []string {
	return append([]string{"--prompt", "count to three", "--wo", p.wo, "--session", p.session, "--max-tokens", "200"}, extra...)
}

func errorCodeOf(stdout []byte) string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(lastLineOf(stdout), &env)
	return env.Error.Code
}

func lastLineOf(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// TestLLMBudgetRace runs 8 cp-llm processes at once against one work
// order whose budget allows exactly five calls, each call held open by the
// provider so that the five in flight are reservations, not yet spend:
// exactly five succeed, three are BUDGET_EXCEEDED (exit 1), and HO2's
// ledger holds five LLM_RESERVED, five LLM_CALL and three LLM_REFUSED.
// The work order's sums are carried in its tally beside HO2's ledger,
// which G6 accepts there; a process that can write the plane's files
// zeroes its sums (MAC kept): the tally is not believed, and the budget
// still holds (another work order's tally in its place, or the caps':
// internal/llm's TestWOTallyNotBelieved).
func TestLLMBudgetRace(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Stream(1, 300*time.Millisecond)
	p := newLLMPlane(t, 5, srv.ProvidersJSON(""))
	budgetRace(t, []woPlane{p}, [][]string{nil}, srv)
	require.Equal(t, 5, p.count(t, ho2Ledger, "LLM_RESERVED"))
	require.Equal(t, 5, p.count(t, ho2Ledger, "LLM_CALL"))
	require.Equal(t, 3, p.count(t, ho2Ledger, "LLM_REFUSED"))

	tallyPath := filepath.Join(p.root, "planes", "ho2", "ledger", "llm-wo."+p.wo+".json")
	_, err := os.Stat(tallyPath)
	require.NoError(t, err, "the work order's tally beside HO2's ledger")
	r := p.run(t, gateTool(t), p.admin, nil, "check", "--gate", "G6", "--root", p.root)
	require.Equal(t, 0, r.code, "G6 accepts the work order's tally: %s%s", r.stdout, r.stderr)
	r = p.run(t, cpLLM, p.admin, nil, "recover")
	require.Equal(t, 0, r.code, "%s%s", r.stdout, r.stderr)
	require.Empty(t, r.stderr, "recover found the work order's tally, kept by eight racing gateways, in agreement with the ledger")

	forged := forgedCallRefused(t, p, srv, tallyPath, "settled", "sessions", "open")
	// recover names a forged tally, and rewrites it.
	require.NoError(t, os.WriteFile(tallyPath, forged, 0o644))
	r = p.run(t, cpLLM, p.admin, nil, "recover")
	require.Equal(t, 0, r.code, "%s%s", r.stdout, r.stderr)
	require.Contains(t, string(r.stderr), "llm-wo."+p.wo+".json did not match HO2's ledger")
	r = p.run(t, cpLLM, p.admin, nil, "recover")
	require.Empty(t, r.stderr, "the tally recover wrote agrees with the ledger")

	// The same process removes the tally and renames the event types of
	// the work order's LLM_RESERVED and LLM_CALL lines in place for one
	// call (same length, so the offsets hold): the tally begun again reads
	// every line since the work order's WO_CREATED checked against the
	// tree, and refuses the call (LEDGER_INVALID) rather than seal sums
	// without them. With the bytes put back, the budget holds.
	ledgerPath := filepath.Join(p.root, filepath.FromSlash(ho2Ledger))
	honest, err := os.ReadFile(ledgerPath)
	require.NoError(t, err)
	edited := bytes.ReplaceAll(bytes.ReplaceAll(honest, []byte(`"LLM_RESERVED"`), []byte(`"LLM_RESERVEX"`)), []byte(`"LLM_CALL"`), []byte(`"LLM_CALX"`))
	require.NoError(t, os.Remove(tallyPath))
	require.NoError(t, os.WriteFile(ledgerPath, edited, 0o644))
	calls := srv.Calls()
	r = p.run(t, cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
	require.Equal(t, 1, r.code, "%s%s", r.stdout, r.stderr)
	require.Equal(t, "LEDGER_INVALID", errorCodeOf(r.stdout), "%s", r.stdout)
	require.Contains(t, string(r.stderr), "entry_hash does not match its content")
	require.Equal(t, calls, srv.Calls(), "no call over the edited ledger")
	require.NoError(t, os.WriteFile(ledgerPath, honest, 0o644))
	r = p.run(t, cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
	require.Equal(t, 1, r.code, "%s%s", r.stdout, r.stderr)
	require.Equal(t, "BUDGET_EXCEEDED", errorCodeOf(r.stdout))
	require.Equal(t, calls, srv.Calls())
}

// TestLLMBudgetRacePostgres is TestLLMBudgetRace with HO2, the budget
// ledger, in PostgreSQL (cp-ledger migrate), and the eight gateways
// spread over two plane directories pointing at that one tier (two hosts
// or containers, each with its own copy of the plane directory): each
// gateway holds the budget through the database's advisory lock of the
// ledger (pgstore's Advisory), across its sums and its reservation's
// commit, so the two directories exclude each other as one would.
// Exactly five of the eight calls succeed, no refused call reaches the
// provider, and the ledger in the database holds five LLM_RESERVED, five
// LLM_CALL and three LLM_REFUSED and verifies from either directory.
func TestLLMBudgetRacePostgres(t *testing.T) {
	dsn := pgtest.DB(t)
	srv := llmtest.New()
	defer srv.Close()
	srv.Stream(1, 300*time.Millisecond)
	p := newLLMPlane(t, 5, srv.ProvidersJSON(""))
	env := []string{"CP_TEST_LEDGER_DSN=" + dsn}
	p.mustEnv(t, cpLedger, env, "migrate", "--plane", "ho2", "--to", "postgres", "--name", "workorder-llm", "--dsn-env", "CP_TEST_LEDGER_DSN")
	_, err := os.Stat(filepath.Join(p.root, ho2Ledger))
	require.ErrorIs(t, err, fs.ErrNotExist, "HO2's ledger moved to the database")
	// The second directory: a copy of the plane, as another host has,
	// with that host's own copy of the plane's keys (bound to where the
	// plane is on that host: PLANE_KEY_BOUND otherwise).
	q := p
	q.root = filepath.Join(t.TempDir(), "plane")
	out, err := exec.Command("cp", "-a", p.root, q.root).CombinedOutput()
	require.NoError(t, err, "%s", out)
	qHome := t.TempDir()
	keysOf := func(h string) string { return filepath.Join(h, ".config", "control-plane") }
	des, err := os.ReadDir(keysOf(home))
	require.NoError(t, err)
	found := false
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(keysOf(home), de.Name(), "root"))
		if err != nil || strings.TrimSpace(string(b)) != p.root {
			continue
		}
		require.NoError(t, os.MkdirAll(keysOf(qHome), 0o700))
		out, err := exec.Command("cp", "-a", filepath.Join(keysOf(home), de.Name()), keysOf(qHome)).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.NoError(t, os.WriteFile(filepath.Join(keysOf(qHome), de.Name(), "root"),
			[]byte(strings.Replace(string(b), p.root, q.root, 1)), 0o600))
		found = true
	}
	require.True(t, found, "the plane's keys under %s", keysOf(home))
	qEnv := append(slices.Clone(env), "HOME="+qHome)
	budgetRace(t, []woPlane{p, q}, [][]string{env, qEnv}, srv)
	for i, d := range []woPlane{p, q} {
		env := [][]string{env, qEnv}[i]
		count := func(et string) int {
			r := d.runEnv(t, cpLedger, env, "show", "--plane", "ho2", "--event-type", et)
			require.Equal(t, 0, r.code, "%s%s", r.stdout, r.stderr)
			return bytes.Count(r.stdout, []byte(`"event_type":"`+et+`"`))
		}
		require.Equal(t, 5, count("LLM_RESERVED"))
		require.Equal(t, 5, count("LLM_CALL"))
		require.Equal(t, 3, count("LLM_REFUSED"))
		r := d.runEnv(t, cpLedger, env, "verify", "--plane", "ho2")
		require.Equal(t, 0, r.code, "the ledger in the database verifies: %s%s", r.stdout, r.stderr)
		_, err = os.Stat(filepath.Join(d.root, "planes", "ho2", "ledger", "llm-budget.lock"))
		require.ErrorIs(t, err, fs.ErrNotExist, "no lock file: the gateways held the budget in the database")
	}
}

// TestLLMCapRace is TestLLMBudgetRace held by a cap of providers.json
// rather than the work order's budget (which allows a hundred calls): a
// plane cap of exactly five calls' largest cost, each call charged its
// whole reservation. The caps are summed through the tally beside HO2's
// ledger (O(entries since the last call)): exactly five succeed, and
// recover, which recomputes the tally from the whole ledger, finds it in
// agreement.
func TestLLMCapRace(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Stream(1, 300*time.Millisecond)
	// 3 and 15 micro-USD a token: a call's reservation is its input bound
	// at 3 and max_tokens (200) at 15; answered with that usage, a call
	// costs its reservation.
	bound := provider.InputTokenBound(&provider.Request{Prompt: "count to three", MaxTokens: 200})
	srv.Answer("one two three", bound, 200)
	max := 3*bound + 15*200
	p := newLLMPlane(t, 100, srv.ProvidersJSON(fmt.Sprintf(`{"plane_micro_usd": %d}`, 5*max)))
	budgetRace(t, []woPlane{p}, [][]string{nil}, srv)
	require.Equal(t, 5, p.count(t, ho2Ledger, "LLM_RESERVED"))
	require.Equal(t, 3, p.count(t, ho2Ledger, "LLM_REFUSED"))
	for _, e := range entriesOf(t, filepath.Join(p.root, ho2Ledger), "LLM_REFUSED") {
		require.Equal(t, "plane", e.Metadata["budget_scope"])
	}
	_, err := os.Stat(filepath.Join(p.root, "planes", "ho2", "ledger", "llm-tally.json"))
	require.NoError(t, err, "the caps' tally beside HO2's ledger")
	r := p.run(t, cpLLM, p.admin, nil, "recover")
	require.Equal(t, 0, r.code, "%s%s", r.stdout, r.stderr)
	require.Empty(t, r.stderr, "recover found the tally in agreement with the ledger")

	// A process that can write the plane's files (not its owner's key
	// directory) zeroes the sums in the tally, keeping its size, root and
	// MAC: the tally is not believed, the cap still holds, and the tally
	// is written back from the ledger.
	forgedCallRefused(t, p, srv, filepath.Join(p.root, "planes", "ho2", "ledger", "llm-tally.json"), "plane", "providers", "subjects", "open")
	r = p.run(t, cpLLM, p.admin, nil, "recover")
	require.Equal(t, 0, r.code, "%s%s", r.stdout, r.stderr)
	require.Empty(t, r.stderr, "the tally written back agrees with the ledger")
}

// forgedCallRefused zeroes the sums keys of the tally file at path (its
// MAC kept, as a process that can write the plane's files but not its
// owner's key directory could), and requires the next call on p, whose
// budget is spent, to be refused all the same, with no call made, and the
// tally written back from the ledger. It returns the forged file.
func forgedCallRefused(t *testing.T, p woPlane, srv *llmtest.Server, path string, keys ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var sealed struct {
		MAC   string         `json:"mac"`
		Tally map[string]any `json:"tally"`
	}
	require.NoError(t, json.Unmarshal(b, &sealed))
	require.NotEmpty(t, sealed.MAC)
	for _, k := range keys {
		require.Contains(t, sealed.Tally, k)
		sealed.Tally[k] = map[string]any{}
	}
	forged, err := json.Marshal(sealed)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, forged, 0o644))
	calls := srv.Calls()
	r := p.run(t, cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
	require.Equal(t, 1, r.code, "%s%s", r.stdout, r.stderr)
	require.Equal(t, "BUDGET_EXCEEDED", errorCodeOf(r.stdout))
	require.Equal(t, calls, srv.Calls(), "the forged tally let no call through")
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	require.NotEqual(t, string(forged), string(b), "the tally written back from the ledger")
	return forged
}

// budgetRace starts eight cp-llm calls at once under the work order of
// ps (one plane, or copies of one plane over a shared tier, taken in
// turn; whose budget allows five; env: more of their environment) and
// requires exactly five answers and three BUDGET_EXCEEDED, and the five
// alone at the provider.
func budgetRace(t *testing.T, ps []woPlane, envs [][]string, srv *llmtest.Server) {
	t.Helper()
	const n = 8
	rs := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			p := ps[i%len(ps)]
			rs[i] = p.runEnv(t, cpLLM, envs[i%len(ps)], p.llmArgs("--provider", "local-openai")...)
		}()
	}
	close(start)
	wg.Wait()
	ok, refused := 0, 0
	for i, r := range rs {
		switch r.code {
		case 0:
			ok++
		case 1:
			require.Equal(t, "BUDGET_EXCEEDED", errorCodeOf(r.stdout), "process %d: %s", i, r.stdout)
			refused++
		default:
			t.Fatalf("process %d: exit %d: %s%s", i, r.code, r.stdout, r.stderr)
		}
	}
	require.Equal(t, 5, ok, "exactly five calls fit the budget")
	require.Equal(t, 3, refused)
	require.Equal(t, 5, srv.Calls(), "no refused call reached the provider")
}

// runEnv runs bin as the admin with env added to its environment.
func (p woPlane) runEnv(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	cmd := p.cmd(bin, p.admin, nil, args...)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return result{out.Bytes(), errb.Bytes(), cmd.ProcessState.ExitCode()}
}

func (p woPlane) mustEnv(t *testing.T, bin string, env []string, args ...string) {
	t.Helper()
	r := p.runEnv(t, bin, env, args...)
	require.Equal(t, 0, r.code, "%s %v: %s%s", filepath.Base(bin), args, r.stdout, r.stderr)
}

// TestLLMKilledCallerChargedInFull kills cp-llm with SIGKILL while its
// call hangs at the provider: its reservation is never settled by it, so
// the next call's sums charge it in full, and settle it visibly (an
// LLM_CALL, status abandoned, charged_in_full) in the same append as its
// own reservation. A second caller killed the same way is settled by
// cp-llm recover, which leaves a call in flight alone and settles nothing
// twice. With a budget of four calls: two killed, two answered, then
// BUDGET_EXCEEDED.
func TestLLMKilledCallerChargedInFull(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	p := newLLMPlane(t, 4, srv.ProvidersJSON(""))
	ledger := filepath.Join(p.root, ho2Ledger)
	// hanging starts a call that hangs at the provider and waits until it
	// arrived there (its reservation durable).
	hanging := func() *exec.Cmd {
		t.Helper()
		for len(srv.Arrived) > 0 {
			<-srv.Arrived
		}
		srv.Hang(true)
		cmd := p.cmd(cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
		require.NoError(t, cmd.Start())
		select {
		case <-srv.Arrived:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatal("the call never reached the provider")
		}
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		t.Helper()
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		srv.Hang(false)
	}
	recoverRun := func() map[string]any {
		t.Helper()
		return p.must(t, cpLLM, p.admin, nil, "recover")
	}

	kill(hanging())
	require.Equal(t, 1, p.count(t, ho2Ledger, "LLM_RESERVED"))
	require.Equal(t, 0, p.count(t, ho2Ledger, "LLM_CALL"), "the killed caller settled nothing")
	killed := lastEntry(t, ledger, "LLM_RESERVED")
	require.NotEmpty(t, killed.Metadata["inflight_boot_id"], "the reservation was marked in flight")

	r := p.run(t, cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
	require.Equal(t, 0, r.code, "%s%s", r.stdout, r.stderr)
	var env struct {
		Result struct {
			Budgets []struct {
				Scope string `json:"scope"`
				Spent struct {
					Calls, Tokens, MicroUSD int64
				} `json:"spent"`
			} `json:"budgets"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(r.stdout, &env))
	b := env.Result.Budgets[0]
	require.Equal(t, "work_order", b.Scope)
	require.Equal(t, int64(1), b.Spent.Calls, "the killed call's reservation counts")
	require.Greater(t, b.Spent.Tokens, int64(200), "in full: max_tokens and the input bound")
	// Settled by that call, visibly: an LLM_CALL before its own.
	calls := entriesOf(t, ledger, "LLM_CALL")
	require.Len(t, calls, 2)
	ab := calls[0].Metadata
	require.Equal(t, "abandoned", ab["status"])
	require.Equal(t, killed.Metadata["reservation_id"], ab["reservation_id"])
	require.Equal(t, killed.Metadata["max_cost_micro_usd"], ab["cost_micro_usd"], "charged in full")
	require.Equal(t, true, ab["charged_in_full"])
	require.Equal(t, "next_call", ab["settled_by"])
	require.Equal(t, p.wo, ab["work_order_id"])
	require.Equal(t, "ok", calls[1].Metadata["status"])

	// A call in flight is left alone; once its caller is killed, recover
	// settles it, once.
	cmd := hanging()
	res := recoverRun()
	require.Empty(t, res["settled"], "a call in flight is not abandoned")
	require.Equal(t, float64(1), res["in_flight"])
	kill(cmd)
	res = recoverRun()
	settled := res["settled"].([]any)
	require.Len(t, settled, 1)
	require.Equal(t, lastEntry(t, ledger, "LLM_RESERVED").Metadata["reservation_id"], settled[0].(map[string]any)["reservation_id"])
	require.Equal(t, float64(0), res["in_flight"])
	last := lastEntry(t, ledger, "LLM_CALL").Metadata
	require.Equal(t, "abandoned", last["status"])
	require.Equal(t, "recover", last["settled_by"])
	res = recoverRun()
	require.Empty(t, res["settled"], "idempotent: nothing is settled twice")
	require.Equal(t, 3, p.count(t, ho2Ledger, "LLM_CALL"), "two settled, one answered")

	r = p.run(t, cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
	require.Equal(t, 0, r.code, "%s%s", r.stdout, r.stderr)
	require.Equal(t, 4, p.count(t, ho2Ledger, "LLM_CALL"), "nothing more to settle")
	r = p.run(t, cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai")...)
	require.Equal(t, 1, r.code, "%s%s", r.stdout, r.stderr)
	require.Equal(t, "BUDGET_EXCEEDED", errorCodeOf(r.stdout))
	// The ledger verifies: every append left its signed checkpoint.
	p.must(t, cpLedger, p.admin, nil, "verify", "--plane", "ho2")
}

// TestLLMStreamHangUpAndSignal: a caller that closes the pipe mid-stream
// (the binary gets EPIPE, not a SIGPIPE death) and one stopped by SIGTERM
// both leave an LLM_CALL, status cancelled, charged the tokens so far.
func TestLLMStreamHangUpAndSignal(t *testing.T) {
	srv := llmtest.New()
	defer srv.Close()
	srv.Answer(strings.Repeat("token ", 60), 40, 60)
	srv.Stream(30, 100*time.Millisecond)
	p := newLLMPlane(t, 10, srv.ProvidersJSON(""))

	for _, how := range []string{"hang-up", "sigterm"} {
		before := p.count(t, ho2Ledger, "LLM_CALL")
		cmd := p.cmd(cpLLM, p.admin, nil, p.llmArgs("--provider", "local-openai", "--stream")...)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		require.NoError(t, cmd.Start())
		first, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err, how)
		require.True(t, strings.HasPrefix(first, `{"status":"delta"`), first)
		if how == "hang-up" {
			out.Close()
		} else {
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, how)
		require.Equal(t, 4, ee.ExitCode(), "%s: %s", how, errb.String())
		require.Equal(t, before+1, p.count(t, ho2Ledger, "LLM_CALL"), how)
		last := lastEntry(t, filepath.Join(p.root, ho2Ledger), "LLM_CALL")
		require.Equal(t, "cancelled", last.Metadata["status"], how)
		require.NotEqual(t, float64(0), last.Metadata["gen_ai.usage.output_tokens"], how)
		require.NotEqual(t, float64(0), last.Metadata["cost_micro_usd"], how)
	}
}

type llmEntry struct {
	EventType string         `json:"event_type"`
	Metadata  map[string]any `json:"metadata"`
}

func lastEntry(t *testing.T, path, et string) llmEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var last llmEntry
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e llmEntry
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		if e.EventType == et {
			last = e
		}
	}
	return last
}

func entriesOf(t *testing.T, path, et string) []llmEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var es []llmEntry
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e llmEntry
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		if e.EventType == et {
			es = append(es, e)
		}
	}
	return es
}
