package workorder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/ledger"
)

// started creates, approves and starts a work order on a new plane whose
// scope is lib/router/**, and returns the plane and the session.
func started(t *testing.T, turns int64) (string, *Started) {
	t.Helper()
	root, signer := newPlane(t)
	d := draft()
	d.Budget.Turns = turns
	c := create(t, root, d)
	_, err := Approve(context.Background(), root, c.WorkOrder.ID, signer, bob)
	require.NoError(t, err)
	s, err := Start(context.Background(), root, c.WorkOrder.ID, alice)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "lib", "router"), 0o755))
	return root, s
}

func writeFile(t *testing.T, root, rel, body string) string {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(root, filepath.FromSlash(rel)), []byte(body), 0o644))
	return sha([]byte(body))
}

// TestTurnInputs holds a turn's declared inputs to what is on disk, in
// the ledgers and in the registries at record time, each refusal recorded
// as TURN_REFUSED, and a turn that passes recorded as TURN.
func TestTurnInputs(t *testing.T) {
	ctx := context.Background()
	root, s := started(t, 20)
	h := writeFile(t, root, "lib/router/a.py", "print(1)\n")
	seq := func(n int64) *int64 { return &n }
	// HO2's WO_STARTED, declared by its checkpoint origin
	ho2, _ := plane.Dir(root, "ho2")
	tier, err := plane.ReadTier(ho2)
	require.NoError(t, err)
	ho2Origin := plane.Origin(tier, plane.LedgerPath(ho2, tier))
	ho1, _ := plane.Dir(root, "ho1")
	t1, err := plane.ReadTier(ho1)
	require.NoError(t, err)
	sesOrigin := plane.Origin(t1, plane.SessionLedgerPath(root, s.SessionID))
	// each session's ledger has its own origin (DESIGN.md §5)
	s2, err := Start(ctx, root, s.ID, alice)
	require.NoError(t, err)
	ses2Origin := plane.SessionOrigin(t1, s2.SessionID)
	require.NotEqual(t, sesOrigin, ses2Origin)
	require.Equal(t, t1.PlaneName+"/ho1/sessions/"+s.SessionID, sesOrigin)
	legacy := t1.PlaneName + "/ho1/session"
	// a directory link inside the scope, pointing inside the plane
	require.NoError(t, os.MkdirAll(filepath.Join(root, "lib", "real"), 0o755))
	writeFile(t, root, "lib/real/b.py", "b\n")
	require.NoError(t, os.Symlink(filepath.Join(root, "lib", "real"), filepath.Join(root, "lib", "router", "linked")))

	turn := func(n int64, in ...Input) error {
		_, err := Turn(ctx, root, s.SessionID, &Header{TurnNumber: n, WorkOrderID: s.ID, DeclaredInputs: in}, alice)
		return err
	}
	for _, c := range []struct {
		name string
		in   Input
		code string
	}{
		{"a hash that is not the file's", Input{Path: "lib/router/a.py", SHA256: sha([]byte("other"))}, CodeInputMismatch},
		{"a missing file", Input{Path: "lib/router/none.py", SHA256: h}, CodeInputMismatch},
		{"a link on the way", Input{Path: "lib/router/linked/b.py", SHA256: sha([]byte("b\n"))}, CodeInputMismatch},
		{"a directory", Input{Path: "lib/router", SHA256: h}, CodeInputMismatch},
		{"outside the scope", Input{Path: "lib/real/b.py", SHA256: sha([]byte("b\n"))}, CodeScope},
		{"absolute", Input{Path: "/etc/passwd", SHA256: h}, CodeScope},
		{"an origin of no ledger", Input{Ledger: "elsewhere/ho2/workorder", Seq: seq(0), EntryHash: s.Entry.EntryHash}, CodeInputMismatch},
		{"a session that does not exist", Input{Ledger: t1.PlaneName + "/ho1/sessions/SES-20200101-00000000", Seq: seq(0), EntryHash: s.GenesisHash}, CodeInputMismatch},
		{"a session origin that is no id", Input{Ledger: t1.PlaneName + "/ho1/sessions/../../ho2", Seq: seq(0), EntryHash: s.GenesisHash}, CodeInputMismatch},
		{"another session's GENESIS under this one's origin", Input{Ledger: sesOrigin, Seq: seq(0), EntryHash: s2.GenesisHash}, CodeInputMismatch},
		{"an entry past the end", Input{Ledger: ho2Origin, Seq: seq(1 << 40), EntryHash: s.Entry.EntryHash}, CodeInputMismatch},
		{"another entry's hash", Input{Ledger: ho2Origin, Seq: seq(0), EntryHash: s.Entry.EntryHash}, CodeInputMismatch},
		{"a framework at another version", Input{Artifact: "FMWK-KERNEL-001", Version: "9.9.9"}, CodeInputMismatch},
		{"a package never installed", Input{Artifact: "PKG-NOPE-001", Version: "1.0.0"}, CodeInputMismatch},
		{"an unknown kind of id", Input{Artifact: "XYZ-1", Version: "1"}, CodeInputMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.code, code(t, turn(1, c.in)))
		})
	}
	// the prompt pack registry gone: fail closed
	require.NoError(t, os.Rename(filepath.Join(root, registry.Dir, registry.Prompts.File), filepath.Join(root, "prompts.bak")))
	err = turn(1, Input{Artifact: "PRM-ANY-001", Version: "1"})
	require.Equal(t, CodeInputMismatch, code(t, err))
	require.Contains(t, err.Error(), "cannot be read")

	// every refusal is in the session's ledger
	l, _, err := plane.OpenSessionLedger(root, s.SessionID, plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	n := 0
	require.NoError(t, l.Find(ctx, ledger.Query{EventTypes: []string{EventTurnRefused}}, func(*ledger.Entry) bool { n++; return true }))
	require.NoError(t, l.Close())
	require.Equal(t, 16, n)

	// what holds: the file, WO_STARTED, the session's own GENESIS, the kernel's package
	pk, err := registry.Read(root, registry.Packages)
	require.NoError(t, err)
	r, err := Turn(ctx, root, s.SessionID, &Header{TurnNumber: 1, WorkOrderID: s.ID, DeclaredInputs: []Input{
		{Path: "lib/router/a.py", SHA256: h},
		{Ledger: ho2Origin, Seq: seq(s.Entry.Seq), EntryHash: s.Entry.EntryHash},
		{Ledger: sesOrigin, Seq: seq(0), EntryHash: s.GenesisHash},
		{Ledger: ses2Origin, Seq: seq(0), EntryHash: s2.GenesisHash},
		{Ledger: legacy, Seq: seq(0), EntryHash: s.GenesisHash},
		{Artifact: "PKG-KERNEL-001", Version: pk[0]["version"]},
	}}, alice)
	require.NoError(t, err)
	require.EqualValues(t, 1, r.TurnNumber)
	require.Equal(t, 6, r.InputsChecked)
	// the session's checkpoint, and its anchor in HO2, carry its own origin
	b, err := os.ReadFile(filepath.Join(filepath.Dir(plane.SessionLedgerPath(root, s.SessionID)), "session.checkpoint"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b), sesOrigin+"\n"), "%s", b)
}

