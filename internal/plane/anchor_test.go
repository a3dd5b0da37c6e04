package plane_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

var tester = plane.Actor{Name: "tester"}

const ses = "SES-20261206-0123abcd"

func anchorPlane(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: tester})
	require.NoError(t, err)
	return root
}

// appendTo appends n entries to the ledger at rel (relative to root) of
// tier planeID, opened as the plane opens it; a session's ledger starts
// with a GENESIS.
func appendTo(t *testing.T, root, planeID, rel string, n int) {
	t.Helper()
	ctx := context.Background()
	dir, err := plane.Dir(root, planeID)
	require.NoError(t, err)
	tier, err := plane.ReadTier(dir)
	require.NoError(t, err)
	s, err := plane.OpenTierLedger(dir, tier, filepath.Join(root, filepath.FromSlash(rel)), plane.ForAppend, tester)
	require.NoError(t, err)
	defer s.Close()
	st, err := s.State(ctx)
	require.NoError(t, err)
	if st.Size == 0 {
		_, err := ledger.Genesis(ctx, s, ledger.Draft{SubmissionID: ses, Decision: "CREATED"})
		require.NoError(t, err)
	}
	for i := 0; i < n; i++ {
		_, err := s.Append(ctx, []ledger.Draft{{EventType: "NOTE", SubmissionID: "x", Decision: "OK"}})
		require.NoError(t, err)
	}
}

// state returns the size and hex root of the ledger at rel.
func state(t *testing.T, root, rel string) (int64, string) {
	t.Helper()
	s, err := ledger.OpenFileStore(filepath.Join(root, filepath.FromSlash(rel)))
	require.NoError(t, err)
	defer s.Close()
	st, err := s.State(context.Background())
	require.NoError(t, err)
	return st.Size, hex.EncodeToString(st.Root[:])
}

func anchors(t *testing.T, root, parent, child string) []plane.Anchor {
	t.Helper()
	s, err := ledger.OpenFileStore(filepath.Join(root, filepath.FromSlash(parent)))
	require.NoError(t, err)
	defer s.Close()
	var out []plane.Anchor
	require.NoError(t, s.Find(context.Background(), ledger.Query{EventTypes: []string{plane.AnchorEvent}, Metadata: map[string]string{"path": child}}, func(e *ledger.Entry) bool {
		a, err := plane.ParseAnchor(e)
		require.NoError(t, err)
		out = append(out, a)
		return true
	}))
	return out
}

func codeOf(t *testing.T, err error) string {
	t.Helper()
	require.Error(t, err)
	var c interface{ Code() string }
	require.ErrorAs(t, err, &c)
	return c.Code()
}

func g6(t *testing.T, root string) *gate.Result {
	t.Helper()
	r, err := gate.G6(context.Background(), root)
	require.NoError(t, err)
	return r
}

const (
	ho3Ledger = "ledger/governance.jsonl"
	ho2Ledger = "planes/ho2/ledger/workorder.jsonl"
	sesLedger = "planes/ho1/sessions/" + ses + "/ledger/session.jsonl"
)

// TestAnchorChain: the session's checkpoint lands in HO2's ledger, then
// HO2's (which now holds that anchor) in HO3's, with the sizes and roots
// the children have; anchoring again with nothing grown writes nothing;
// growth is anchored at the new size.
func TestAnchorChain(t *testing.T) {
	ctx := context.Background()
	root := anchorPlane(t)
	appendTo(t, root, "ho1", sesLedger, 2)

	es, err := plane.AnchorChain(ctx, root, tester, "WO-20261206-001", ses)
	require.NoError(t, err)
	require.Len(t, es, 3, "the session's, HO1's own, HO2's")
	require.Equal(t, plane.AnchorEvent, es[0].EventType)
	require.Equal(t, "HO2", es[0].Metadata["_tier"])
	require.Equal(t, "HO2", es[1].Metadata["_tier"])
	require.Equal(t, "planes/ho1/ledger/worker.jsonl", es[1].Metadata["path"])
	require.Equal(t, "HO3", es[2].Metadata["_tier"])

	size, root1 := state(t, root, sesLedger)
	as := anchors(t, root, ho2Ledger, sesLedger)
	require.Len(t, as, 1)
	require.Equal(t, int64(3), size)
	require.Equal(t, size, as[0].TreeSize)
	require.Equal(t, root1, as[0].RootHash)
	require.Equal(t, "WO-20261206-001", as[0].WorkOrderID)
	require.Equal(t, ses, as[0].SessionID)
	stored, err := os.ReadFile(filepath.Join(root, "planes/ho1/sessions", ses, "ledger/session.checkpoint"))
	require.NoError(t, err)
	require.Equal(t, string(stored), as[0].Checkpoint, "the stored, signed checkpoint is reused")
	require.Contains(t, as[0].Checkpoint, "\n\n— ", "signed")

	size2, root2 := state(t, root, ho2Ledger)
	as2 := anchors(t, root, ho3Ledger, ho2Ledger)
	require.Len(t, as2, 1)
	require.Equal(t, size2, as2[0].TreeSize, "HO2's anchor covers the session's anchor")
	require.Equal(t, root2, as2[0].RootHash)

	es, err = plane.AnchorChain(ctx, root, tester, "", ses)
	require.NoError(t, err)
	require.Empty(t, es, "idempotent when nothing grew")

	appendTo(t, root, "ho2", ho2Ledger, 1)
	es, err = plane.AnchorChain(ctx, root, tester, "", "")
	require.NoError(t, err)
	require.Len(t, es, 1)
	as2 = anchors(t, root, ho3Ledger, ho2Ledger)
	require.Equal(t, size2+1, as2[1].TreeSize)

	r := g6(t, root)
	require.True(t, r.Passed, "%v", r.Errors)
	require.Equal(t, 4, r.Details["anchors"])
}

