package ledgercmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/authcmd"
	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/testenv"
	"github.com/control-plane/cp/pkg/ledger"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// workerGuard admits a worker and lets it append to HO1 only, recording
// every access it judged.
type workerGuard struct{ asked []cli.Access }

func (g *workerGuard) Admit(ctx context.Context, root string) (auth.Identity, error) {
	return auth.Identity{Subject: "worker-1", Auth: auth.AuthToken,
		Claims: &auth.Claims{Subject: "worker-1", Role: auth.RoleWorker, Tiers: []string{"ho1"}}}, nil
}

func (g *workerGuard) Authorize(ctx context.Context, id auth.Identity, a auth.Access) error {
	g.asked = append(g.asked, a)
	if a.Action != auth.ActionRead && a.Root != "" && a.Tier != "ho1" {
		return cli.Errorf(cli.ExitDenied, "FIREWALL_DENIED", "a worker appends to HO1 only, not %q", a.Tier)
	}
	return nil
}

func newPlane(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "admin"}})
	require.NoError(t, err)
	return root
}

func entries(t *testing.T, path string) []*ledger.Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var es []*ledger.Entry
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		e, err := ledger.ParseLine([]byte(line))
		require.NoError(t, err)
		es = append(es, e)
	}
	return es
}

// TestLedgerPathIsJudgedAsItsTier: a worker that names HO3's ledger by
// path (plainly, relative to HO3, or through a symbolic link from outside
// the plane) is judged as appending to HO3, and refused; nothing of its
// entry is written, and the refusal is recorded.
func TestLedgerPathIsJudgedAsItsTier(t *testing.T) {
	root := newPlane(t)
	gov := filepath.Join(root, "ledger", "governance.jsonl")
	link := filepath.Join(t.TempDir(), "innocent")
	require.NoError(t, os.Symlink(filepath.Join(root, "ledger"), link))
	ho1 := filepath.Join(root, "planes", "ho1")
	fileLink := filepath.Join(t.TempDir(), "mine.jsonl")
	require.NoError(t, os.Symlink(gov, fileLink))
	// planes/ho1/up -> planes: "planes/ho1/up/../ledger/x" is HO3's ledger
	// directory to the kernel, though it reads as HO1's.
	require.NoError(t, os.Symlink(filepath.Join(root, "planes"), filepath.Join(ho1, "up")))
	dotdot := ho1 + "/up/../ledger/governance.jsonl"
	for _, p := range []string{gov, filepath.Join(link, "governance.jsonl"), filepath.Join(root, "ledger", "other.jsonl"),
		filepath.Join(root, "config", "x.jsonl"), filepath.Join(ho1, "..", "..", "ledger", "governance.jsonl"), fileLink, dotdot} {
		t.Run(p, func(t *testing.T) {
			before := len(entries(t, gov))
			g := &workerGuard{}
			resp := Dispatch(context.Background(), cli.Request{"operation": "append", "ledger": p, "event_type": "DEPLOY"},
				cli.Options{Env: &cli.Env{}, Guard: g})
			require.Equal(t, cli.ExitDenied, resp.Exit, string(resp.Stdout))
			env, err := resp.Envelope()
			require.NoError(t, err)
			require.Equal(t, "FIREWALL_DENIED", env.Error.Code)
			require.Len(t, g.asked, 1)
			require.Equal(t, "ho3", g.asked[0].Tier)
			require.Equal(t, root, g.asked[0].Root)
			require.Equal(t, "DEPLOY", g.asked[0].EventType)
			es := entries(t, gov)
			require.Len(t, es, before+1, "only the refusal is appended")
			last := es[len(es)-1]
			require.Equal(t, "AUTHZ_DENIED", last.EventType)
			require.Equal(t, "worker-1", last.Metadata["subject"])
			require.Equal(t, "worker", last.Metadata["role"])
			require.Equal(t, "ho3", last.Metadata["tier"])
			require.NoFileExists(t, filepath.Join(root, "ledger", "other.jsonl"))
			require.NoFileExists(t, filepath.Join(root, "config", "x.jsonl"))
		})
	}
	// A ledger file outside every plane acts on none.
	g := &workerGuard{}
	out := filepath.Join(t.TempDir(), "own.jsonl")
	resp := Dispatch(context.Background(), cli.Request{"operation": "append", "ledger": out, "event_type": "NOTE"}, cli.Options{Env: &cli.Env{}, Guard: g})
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stderr))
	require.Equal(t, "", g.asked[0].Root)
	require.Equal(t, "", g.asked[0].Tier)
}

