package install

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/journal"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
)

func newPlane(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	return root
}

// events returns the HO3 ledger's entries whose metadata.op_id is op.
func events(t *testing.T, root, op string) []ledger.Entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "ledger", "governance.jsonl"))
	require.NoError(t, err)
	var out []ledger.Entry
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		e, err := ledger.ParseLine([]byte(line))
		require.NoError(t, err)
		if e.Metadata["op_id"] == op {
			out = append(out, *e)
		}
	}
	return out
}

func types(es []ledger.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.EventType)
	}
	return out
}

// The kernel's own archive, re-applied with Force: the whole path runs
// (gates, checkpoint, journal, ledger) and changes no governed byte.
func TestReinstallKernel(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	archive := filepath.Join(root, "packages_store", plane.KernelID+"-"+plane.KernelVersion+".tar.gz")
	opts := Options{Archive: archive, Actor: plane.Actor{Name: "tester"}, Gate: gate.Options{AllowUnsigned: true}}

	res, err := Install(ctx, root, opts)
	require.NoError(t, err)
	require.Equal(t, ActionNone, res.Action)
	require.Empty(t, res.Checkpoint)

	opts.Force = true
	res, err = Install(ctx, root, opts)
	require.NoError(t, err)
	require.Equal(t, ActionReinstall, res.Action)
	require.Empty(t, res.Added)
	require.Empty(t, res.Replaced)
	require.Positive(t, res.Unchanged)
	require.NotEmpty(t, res.Checkpoint)
	require.Equal(t, "waived", res.Signature)

	var e ledger.Entry
	b, err := os.ReadFile(filepath.Join(root, "ledger", "governance.jsonl"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &e))
	require.Equal(t, "INSTALLED", e.EventType)
	require.Equal(t, []string{"INSTALL_STARTED", "CHECKPOINT_CREATED", "INSTALLED"}, types(events(t, root, e.Metadata["op_id"].(string))))
	require.Contains(t, e.Metadata["weakened_control"], "G5 waived")

	rs, err := gate.Integrity(ctx, root, "")
	require.NoError(t, err)
	for _, r := range rs {
		require.True(t, r.Passed, "%+v", r)
	}
}

// A manifest for another plane is refused by G0A (cp-install installs
// into HO3 only), before anything is written, and recorded.
func TestPlaneMismatch(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	kernel := filepath.Join(root, "packages_store", plane.KernelID+"-"+plane.KernelVersion+".tar.gz")
	archive := filepath.Join(t.TempDir(), "ho2.tar.gz")
	rewriteManifest(t, kernel, archive, func(m []byte) []byte {
		return []byte(strings.Replace(string(m), `"plane_id": "ho3"`, `"plane_id": "ho2"`, 1))
	})
	_, err := Install(ctx, root, Options{Archive: archive, Actor: plane.Actor{Name: "tester"}, Force: true, Gate: gate.Options{AllowUnsigned: true}})
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "PLANE_MISMATCH", e.Code())
	require.Equal(t, "G0A", e.Details["gate"])
	var rec *Recorded
	require.ErrorAs(t, err, &rec)
	require.Equal(t, "INSTALL_FAILED", rec.Entry.EventType)
}

// rewriteManifest copies the package archive src to dst with its
// manifest.json passed through edit.
func rewriteManifest(t *testing.T, src, dst string, edit func([]byte) []byte) {
	t.Helper()
	in, err := os.Open(src)
	require.NoError(t, err)
	defer in.Close()
	zr, err := gzip.NewReader(in)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	out, err := os.Create(dst)
	require.NoError(t, err)
	defer out.Close()
	zw := gzip.NewWriter(out)
	tw := tar.NewWriter(zw)
	edited := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		if h.Name == "manifest.json" {
			b, edited = edit(b), true
			h.Size = int64(len(b))
		}
		require.NoError(t, tw.WriteHeader(h))
		_, err = tw.Write(b)
		require.NoError(t, err)
	}
	require.True(t, edited, "no manifest.json in %s", src)
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
}

func TestNotAPlane(t *testing.T) {
	_, err := Install(context.Background(), t.TempDir(), Options{Archive: "x.tar.gz"})
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "NOT_A_PLANE", e.Code())
}