// TestTurnSessionAndBudget: a session of another work order, a ledger
// that is not the one started, turn numbers, the budget across sessions.
func TestTurnSessionAndBudget(t *testing.T) {
	ctx := context.Background()
	root, s := started(t, 2)
	h := func(n int64) *Header { return &Header{TurnNumber: n, WorkOrderID: s.ID, DeclaredInputs: []Input{}} }
	require.Equal(t, CodeSessionMismatch, code(t, func() error { _, err := Turn(ctx, root, "SES-20260101-00000000", h(1), alice); return err }()))
	require.Equal(t, CodeSessionMismatch, code(t, func() error { _, err := Turn(ctx, root, "../x", h(1), alice); return err }()))
	_, err := Turn(ctx, root, s.SessionID, h(2), alice)
	require.Equal(t, CodeTurnOrder, code(t, err))
	_, err = Turn(ctx, root, s.SessionID, h(1), alice)
	require.NoError(t, err)
	// a second session of the same work order shares its budget
	s2, err := Start(ctx, root, s.ID, alice)
	require.NoError(t, err)
	_, err = Turn(ctx, root, s2.SessionID, h(1), alice)
	require.NoError(t, err)
	_, err = Turn(ctx, root, s2.SessionID, h(2), alice)
	require.Equal(t, CodeTurnBudget, code(t, err))
	st, err := State(ctx, root, s.ID, alice.now())
	require.NoError(t, err)
	total, err := Sessions(ctx, root, st)
	require.NoError(t, err)
	require.EqualValues(t, 2, total)
	require.Len(t, st.Sessions, 2)

	// a session ledger replaced by another (its GENESIS is not the one
	// WO_STARTED recorded) is refused: by its anchor in HO2 first (it holds
	// fewer entries than anchored); Turn's GENESIS check stays behind it
	p := plane.SessionLedgerPath(root, s.SessionID)
	sesDir := filepath.Dir(filepath.Dir(p))
	require.NoError(t, os.Rename(sesDir, filepath.Join(root, "old-session")))
	g, err := plane.SessionGenesis(ctx, root, s.SessionID)
	require.NoError(t, err)
	l, _, err := plane.OpenSessionLedger(root, s.SessionID, plane.ForAppend, alice.Actor)
	require.NoError(t, err)
	_, err = l.Append(ctx, []ledger.Draft{g})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	_, err = Turn(ctx, root, s.SessionID, h(1), alice)
	require.Equal(t, plane.CodeLedgerTruncated, code(t, err))
	require.NoError(t, os.RemoveAll(sesDir))
	require.NoError(t, os.Rename(filepath.Join(root, "old-session"), sesDir))

	// completed: no more turns; complete again is a no-op
	c, err := Complete(ctx, root, s.ID, "", alice)
	require.NoError(t, err)
	require.False(t, c.NoOp)
	c, err = Complete(ctx, root, s.ID, "", alice)
	require.NoError(t, err)
	require.True(t, c.NoOp)
	_, err = Complete(ctx, root, s.ID, sha([]byte("x")), alice)
	require.Equal(t, CodeClosed, code(t, err))
	_, err = Turn(ctx, root, s2.SessionID, h(2), alice)
	require.Equal(t, CodeClosed, code(t, err))
	_, err = Start(ctx, root, s.ID, alice)
	require.Equal(t, CodeClosed, code(t, err))
}