const ses = "SES-20261206-0123abcd"

// TestSessionLedger: --session appends to the session's ledger, started
// by a GENESIS that records HO2's head, and is judged as HO1 in that
// session, the work order named with it.
func TestSessionLedger(t *testing.T) {
	root := newPlane(t)
	ho2 := entries(t, filepath.Join(root, "planes", "ho2", "ledger", "workorder.jsonl"))
	g := &workerGuard{}
	id := auth.Identity{Subject: "worker-1", Auth: auth.AuthToken, Claims: &auth.Claims{Subject: "worker-1", Role: auth.RoleWorker}}
	opts := cli.Options{Env: &cli.Env{Root: root}, Guard: g, Identity: id}
	resp := Dispatch(context.Background(), cli.Request{"operation": "append", "session_id": ses, "work_order_id": "WO-20261206-001",
		"event_type": "NOTE", "metadata": map[string]any{"k": 1}}, opts)
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout)+string(resp.Stderr))
	env, err := resp.Envelope()
	require.NoError(t, err)
	require.Equal(t, "1", fmt.Sprint(env.Evidence["seq"]), "the GENESIS is seq 0")
	require.Equal(t, []cli.Access{{Root: root, Subject: "worker-1", Action: cli.ActionAppend, Tier: "ho1", Session: ses,
		WorkOrder: "WO-20261206-001", EventType: "NOTE", Tool: "cp-ledger", Verb: "append"}}, g.asked)
	es := entries(t, filepath.Join(root, "planes", "ho1", "sessions", ses, "ledger", "session.jsonl"))
	require.Len(t, es, 2)
	require.Equal(t, "GENESIS", es[0].EventType)
	require.Equal(t, ho2[len(ho2)-1].EntryHash, es[0].Metadata["parent_hash"])
	require.Equal(t, "planes/ho2/ledger/workorder.jsonl", es[0].Metadata["parent_ledger"])
	require.Equal(t, map[string]any{"k": json.Number("1"), "_tier": "HO1", "_session_id": ses, "_work_order_id": "WO-20261206-001"}, es[1].Metadata,
		"written with a verified token: no _auth stamp")

	// The next append continues it; show and verify read it.
	resp = Dispatch(context.Background(), cli.Request{"operation": "append", "session_id": ses, "event_type": "NOTE2"}, opts)
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))
	require.Len(t, entries(t, filepath.Join(root, "planes", "ho1", "sessions", ses, "ledger", "session.jsonl")), 3)
	resp = Dispatch(context.Background(), cli.Request{"operation": "verify", "session_id": ses}, opts)
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))

	// The same file named by path is judged as that session's.
	g.asked = nil
	p := filepath.Join(root, "planes", "ho1", "sessions", ses, "ledger", "session.jsonl")
	resp = Dispatch(context.Background(), cli.Request{"operation": "append", "ledger": p, "event_type": "NOTE3"}, opts)
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))
	require.Equal(t, "ho1", g.asked[0].Tier)
	require.Equal(t, ses, g.asked[0].Session)
}