// A crash after the commit point and before the outcome was recorded:
// Recover finishes the change and records INSTALLED once, however often it
// runs; a crash after the outcome was recorded adds nothing.
func TestRecoverRecordsOutcomeOnce(t *testing.T) {
	ctx := context.Background()
	for i, already := range []bool{false, true, false} {
		root := newPlane(t)
		op := newOpID()
		// The journal says what the install changes (i 0, 1); one an
		// earlier release wrote does not (i 2).
		var changed *ledger.Changed
		if i < 2 {
			changed = &ledger.Changed{Added: []string{"lib/x/a.py"}}
		}
		meta, err := json.Marshal(opMeta{Op: "install", OpID: op, Actor: "tester", PackageID: "PKG-X-001", Version: "1.0.0", Action: ActionInstall,
			Changed: changed})
		require.NoError(t, err)
		rec := &recorder{root: root, actor: "tester", opID: op, pkg: &Result{PackageID: "PKG-X-001", Version: "1.0.0", Action: ActionInstall}}
		require.NoError(t, rec.start(ctx))
		crash := os.ErrDeadlineExceeded
		err = journal.Apply(root, []journal.Change{{Path: "lib/x/a.py", Data: []byte("a"), Mode: 0o444}}, journal.Options{Meta: meta,
			Committed: func() error {
				if already {
					if _, err := rec.installed(ctx, rec.pkg, false); err != nil {
						return err
					}
				}
				return crash
			}})
		require.ErrorIs(t, err, crash)

		got, err := Recover(ctx, root, plane.Actor{Name: "someone"})
		require.NoError(t, err)
		require.True(t, got.Found && got.RolledForward)
		require.Equal(t, "install", got.Op)
		require.Equal(t, op, got.OpID)
		es := events(t, root, op)
		require.Equal(t, []string{"INSTALL_STARTED", "INSTALLED"}, types(es))
		require.Equal(t, !already, es[1].Metadata["recovered"] == true)
		require.Equal(t, "tester", es[1].Actor)
		c, ok := ledger.ChangedOf(es[1].Metadata)
		switch i {
		case 0:
			require.True(t, ok, "the recovered INSTALLED says what changed")
			require.Equal(t, []string{"lib/x/a.py"}, c.Paths())
		case 2:
			require.False(t, ok, "a journal that did not say records no changed set (not an empty one)")
		}

		got, err = Recover(ctx, root, plane.Actor{Name: "someone"})
		require.NoError(t, err)
		require.False(t, got.Found)
		require.Len(t, events(t, root, op), 2)
	}
}

// A crash before the commit point: nothing changed; the outcome is
// INSTALL_FAILED, recorded once, whether the journal already said what the
// operation was (meta.json) or only its private directory did (op.json),
// and nothing at all for an operation that had recorded nothing.
func TestRecoverUncommitted(t *testing.T) {
	ctx := context.Background()
	for _, where := range []string{"journal", "staging", "both", "not started"} {
		root := newPlane(t)
		op := newOpID()
		rec := &recorder{root: root, actor: "tester", opID: op, pkg: &Result{PackageID: "PKG-X-001", Version: "1.0.0", Action: ActionInstall}}
		dir := "_staging/" + stagingPrefix + "dead"
		require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o700))
		m := opMeta{Op: "install", OpID: op, Actor: "tester", PackageID: "PKG-X-001", Version: "1.0.0", Action: ActionInstall}
		if where != "journal" {
			require.NoError(t, rec.intend(ctx, dir, m))
		}
		if where != "not started" {
			require.NoError(t, rec.start(ctx))
		}
		if where == "journal" || where == "both" {
			m.LedgerEntries = rec.ledgerEntries
			meta, err := json.Marshal(m)
			require.NoError(t, err)
			require.NoError(t, os.MkdirAll(filepath.Join(root, journal.Dir, "new"), 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(root, journal.Dir, "meta.json"), meta, 0o600))
		}

		got, err := Recover(ctx, root, plane.Actor{Name: "someone"})
		require.NoError(t, err, where)
		require.Equal(t, 1, got.Staging, where)
		es := events(t, root, op)
		if where == "not started" {
			require.Empty(t, es)
			continue
		}
		require.Equal(t, []string{"INSTALL_STARTED", "INSTALL_FAILED"}, types(es), where)
		require.Contains(t, es[1].Reason, "recovery rolled it back")
		require.Equal(t, op, got.OpID, where)
		_, err = os.Stat(filepath.Join(root, journal.Dir))
		require.True(t, os.IsNotExist(err))
		_, err = Recover(ctx, root, plane.Actor{Name: "someone"})
		require.NoError(t, err)
		require.Len(t, events(t, root, op), 2, where)
	}
}