// TestAnchorWorker: HO1's own ledger (worker.jsonl) is anchored in HO2's
// like a session's, at every chain: when it grew, then checked; a cut
// below its anchor, re-signed, stops the next step and fails G6.
func TestAnchorWorker(t *testing.T) {
	ctx := context.Background()
	root := anchorPlane(t)
	const worker = "planes/ho1/ledger/worker.jsonl"
	appendTo(t, root, "ho1", worker, 2)
	_, err := plane.AnchorChain(ctx, root, tester, "", "")
	require.NoError(t, err)
	size, r1 := state(t, root, worker)
	as := anchors(t, root, ho2Ledger, worker)
	require.Len(t, as, 1)
	require.Equal(t, size, as[0].TreeSize)
	require.Equal(t, r1, as[0].RootHash)
	require.True(t, strings.HasSuffix(as[0].Origin, "/ho1/worker"), as[0].Origin)
	es, err := plane.AnchorChain(ctx, root, tester, "", "")
	require.NoError(t, err)
	require.Empty(t, es, "idempotent")
	appendTo(t, root, "ho1", worker, 1)
	es, err = plane.AnchorChain(ctx, root, tester, "", "")
	require.NoError(t, err)
	require.Len(t, es, 2, "HO1's own, then HO2's")
	require.True(t, g6(t, root).Passed)

	// a fresh ledger of one entry in its place, signed with the plane's key
	path := filepath.Join(root, filepath.FromSlash(worker))
	for _, side := range []string{".jsonl", ".tlog", ".checkpoint", ".idx"} {
		require.NoError(t, os.RemoveAll(strings.TrimSuffix(path, ".jsonl")+side))
	}
	appendTo(t, root, "ho1", worker, 0)
	_, err = plane.AnchorChain(ctx, root, tester, "", "")
	require.Equal(t, plane.CodeLedgerTruncated, codeOf(t, err))
	r := g6(t, root)
	require.False(t, r.Passed)
	hasFinding(t, r, plane.CodeLedgerTruncated, worker, "its history was cut")
}

// TestAnchorChainRefusals: a child cut below its last anchor, rewritten
// before it, or gone, is refused and nothing is anchored; a session named
// without a ledger, or with a bad id, too.
func TestAnchorChainRefusals(t *testing.T) {
	ctx := context.Background()
	root := anchorPlane(t)
	_, err := plane.AnchorChain(ctx, root, tester, "", ses)
	require.Equal(t, "SESSION_NOT_FOUND", codeOf(t, err))
	_, err = plane.AnchorChain(ctx, root, tester, "", "../../x")
	require.Equal(t, "USAGE", codeOf(t, err))

	appendTo(t, root, "ho1", sesLedger, 3)
	_, err = plane.AnchorChain(ctx, root, tester, "", ses)
	require.NoError(t, err)
	ho2Before, _ := state(t, root, ho2Ledger)

	path := filepath.Join(root, filepath.FromSlash(sesLedger))
	orig, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := bytes.SplitAfter(orig, []byte("\n"))
	require.NoError(t, os.WriteFile(path, bytes.Join(lines[:2], nil), 0o644))
	_, err = plane.AnchorChain(ctx, root, tester, "", ses)
	require.Equal(t, plane.CodeLedgerTruncated, codeOf(t, err))
	require.ErrorContains(t, err, "HO2's ledger seq")

	require.NoError(t, os.Remove(path))
	_, err = plane.AnchorChain(ctx, root, tester, "", ses)
	require.Equal(t, plane.CodeLedgerTruncated, codeOf(t, err))
	require.ErrorContains(t, err, "is missing")

	ho2After, _ := state(t, root, ho2Ledger)
	require.Equal(t, ho2Before, ho2After, "nothing anchored")
}