// TestTurnOutputs holds a turn's declared file outputs to the disk when
// the turn is recorded (DECLARED_OUTPUT_MISMATCH, recorded as
// TURN_REFUSED), and to the scope; a text output has nothing on disk to
// check.
func TestTurnOutputs(t *testing.T) {
	ctx := context.Background()
	root, s := started(t, 20)
	h := writeFile(t, root, "lib/router/out.py", "out\n")
	require.NoError(t, os.MkdirAll(filepath.Join(root, "lib", "real"), 0o755))
	writeFile(t, root, "lib/real/out.py", "out\n")
	require.NoError(t, os.Symlink(filepath.Join(root, "lib", "real", "out.py"), filepath.Join(root, "lib", "router", "link.py")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "lib", "router", "fifo"), 0o644))
	turn := func(out ...Output) error {
		_, err := Turn(ctx, root, s.SessionID, &Header{TurnNumber: 1, WorkOrderID: s.ID, DeclaredInputs: []Input{}, Outputs: out}, alice)
		return err
	}
	for _, c := range []struct {
		name string
		out  Output
		code string
	}{
		{"not written", Output{Path: "lib/router/none.py", SHA256: h}, CodeOutputMismatch},
		{"other bytes", Output{Path: "lib/router/out.py", SHA256: sha([]byte("other"))}, CodeOutputMismatch},
		{"a link to the right bytes", Output{Path: "lib/router/link.py", SHA256: h}, CodeOutputMismatch},
		{"a FIFO", Output{Path: "lib/router/fifo", SHA256: h}, CodeOutputMismatch},
		{"a directory", Output{Path: "lib/router", SHA256: h}, CodeOutputMismatch},
		{"outside the scope", Output{Path: "lib/real/out.py", SHA256: h}, CodeScope},
		{"leaving the plane", Output{Path: "lib/router/../../etc/passwd", SHA256: h}, CodeScope},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := turn(c.out)
			require.Equal(t, c.code, code(t, err))
			var e *Error
			require.ErrorAs(t, err, &e)
			require.EqualValues(t, 0, e.details["index"])
		})
	}
	l, _, err := plane.OpenSessionLedger(root, s.SessionID, plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	n := 0
	require.NoError(t, l.Find(ctx, ledger.Query{EventTypes: []string{EventTurnRefused}}, func(e *ledger.Entry) bool {
		if e.Metadata["code"] == CodeOutputMismatch {
			n++
		}
		return true
	}))
	require.NoError(t, l.Close())
	require.Equal(t, 5, n)

	r, err := Turn(ctx, root, s.SessionID, &Header{TurnNumber: 1, WorkOrderID: s.ID, DeclaredInputs: []Input{},
		Outputs: []Output{{Path: "lib/router/out.py", SHA256: h}, {TextSHA256: sha([]byte("a reply"))}}}, alice)
	require.NoError(t, err)
	require.EqualValues(t, 1, r.TurnNumber)
}