// outcomeRecorded finds an operation's start and outcome among many
// entries, from a given seq on.
func TestOutcomeRecorded(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	rec := func(event, op string) {
		_, err := plane.Record(ctx, root, plane.Actor{Name: "tester"}, ledger.Draft{EventType: event, SubmissionID: "PKG-X-001",
			Metadata: map[string]any{"op_id": op, "pad": strings.Repeat("p", 97)}})
		require.NoError(t, err)
	}
	filler := func(n int) {
		drafts := make([]ledger.Draft, n)
		for i := range drafts {
			drafts[i] = ledger.Draft{EventType: "FILLER", Metadata: map[string]any{"pad": strings.Repeat("f", 211)}}
		}
		_, err := plane.Record(ctx, root, plane.Actor{Name: "tester"}, drafts...)
		require.NoError(t, err)
	}
	rec("INSTALL_STARTED", "OP-a")
	filler(1500)
	rec("INSTALLED", "OP-a")
	rec("INSTALL_STARTED", "OP-b")
	filler(1700)
	size, err := ledgerEntries(ctx, root)
	require.NoError(t, err)

	for op, want := range map[string]struct {
		started bool
		outcome string
	}{"OP-a": {true, "INSTALLED"}, "OP-b": {true, ""}, "OP-none": {false, ""}} {
		started, outcome, err := outcomeRecorded(ctx, root, op, 0, nil)
		require.NoError(t, err)
		require.Equal(t, want.started, started, op)
		require.Equal(t, want.outcome, outcome, op)
	}
	// Only what follows since is read.
	started, outcome, err := outcomeRecorded(ctx, root, "OP-a", size-1, nil)
	require.NoError(t, err)
	require.False(t, started)
	require.Empty(t, outcome)
}

func TestCheckpointAndVersions(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	s, id, err := Checkpoint(ctx, root, "first", plane.Actor{Name: "tester"}, time.Now())
	require.NoError(t, err)
	require.NotEmpty(t, id)
	vs, err := Versions(root)
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, *s, vs[0])

	// Rolling back to the present state changes nothing and passes integrity.
	r, err := Rollback(ctx, root, s.VersionID, "", plane.Actor{Name: "tester"}, time.Now(), nil)
	require.NoError(t, err)
	require.Empty(t, r.Restored)
	require.Empty(t, r.Removed)
	require.True(t, r.Integrity.AllPassed)
}

// A torn tail (a writer killed mid-line) is cut by the next append: the
// seq an operation searches from is before it, so the operation's own
// start event is found.
func TestLedgerEntriesAndTornTail(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	path := filepath.Join(root, "ledger", "governance.jsonl")
	before, err := ledgerEntries(ctx, root)
	require.NoError(t, err)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"actor":"root","decision":"tor`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	n, err := ledgerEntries(ctx, root)
	require.NoError(t, err)
	require.Equal(t, before, n)

	op := newOpID()
	dir := "_staging/" + stagingPrefix + "torn"
	require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o700))
	rec := &recorder{root: root, actor: "tester", opID: op, pkg: &Result{PackageID: "PKG-X-001", Version: "1.0.0", Action: ActionInstall}}
	require.NoError(t, rec.intend(ctx, dir, opMeta{Op: "install", OpID: op, Actor: "tester", PackageID: "PKG-X-001", Version: "1.0.0"}))
	require.NoError(t, rec.start(ctx)) // repairs the tail, then appends
	_, err = Recover(ctx, root, plane.Actor{Name: "someone"})
	require.NoError(t, err)
	require.Equal(t, []string{"INSTALL_STARTED", "INSTALL_FAILED"}, types(events(t, root, op)))
}

// An operation that completed, killed before it tidied its private
// directory away: recover only removes the directory, records nothing and
// reports nothing recovered.
func TestRecoverCompletedLeftovers(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	op := newOpID()
	rec := &recorder{root: root, actor: "tester", opID: op, pkg: &Result{PackageID: "PKG-X-001", Version: "1.0.0", Action: ActionInstall}}
	dir := "_staging/" + stagingPrefix + "done"
	require.NoError(t, os.MkdirAll(filepath.Join(root, dir), 0o700))
	require.NoError(t, rec.intend(ctx, dir, opMeta{Op: "install", OpID: op, Actor: "tester", PackageID: "PKG-X-001", Version: "1.0.0"}))
	require.NoError(t, rec.start(ctx))
	_, err := rec.installed(ctx, rec.pkg, false)
	require.NoError(t, err)
	got, err := Recover(ctx, root, plane.Actor{Name: "someone"})
	require.NoError(t, err)
	require.Equal(t, 1, got.Staging)
	require.False(t, got.Found || got.RolledBack || got.RolledForward)
	require.Equal(t, []string{"INSTALL_STARTED", "INSTALLED"}, types(events(t, root, op)))
}