// TestSessionIDChecked: a session id that is not one (a path) is refused
// before any path is built from it.
func TestSessionIDChecked(t *testing.T) {
	root := newPlane(t)
	for _, bad := range []string{"../../../ledger", "SES-20261206-0123ABCD", "SES-1-2", ""} {
		resp := Dispatch(context.Background(), cli.Request{"operation": "append", "session_id": bad, "event_type": "X"},
			cli.Options{Env: &cli.Env{Root: root}})
		if bad == "" {
			continue // no session: the tier's own ledger
		}
		require.Equal(t, cli.ExitInvalid, resp.Exit, "%q: %s", bad, resp.Stdout)
	}
	made, err := os.ReadDir(filepath.Join(root, "planes", "ho1", "sessions"))
	require.NoError(t, err)
	require.Empty(t, made, "no session directory made")
	resp := Dispatch(context.Background(), cli.Request{"operation": "append", "session_id": ses, "plane": "ho3", "event_type": "X"},
		cli.Options{Env: &cli.Env{Root: root}})
	require.Equal(t, cli.ExitUsage, resp.Exit, string(resp.Stdout))
}

// TestAuthStamp: an entry written without a verified token carries
// metadata._auth "off"; one written with a token does not; a caller
// cannot give a reserved key, so it can neither forge nor hide the stamp.
func TestAuthStamp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.jsonl")
	off := cli.Options{Env: &cli.Env{}, Identity: auth.Identity{Subject: "me", Auth: auth.AuthOff}}
	tok := cli.Options{Env: &cli.Env{}, Identity: auth.Identity{Subject: "svc", Auth: auth.AuthToken}}
	meta := map[string]any{"k": "v"}
	resp := Dispatch(context.Background(), cli.Request{"operation": "append", "ledger": path, "event_type": "A", "metadata": meta}, off)
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))
	resp = Dispatch(context.Background(), cli.Request{"operation": "append", "ledger": path, "event_type": "B", "metadata": meta}, tok)
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))
	es := entries(t, path)
	require.Equal(t, map[string]any{"k": "v", "_auth": "off"}, es[0].Metadata)
	require.Equal(t, "me", es[0].Actor)
	require.Equal(t, map[string]any{"k": "v"}, es[1].Metadata)
	require.Equal(t, "svc", es[1].Actor)

	for _, c := range []struct {
		opts cli.Options
		meta map[string]any
		ok   bool
	}{
		{tok, map[string]any{"_auth": "off"}, false},     // a forged bypass
		{tok, map[string]any{"_auth": "token"}, false},   // a forged token
		{off, map[string]any{"_auth": "token"}, false},   // a hidden bypass
		{off, map[string]any{"_auth": "off"}, true},      // show | append: what is stamped anyway
		{off, map[string]any{"_tier": "HO3"}, false},     // a bare ledger has no tier
		{tok, map[string]any{"_session_id": ses}, false}, // no session named
		{off, map[string]any{"_anything": 1}, false},
	} {
		resp := Dispatch(context.Background(), cli.Request{"operation": "append", "ledger": path, "event_type": "C", "metadata": c.meta}, c.opts)
		if c.ok {
			require.Equal(t, cli.ExitOK, resp.Exit, "%v: %s", c.meta, resp.Stdout)
			continue
		}
		require.Equal(t, cli.ExitDenied, resp.Exit, "%v: %s", c.meta, resp.Stdout)
		env, err := resp.Envelope()
		require.NoError(t, err)
		require.Equal(t, "RESERVED_METADATA", env.Error.Code)
	}
	require.Len(t, entries(t, path), 3, "nothing refused was written")
	require.Equal(t, map[string]any{"k": "v"}, meta, "the caller's map is not changed")
}