// TestAnchorChainRewrittenHO2: HO2's ledger rewritten below its anchor
// in HO3 (its stored hashes and signed checkpoint too) is ANCHOR_MISMATCH
// for the next anchor, and for G6.
func TestAnchorChainRewrittenHO2(t *testing.T) {
	ctx := context.Background()
	root := anchorPlane(t)
	_, err := plane.AnchorChain(ctx, root, tester, "", "")
	require.NoError(t, err)
	a := anchors(t, root, ho3Ledger, ho2Ledger)[0]
	// A fresh ledger in its place, longer than the anchored one, its
	// stored hashes and signed checkpoint all its own.
	for _, side := range []string{".jsonl", ".tlog", ".checkpoint", ".idx"} {
		require.NoError(t, os.RemoveAll(filepath.Join(root, "planes/ho2/ledger/workorder"+side)))
	}
	appendTo(t, root, "ho2", ho2Ledger, int(a.TreeSize)+1)
	_, err = plane.AnchorChain(ctx, root, tester, "", "")
	require.Equal(t, plane.CodeAnchorMismatch, codeOf(t, err))
	require.ErrorContains(t, err, "HO3's ledger seq "+strconv.FormatInt(a.Seq, 10))
	r := g6(t, root)
	require.False(t, r.Passed)
	hasFinding(t, r, plane.CodeAnchorMismatch, ho2Ledger, "ledger/governance.jsonl seq "+strconv.FormatInt(a.Seq, 10))
}

// hasFinding requires a finding of r with code and path whose message
// holds substr.
func hasFinding(t *testing.T, r *gate.Result, code, path, substr string) {
	t.Helper()
	for _, f := range r.Errors {
		if f.Code == code && f.Path == path && strings.Contains(f.Message, substr) {
			return
		}
	}
	t.Fatalf("no %s finding for %s holding %q in %+v", code, path, substr, r.Errors)
}

// TestAnchorCheckpointWithoutAnchor is what a kill -9 between the child's
// checkpoint and the parent's append leaves: a child checkpoint newer
// than its last anchor. The plane verifies, and the next anchor reuses
// that checkpoint and continues.
func TestAnchorCheckpointWithoutAnchor(t *testing.T) {
	ctx := context.Background()
	root := anchorPlane(t)
	_, err := plane.AnchorChain(ctx, root, tester, "", "")
	require.NoError(t, err)
	appendTo(t, root, "ho2", ho2Ledger, 2)
	dir := filepath.Join(root, "planes", "ho2")
	s, tier, err := plane.OpenLedger(dir, plane.ForCheckpoint, tester)
	require.NoError(t, err)
	c, note, err := s.Checkpoint(ctx, plane.Origin(tier, plane.LedgerPath(dir, tier)))
	require.NoError(t, err)
	s.Close()
	r := g6(t, root)
	require.True(t, r.Passed, "%v", r.Errors)

	es, err := plane.AnchorChain(ctx, root, tester, "", "")
	require.NoError(t, err)
	require.Len(t, es, 1)
	as := anchors(t, root, ho3Ledger, ho2Ledger)
	require.Equal(t, c.Size, as[len(as)-1].TreeSize)
	require.Equal(t, string(note), as[len(as)-1].Checkpoint)
	require.True(t, g6(t, root).Passed)
}

// TestAnchorHelperProcess is not a test: it is the process the tests
// below start (and kill), anchoring in a loop.
func TestAnchorHelperProcess(t *testing.T) {
	root := os.Getenv("CP_ANCHOR_HELPER_ROOT")
	if root == "" {
		t.Skip("run by the tests that start it")
	}
	os.Setenv("XDG_CONFIG_HOME", os.Getenv("CP_ANCHOR_HELPER_XDG"))
	rounds, _ := strconv.Atoi(os.Getenv("CP_ANCHOR_HELPER_ROUNDS"))
	ctx := context.Background()
	sid := ses
	if os.Getenv("CP_ANCHOR_HELPER_NOSESSION") != "" {
		sid = "" // HO2 grows and is anchored with nothing below it to anchor
	}
	for i := 0; rounds == 0 || i < rounds; i++ {
		if sid != "" {
			appendTo(t, root, "ho1", sesLedger, 1)
		}
		appendTo(t, root, "ho2", ho2Ledger, 1)
		if _, err := plane.AnchorChain(ctx, root, tester, "", sid); err != nil {
			fmt.Fprintln(os.Stderr, "anchor:", err)
			os.Exit(1)
		}
	}
}

func helper(t *testing.T, root string, rounds int, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestAnchorHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CP_ANCHOR_HELPER_ROOT="+root, "CP_ANCHOR_HELPER_XDG="+os.Getenv("XDG_CONFIG_HOME"),
		"CP_ANCHOR_HELPER_ROUNDS="+strconv.Itoa(rounds))
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("helper output:\n%s", out.String())
		}
	})
	return cmd
}