// An append killed between its line and its stored hashes, before the
// operation recorded its start (the flake TestKillDuringRollback once hit:
// TLOG_MISSING after recover), leaves Recover nothing to record; Recover
// still brings HO3's ledger in step, so that it verifies.
func TestRecoverRepairsLedgerTail(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	tlogPath := filepath.Join(root, "ledger", "governance.tlog")
	st, err := os.Stat(tlogPath)
	require.NoError(t, err)
	_, err = plane.Record(ctx, root, plane.Actor{Name: "tester"}, ledger.Draft{EventType: "CHECKPOINT_CREATED"})
	require.NoError(t, err)
	require.NoError(t, os.Truncate(tlogPath, st.Size())) // the kill: the line is there, its hashes are not

	verify := func() ledger.Report {
		t.Helper()
		trusted, err := trust.Load(root)
		require.NoError(t, err)
		vs, err := trust.Verifiers(trusted, trust.PurposeCheckpoint, "")
		require.NoError(t, err)
		s, _, err := plane.OpenLedger(root, plane.ForReading, plane.Actor{})
		require.NoError(t, err)
		defer s.Close()
		rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Verifiers: vs, Expect: true})
		require.NoError(t, err)
		return rep
	}
	rep := verify()
	require.False(t, rep.Valid)
	require.Equal(t, "TLOG_MISSING", rep.Issues[len(rep.Issues)-1].Code)

	got, err := Recover(ctx, root, plane.Actor{Name: "someone"})
	require.NoError(t, err)
	require.False(t, got.Found)
	rep = verify()
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.Equal(t, rep.Entries, rep.Checkpoint.TreeSize)
}

// TestRecoverRepairsEveryLedger: the same kill in HO2's ledger and in a
// session's (a work-order step's anchors append to both) is repaired by
// cp-install recover too, not only by the next append to that ledger.
func TestRecoverRepairsEveryLedger(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	tester := plane.Actor{Name: "tester"}
	const sid = "SES-20261206-0a1b2c3d"
	g, err := plane.SessionGenesis(ctx, root, sid)
	require.NoError(t, err)
	ses, _, err := plane.OpenSessionLedger(root, sid, plane.ForAppend, tester)
	require.NoError(t, err)
	_, err = ses.Append(ctx, []ledger.Draft{g})
	require.NoError(t, err)
	require.NoError(t, ses.Close())
	ho2, err := plane.Dir(root, "ho2")
	require.NoError(t, err)

	type target struct {
		name string
		tlog string
		open func(plane.Access) (ledger.Store, error)
	}
	targets := []target{
		{"ho2", filepath.Join(ho2, "ledger", "workorder.tlog"), func(a plane.Access) (ledger.Store, error) {
			s, _, err := plane.OpenLedger(ho2, a, tester)
			return s, err
		}},
		{"session", filepath.Join(filepath.Dir(plane.SessionLedgerPath(root, sid)), "session.tlog"), func(a plane.Access) (ledger.Store, error) {
			s, _, err := plane.OpenSessionLedger(root, sid, a, tester)
			return s, err
		}},
	}
	trusted, err := trust.Load(root)
	require.NoError(t, err)
	vs, err := trust.Verifiers(trusted, trust.PurposeCheckpoint, "")
	require.NoError(t, err)
	verify := func(tg target) ledger.Report {
		t.Helper()
		s, err := tg.open(plane.ForReading)
		require.NoError(t, err)
		defer s.Close()
		rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Verifiers: vs, Expect: true})
		require.NoError(t, err)
		return rep
	}
	for _, tg := range targets {
		st, err := os.Stat(tg.tlog)
		require.NoError(t, err, tg.name)
		s, err := tg.open(plane.ForAppend)
		require.NoError(t, err)
		_, err = s.Append(ctx, []ledger.Draft{{EventType: "NOTE"}})
		require.NoError(t, err)
		require.NoError(t, s.Close())
		require.NoError(t, os.Truncate(tg.tlog, st.Size())) // the kill: the line is there, its hashes are not
		rep := verify(tg)
		require.False(t, rep.Valid, tg.name)
		require.Equal(t, "TLOG_MISSING", rep.Issues[len(rep.Issues)-1].Code, tg.name)
	}
	_, err = Recover(ctx, root, plane.Actor{Name: "someone"})
	require.NoError(t, err)
	for _, tg := range targets {
		rep := verify(tg)
		require.True(t, rep.Valid, "%s: %+v", tg.name, rep.Issues)
	}
}