// TestInputFileBothPaths holds the two ways a declared file is checked to
// one verdict: openat2 (Linux, one resolution with no link and nothing
// outside the root) and the portable walk (Lstat, os.Root, and the same
// file again after the open). Every case gives the same error, message
// included, either way; a good file is read by openat2 alone on Linux.
func TestInputFileBothPaths(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "lib", "real"), 0o755))
	good := writeFile(t, root, "lib/a.py", "a\n")
	writeFile(t, root, "lib/real/b.py", "b\n")
	require.NoError(t, os.WriteFile(filepath.Join(outside, "x"), []byte("x\n"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(root, "lib", "real"), filepath.Join(root, "lib", "dirlink")))
	require.NoError(t, os.Symlink(filepath.Join(root, "lib", "a.py"), filepath.Join(root, "lib", "filelink")))
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "lib", "out")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "lib", "fifo"), 0o644))
	bad := func(d map[string]any, format string, args ...any) *Error { return mismatch(0, d, format, args...) }
	for _, c := range []struct {
		name, path, want string
		ok               bool
	}{
		{"a regular file", "lib/a.py", good, true},
		{"another hash", "lib/a.py", sha([]byte("other")), false},
		{"missing", "lib/none.py", good, false},
		{"a directory link on the way", "lib/dirlink/b.py", sha([]byte("b\n")), false},
		{"a file link", "lib/filelink", good, false},
		{"a link out of the root", "lib/out/x", sha([]byte("x\n")), false},
		{"a directory", "lib/real", good, false},
		{"a FIFO", "lib/fifo", good, false},
		{"below a file", "lib/a.py/x", good, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var errs [2]error
			for i, portable := range []bool{false, true} {
				ic := inputChecker{ctx: context.Background(), root: root, portable: portable}
				errs[i] = ic.file(c.path, c.want, bad)
				if c.ok && !portable && ic.portable == false {
					require.Nil(t, ic.r, "a good file on this system is read without the portable walk")
				}
				ic.close()
			}
			if c.ok {
				require.NoError(t, errs[0])
				require.NoError(t, errs[1])
				return
			}
			require.Error(t, errs[0])
			require.Equal(t, CodeInputMismatch, code(t, errs[0]))
			require.Equal(t, errs[1].Error(), errs[0].Error())
		})
	}
}