// TestStreamOutlivesItsToken: a stream admits its caller once, but a token
// that expires while the stream runs allows nothing after: the next
// request is refused (AUTH_EXPIRED) and recorded, and nothing of it is
// written.
func TestStreamOutlivesItsToken(t *testing.T) {
	root := newPlane(t)
	exp := time.Now().Add(-time.Hour) // the clock below decides; the token's exp is in the real past
	var now atomic.Int64
	now.Store(exp.Add(-time.Minute).Unix())
	g := auth.NewGuard(auth.Config{Now: func() time.Time { return time.Unix(now.Load(), 0) }})
	c := &auth.Claims{Subject: "w1", Role: auth.RoleWorker, Tiers: []string{"ho1"}, WorkOrder: "WO-20261206-001",
		Session: ses, ExpiresAt: exp.Unix()}
	opts := cli.Options{Env: &cli.Env{Root: root}, Guard: g, Identity: auth.Identity{Subject: "w1", Auth: auth.AuthToken, Claims: c}}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var w writers
	done := make(chan int)
	go func() {
		defer w.close()
		code := cli.RunWith(context.Background(), tool(&w), opts, []string{"append", "--session", ses, "--format", "json"}, inR, outW, io.Discard)
		outW.Close()
		done <- code
	}()
	out := bufio.NewReader(outR)
	fmt.Fprintln(inW, `{"event_type":"ONE"}`)
	line, err := out.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, `"status":"ok"`)
	now.Store(exp.Add(time.Hour).Unix()) // the token's time is up
	fmt.Fprintln(inW, `{"event_type":"TWO"}`)
	inW.Close()
	rest, _ := io.ReadAll(out)
	require.Equal(t, cli.ExitDenied, <-done, string(rest))
	require.Contains(t, string(rest), `"code":"AUTH_EXPIRED"`)
	es := entries(t, filepath.Join(root, "planes", "ho1", "sessions", ses, "ledger", "session.jsonl"))
	require.Equal(t, "ONE", es[len(es)-1].EventType, "nothing after the token expired")
	ho3 := entries(t, filepath.Join(root, "ledger", "governance.jsonl"))
	require.Equal(t, "AUTHZ_DENIED", ho3[len(ho3)-1].EventType)
	require.Equal(t, "AUTH_EXPIRED", ho3[len(ho3)-1].Metadata["code"])
}

// TestSessionGenesisParent: a session's GENESIS records HO2's head as the
// tool reads it. A worker starting its own session with cp-ledger genesis
// could name any parent hash (G6 does not check a session's parent), so
// the session hung off a history it chose: now a named parent is refused
// and the tool records HO2's head.
func TestSessionGenesisParent(t *testing.T) {
	root := newPlane(t)
	ho2 := entries(t, filepath.Join(root, "planes", "ho2", "ledger", "workorder.jsonl"))
	opts := cli.Options{Env: &cli.Env{Root: root}, Guard: &workerGuard{}}
	path := filepath.Join(root, "planes", "ho1", "sessions", ses, "ledger", "session.jsonl")
	for _, req := range []cli.Request{
		{"operation": "genesis", "session_id": ses, "parent_hash": strings.Repeat("0", 64)},
		{"operation": "genesis", "session_id": ses, "parent_ledger": filepath.Join(root, "ledger", "governance.jsonl")},
	} {
		resp := Dispatch(context.Background(), req, opts)
		require.Equal(t, cli.ExitDenied, resp.Exit, string(resp.Stdout))
		env, err := resp.Envelope()
		require.NoError(t, err)
		require.Equal(t, "PARENT_MISMATCH", env.Error.Code)
		require.NoFileExists(t, path)
	}
	resp := Dispatch(context.Background(), cli.Request{"operation": "genesis", "session_id": ses, "metadata": map[string]any{"k": "v"}}, opts)
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))
	es := entries(t, path)
	require.Len(t, es, 1)
	require.Equal(t, "GENESIS", es[0].EventType)
	require.Equal(t, ho2[len(ho2)-1].EntryHash, es[0].Metadata["parent_hash"])
	require.Equal(t, "planes/ho2/ledger/workorder.jsonl", es[0].Metadata["parent_ledger"])
	require.Equal(t, ses, es[0].Metadata["_session_id"])
	require.Equal(t, "v", es[0].Metadata["k"])
}