// TestAnchorConcurrentProcesses: two processes appending and anchoring at
// once; every anchor both wrote holds, and G6 passes.
func TestAnchorConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	root := anchorPlane(t)
	appendTo(t, root, "ho1", sesLedger, 1)
	a, b := helper(t, root, 8), helper(t, root, 8)
	require.NoError(t, a.Wait())
	require.NoError(t, b.Wait())
	r := g6(t, root)
	require.True(t, r.Passed, "%v", r.Errors)
	require.GreaterOrEqual(t, r.Details["anchors"], 16, "each process anchors what it appended (or finds the other's)")
	size, rootHash := state(t, root, sesLedger)
	es, err := plane.AnchorChain(context.Background(), root, tester, "", ses)
	require.NoError(t, err)
	if len(es) == 0 { // the last anchor written covers the session's head
		as := anchors(t, root, ho2Ledger, sesLedger)
		top := as[0]
		for _, a := range as {
			if a.TreeSize > top.TreeSize {
				top = a
			}
		}
		require.Equal(t, size, top.TreeSize)
		require.Equal(t, rootHash, top.RootHash)
	}
}

// TestAnchorConcurrentNoSession: processes that each grow HO2 and anchor
// the chain with no session (HO1's own ledger checked, nothing written
// below HO2), at once. Each pass reads HO2's state as the parent of HO1's
// link and again as the child of HO3's: the second read must come after
// HO2's last anchor in HO3 is found, or another process that grew HO2 and
// anchored it meanwhile makes the older size read as a cut history (a
// false LEDGER_TRUNCATED, seen once in CI through wo_anchor.txtar).
func TestAnchorConcurrentNoSession(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	root := anchorPlane(t)
	var cmds []*exec.Cmd
	for range 4 {
		cmds = append(cmds, helper(t, root, 60, "CP_ANCHOR_HELPER_NOSESSION=1"))
	}
	for _, c := range cmds {
		require.NoError(t, c.Wait())
	}
	r := g6(t, root)
	require.True(t, r.Passed, "%v", r.Errors)
}

// TestAnchorKill9: a process appending and anchoring is killed (SIGKILL)
// at random instants, between or inside the child's checkpoint and the
// parent's append. After each kill, the next step (an append, then an
// anchor) continues, and the plane verifies.
func TestAnchorKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	root := anchorPlane(t)
	appendTo(t, root, "ho1", sesLedger, 1)
	for i := 0; i < 5; i++ {
		cmd := helper(t, root, 0)
		time.Sleep(time.Duration(150+rand.IntN(250)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		// The next work-order step: its entry (repairing a torn tail),
		// then its anchors.
		appendTo(t, root, "ho1", sesLedger, 1)
		appendTo(t, root, "ho2", ho2Ledger, 1)
		_, err := plane.AnchorChain(context.Background(), root, tester, "", ses)
		require.NoError(t, err, "round %d", i)
		r := g6(t, root)
		require.True(t, r.Passed, "round %d: %v", i, r.Errors)
	}
}

// BenchmarkAnchorChain is AnchorChain in process, HO2 → HO3 on a plane
// whose HO3 ledger holds 10,000 entries: noop when HO2 did not grow (the
// check every step makes before it acts), grown after one HO2 entry (the
// anchor a step writes after its entry; the HO2 append is not timed).
func BenchmarkAnchorChain(b *testing.B) {
	ctx := context.Background()
	root := filepath.Join(b.TempDir(), "plane")
	_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: tester})
	require.NoError(b, err)
	s, _, err := plane.OpenLedger(root, plane.ForAppend, tester)
	require.NoError(b, err)
	drafts := make([]ledger.Draft, 10_000)
	for i := range drafts {
		drafts[i] = ledger.Draft{EventType: "TOOL_CALL", SubmissionID: "x", Decision: "ALLOW"}
	}
	_, err = s.Append(ctx, drafts)
	require.NoError(b, err)
	s.Close()
	ho2, _, err := plane.OpenLedger(filepath.Join(root, "planes", "ho2"), plane.ForAppend, tester)
	require.NoError(b, err)
	defer ho2.Close()
	_, err = plane.AnchorChain(ctx, root, tester, "", "")
	require.NoError(b, err)
	b.Run("noop", func(b *testing.B) {
		for range b.N {
			if _, err := plane.AnchorChain(ctx, root, tester, "", ""); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("grown", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			if _, err := ho2.Append(ctx, []ledger.Draft{{EventType: "NOTE", SubmissionID: "x", Decision: "OK"}}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if es, err := plane.AnchorChain(ctx, root, tester, "", ""); err != nil || len(es) != 1 {
				b.Fatal(err, len(es))
			}
		}
	})
}