// TestTurnEarlyScope: a turn's inputs are checked from as soon as the lock
// is held, against the work order's file as read then (earlyWorkOrder);
// that verdict never stands for a file other than the recorded one. A file
// rewritten with a wider scope after approval refuses the turn as a
// changed work order, an input only the wider scope covers included, and
// no TURN is written.
func TestTurnEarlyScope(t *testing.T) {
	ctx := context.Background()
	root, s := started(t, 20)
	w0, ph, ok := earlyWorkOrder(root, s.ID)
	require.True(t, ok, "a file Create wrote is read early")
	st, err := State(ctx, root, s.ID, alice.now())
	require.NoError(t, err)
	require.Equal(t, st.PayloadHash, ph)
	require.Contains(t, w0.Scope.Paths, "lib/router/**")
	_, _, ok = earlyWorkOrder(root, "WO-20261206-999")
	require.False(t, ok, "no file: nothing early")

	path, b, wider := widerFile(t, root, s.ID)
	h := writeFile(t, root, "lib/other/x.py", "x\n")
	require.NoError(t, os.WriteFile(path, []byte(wider), 0o644))
	_, err = Turn(ctx, root, s.SessionID, &Header{TurnNumber: 1, WorkOrderID: s.ID, DeclaredInputs: []Input{{Path: "lib/other/x.py", SHA256: h}}}, alice)
	require.Equal(t, CodePayloadChanged, code(t, err))
	l, _, err := plane.OpenSessionLedger(root, s.SessionID, plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	n := 0
	require.NoError(t, l.Find(ctx, ledger.Query{EventTypes: []string{EventTurn}}, func(*ledger.Entry) bool { n++; return true }))
	require.NoError(t, l.Close())
	require.Zero(t, n, "no TURN under a changed work order")
	// The recorded file back: the input outside its scope is refused as such.
	require.NoError(t, os.WriteFile(path, b, 0o644))
	_, err = Turn(ctx, root, s.SessionID, &Header{TurnNumber: 1, WorkOrderID: s.ID, DeclaredInputs: []Input{{Path: "lib/other/x.py", SHA256: h}}}, alice)
	require.Equal(t, CodeScope, code(t, err))
}

// TestTurnEarlyScopeStale: the file read early is not the one the state
// then accepts (rewritten with a wider scope before the turn, put back
// between the early read and the state's). The early verdict, against
// the wider scope, is dropped and the inputs are checked again against
// the recorded file's: an input only the wider scope covers is refused
// (SCOPE_VIOLATION) and no TURN is written; one the recorded scope covers
// passes on the same path.
func TestTurnEarlyScopeStale(t *testing.T) {
	ctx := context.Background()
	root, s := started(t, 20)
	path, b, wider := widerFile(t, root, s.ID)
	outside := writeFile(t, root, "lib/other/x.py", "x\n")
	inside := writeFile(t, root, "lib/router/main.py", "y\n")
	// Each turn starts with the wider file on disk; the hook puts the
	// recorded one back after the early read, counting the swaps.
	swaps := 0
	testHookAfterEarlyRead = func() {
		swaps++
		require.NoError(t, os.WriteFile(path, b, 0o644))
	}
	t.Cleanup(func() { testHookAfterEarlyRead = nil })
	turn := func(n int64, in Input) error {
		require.NoError(t, os.WriteFile(path, []byte(wider), 0o644))
		w0, _, ok := earlyWorkOrder(root, s.ID)
		require.True(t, ok)
		require.Contains(t, w0.Scope.Paths, "lib/**", "the early read sees the wider file")
		_, err := Turn(ctx, root, s.SessionID, &Header{TurnNumber: n, WorkOrderID: s.ID, DeclaredInputs: []Input{in}}, alice)
		return err
	}

	err := turn(1, Input{Path: "lib/other/x.py", SHA256: outside})
	require.Equal(t, CodeScope, code(t, err), "checked against the recorded scope, not the early file's")
	require.Equal(t, 1, swaps)
	l, _, err := plane.OpenSessionLedger(root, s.SessionID, plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	n := 0
	require.NoError(t, l.Find(ctx, ledger.Query{EventTypes: []string{EventTurn}}, func(*ledger.Entry) bool { n++; return true }))
	require.NoError(t, l.Close())
	require.Zero(t, n, "no TURN for an input outside the recorded scope")

	require.NoError(t, turn(1, Input{Path: "lib/router/main.py", SHA256: inside}))
	require.Equal(t, 2, swaps)
}

// widerFile makes lib/other (outside work order id's scope, lib/router/**)
// and returns the work order file's path, made writable, its recorded
// bytes and a copy whose scope is widened to lib/**.
func widerFile(t *testing.T, root, id string) (path string, recorded []byte, wider string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "lib", "other"), 0o755))
	path = filepath.Join(root, filepath.FromSlash(FilePath(id)))
	recorded, err := os.ReadFile(path)
	require.NoError(t, err)
	wider = strings.Replace(string(recorded), `"lib/router/**"`, `"lib/**"`, 1)
	require.NotEqual(t, string(recorded), wider)
	require.NoError(t, os.Chmod(path, 0o644))
	return path, recorded, wider
}