// TestBorrowedPlaneDirectories: a directory holding a copy of a plane's
// tier.json, its ledger/ and planes/ho1 linked to the real plane's, is a
// plane of its own to the firewall: it trusts no key for auth, so it asks
// no token, and a worker's append as "auth off" landed in the real plane's
// HO3 or HO1 ledger, signed with its key. A plane's ledger is now opened
// only where it is: through a link in the plane, the append is refused and
// the real ledger is untouched.
func TestBorrowedPlaneDirectories(t *testing.T) {
	root := newPlane(t)
	fake := filepath.Join(t.TempDir(), "mine")
	require.NoError(t, os.MkdirAll(filepath.Join(fake, "planes"), 0o755))
	tj, err := os.ReadFile(filepath.Join(root, "tier.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(fake, "tier.json"), tj, 0o644))
	require.NoError(t, os.Symlink(filepath.Join(root, "ledger"), filepath.Join(fake, "ledger")))
	for _, id := range []string{"ho2", "ho1"} {
		require.NoError(t, os.Symlink(filepath.Join(root, "planes", id), filepath.Join(fake, "planes", id)))
	}
	gov := filepath.Join(root, "ledger", "governance.jsonl")
	ho1 := filepath.Join(root, "planes", "ho1", "ledger", "execution.jsonl")
	if _, err := os.Stat(ho1); err != nil {
		matches, _ := filepath.Glob(filepath.Join(root, "planes", "ho1", "ledger", "*.jsonl"))
		require.NotEmpty(t, matches)
		ho1 = matches[0]
	}
	before, before1 := len(entries(t, gov)), len(entries(t, ho1))
	for _, req := range []cli.Request{
		{"operation": "append", "event_type": "EVIL"},
		{"operation": "append", "event_type": "EVIL", "plane": "ho1"},
		{"operation": "append", "event_type": "EVIL", "session_id": ses},
	} {
		resp := Dispatch(context.Background(), req, cli.Options{Env: &cli.Env{Root: fake}})
		require.NotEqual(t, cli.ExitOK, resp.Exit, "%v: %s", req, resp.Stdout)
		env, err := resp.Envelope()
		require.NoError(t, err)
		require.Equal(t, "LEDGER_LINKED", env.Error.Code, "%v", req)
	}
	require.Len(t, entries(t, gov), before, "nothing lands in the real HO3 ledger")
	require.Len(t, entries(t, ho1), before1, "nor in HO1's")
	require.NoDirExists(t, filepath.Join(root, "planes", "ho1", "sessions", ses))
}

// TestSessionLedgerByPath: a session's ledger named by path is the
// session's, as --session names it: an empty one starts with the GENESIS
// that records HO2's head, and its entries carry _session_id (a worker
// started its session by path with no GENESIS and unstamped entries).
func TestSessionLedgerByPath(t *testing.T) {
	root := newPlane(t)
	ho2 := entries(t, filepath.Join(root, "planes", "ho2", "ledger", "workorder.jsonl"))
	p := filepath.Join(root, "planes", "ho1", "sessions", ses, "ledger", "session.jsonl")
	resp := Dispatch(context.Background(), cli.Request{"operation": "append", "ledger": p, "event_type": "NOTE"},
		cli.Options{Env: &cli.Env{}, Guard: &workerGuard{}})
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))
	es := entries(t, p)
	require.Len(t, es, 2)
	require.Equal(t, "GENESIS", es[0].EventType)
	require.Equal(t, ho2[len(ho2)-1].EntryHash, es[0].Metadata["parent_hash"])
	require.Equal(t, ses, es[1].Metadata["_session_id"])
}

// TestStreamHonoursRevocation: a stream admitted a token once and kept
// using it after cp-auth revoke: a revocation took effect only in the next
// process. An admission now stands auth.Recheck (here: not at all), then
// the token is verified again, revocations included.
func TestStreamHonoursRevocation(t *testing.T) {
	defer func(r time.Duration) { auth.Recheck = r }(auth.Recheck)
	auth.Recheck = 0
	root := newPlane(t)
	authRun := func(tok string, req cli.Request) map[string]any {
		resp := authcmd.Dispatch(context.Background(), req, cli.Options{Env: &cli.Env{Root: root, Token: tok}})
		require.Equal(t, 0, resp.Exit, string(resp.Stdout))
		env, err := resp.Envelope()
		require.NoError(t, err)
		return env.Result.(map[string]any)
	}
	admin := authRun("", cli.Request{"operation": "init", "sub": "ops"})["token"].(string)
	worker := authRun(admin, cli.Request{"operation": "token", "sub": "w1", "role": "worker", "tiers": []any{"ho1"},
		"wo": "WO-20261206-001", "session": ses})["token"].(string)

	opts := cli.Options{Env: &cli.Env{Root: root, Token: worker}}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var w writers
	done := make(chan int)
	go func() {
		defer w.close()
		code := cli.RunWith(context.Background(), tool(&w), opts, []string{"append", "--session", ses, "--format", "json"}, inR, outW, io.Discard)
		outW.Close()
		done <- code
	}()
	out := bufio.NewReader(outR)
	fmt.Fprintln(inW, `{"event_type":"ONE"}`)
	line, err := out.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, `"status":"ok"`)
	authRun(admin, cli.Request{"operation": "revoke", "sub": "w1"})
	fmt.Fprintln(inW, `{"event_type":"TWO"}`)
	inW.Close()
	rest, _ := io.ReadAll(out)
	require.Equal(t, cli.ExitDenied, <-done, string(rest))
	require.Contains(t, string(rest), `"code":"AUTH_REVOKED"`)
	es := entries(t, filepath.Join(root, "planes", "ho1", "sessions", ses, "ledger", "session.jsonl"))
	require.Equal(t, "ONE", es[len(es)-1].EventType, "nothing after the revocation")
}

// TestLedgerLinkFlippedInAStream: a stream names a ledger through a
// directory link of its own, first pointing outside every plane (judged:
// no plane), then, between two lines, at HO3's ledger directory. The
// firewall's judgement of the path stands for the stream, so the verb must
// not go where the path leads now: the second line is refused and HO3's
// ledger is untouched.
func TestLedgerLinkFlippedInAStream(t *testing.T) {
	root := newPlane(t)
	gov := filepath.Join(root, "ledger", "governance.jsonl")
	mine := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(mine, "real"), 0o755))
	link := filepath.Join(mine, "d")
	require.NoError(t, os.Symlink(filepath.Join(mine, "real"), link))
	before := len(entries(t, gov))

	g := &workerGuard{}
	opts := cli.Options{Env: &cli.Env{}, Guard: g}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var w writers
	done := make(chan int)
	go func() {
		defer w.close()
		code := cli.RunWith(context.Background(), tool(&w), opts, []string{"append", "--format", "json"}, inR, outW, io.Discard)
		outW.Close()
		done <- code
	}()
	out := bufio.NewReader(outR)
	p := filepath.Join(link, "governance.jsonl")
	fmt.Fprintf(inW, `{"event_type":"ONE","ledger":%q}`+"\n", p)
	line, err := out.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, `"status":"ok"`)
	require.NoError(t, os.Remove(link))
	require.NoError(t, os.Symlink(filepath.Join(root, "ledger"), link))
	fmt.Fprintf(inW, `{"event_type":"TWO","ledger":%q}`+"\n", p)
	inW.Close()
	rest, _ := io.ReadAll(out)
	code := <-done
	require.Len(t, entries(t, gov), before, "nothing lands in HO3's ledger: %s", rest)
	require.NotEqual(t, cli.ExitOK, code, string(rest))
}
