package gate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/install"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/ledger"
)

var (
	alice = workorder.Options{Actor: plane.Actor{Name: "alice"}}
	bob   = workorder.Options{Actor: plane.Actor{Name: "bob"}}
)

// woPlane bootstraps a plane trusting one work_order key.
func woPlane(t testing.TB) (string, note.Signer) {
	t.Helper()
	skey, vkey, err := keys.Generate("approver")
	require.NoError(t, err)
	root := filepath.Join(t.TempDir(), "plane")
	_, err = bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "tester"}, TrustKeys: []string{"work_order=" + vkey}})
	require.NoError(t, err)
	s, err := keys.Signer(skey)
	require.NoError(t, err)
	return root, s
}

func woDraft(typ string, ttl time.Duration) workorder.Draft {
	return workorder.Draft{Type: typ, Title: "router", Description: "d", Tier: "ho1",
		Scope: workorder.Scope{Paths: []string{"lib/router/**", "config/router_policy.json"}}, Budget: workorder.Budget{Turns: 3},
		ExpiresAt: time.Now().UTC().Add(ttl).Truncate(time.Second).Format(time.RFC3339)}
}

// newWO creates a work order by alice and, if approve, has bob approve it.
func newWO(t testing.TB, root string, signer note.Signer, d workorder.Draft, approve bool) string {
	t.Helper()
	c, err := workorder.Create(context.Background(), root, d, alice)
	require.NoError(t, err)
	if approve {
		_, err = workorder.Approve(context.Background(), root, c.WorkOrder.ID, signer, bob)
		require.NoError(t, err)
	}
	return c.WorkOrder.ID
}

func g2(t *testing.T, root string, a gate.WOAction) *gate.Result {
	t.Helper()
	r, _, err := gate.G2(context.Background(), root, a)
	require.NoError(t, err)
	return r
}

func codes(r *gate.Result) []string {
	var cs []string
	for _, f := range r.Errors {
		cs = append(cs, f.Code)
	}
	return cs
}

func rewrite(t *testing.T, path string, b []byte) {
	t.Helper()
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, os.WriteFile(path, b, 0o444))
}

func TestG2(t *testing.T) {
	ctx := context.Background()
	root, signer := woPlane(t)
	id := newWO(t, root, signer, woDraft("code_change", time.Hour), true)

	t.Run("approved and in scope", func(t *testing.T) {
		r := g2(t, root, gate.WOAction{WorkOrder: id, Paths: []string{"lib/router/a.py", "lib/router/sub/b.py", "config/router_policy.json"}})
		require.True(t, r.Passed, r.Message)
		require.Equal(t, workorder.StateApproved, r.Details["state"])
	})
	t.Run("a path outside scope, named", func(t *testing.T) {
		r := g2(t, root, gate.WOAction{WorkOrder: id, Paths: []string{"lib/router/a.py", "lib/auth/keys.py", "config/router_policy.json.bak"}})
		require.False(t, r.Passed)
		require.Equal(t, []string{gate.CodeScopeViolation, gate.CodeScopeViolation}, codes(r))
		require.Equal(t, "lib/auth/keys.py", r.Errors[0].Path)
		require.Equal(t, "config/router_policy.json.bak", r.Errors[1].Path)
	})
	t.Run("traversal is no way into scope", func(t *testing.T) {
		bad := []string{"lib/router/../../etc/passwd", "/lib/router/a.py", "lib/router/./a.py", "lib/router//a.py", `lib/router/a\..\..\b`, ""}
		r := g2(t, root, gate.WOAction{WorkOrder: id, Paths: bad})
		require.Len(t, r.Errors, len(bad))
		for i, f := range r.Errors {
			require.Equal(t, gate.CodeScopeViolation, f.Code)
			require.Equal(t, bad[i], f.Path)
		}
	})
	t.Run("not approved", func(t *testing.T) {
		other := newWO(t, root, signer, woDraft("code_change", time.Hour), false)
		r := g2(t, root, gate.WOAction{WorkOrder: other, Paths: []string{"lib/router/a.py"}})
		require.Equal(t, []string{workorder.CodeNotApproved}, codes(r))
	})
	t.Run("not a work-order id, and not found", func(t *testing.T) {
		require.Equal(t, []string{workorder.CodeInvalid}, codes(g2(t, root, gate.WOAction{WorkOrder: "../WO-1"})))
		require.Equal(t, []string{workorder.CodeNotFound}, codes(g2(t, root, gate.WOAction{WorkOrder: "WO-20261206-777"})))
	})
	t.Run("required and none given", func(t *testing.T) {
		r := g2(t, root, gate.WOAction{Required: true, Paths: []string{"lib/router/a.py"}})
		require.Equal(t, []string{gate.CodeWORequired}, codes(r))
	})
	t.Run("none given, none required: not applicable, said", func(t *testing.T) {
		r := g2(t, root, gate.WOAction{Paths: []string{"anything"}})
		require.True(t, r.Passed)
		require.Equal(t, false, r.Details["applicable"])
		require.Contains(t, r.Message, "not applicable")
	})
	t.Run("payload changed after approval", func(t *testing.T) {
		root, signer := woPlane(t)
		id := newWO(t, root, signer, woDraft("code_change", time.Hour), true)
		p := filepath.Join(root, workorder.FilePath(id))
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		rewrite(t, p, []byte(strings.Replace(string(b), "lib/router/**", "**", 1)))
		r := g2(t, root, gate.WOAction{WorkOrder: id, Paths: []string{"lib/auth/keys.py"}})
		require.Equal(t, []string{workorder.CodePayloadChanged}, codes(r))
	})
	t.Run("another work order's approval", func(t *testing.T) {
		root, signer := woPlane(t)
		a := newWO(t, root, signer, woDraft("code_change", time.Hour), false)
		b := newWO(t, root, signer, woDraft("code_change", time.Hour), true)
		// a's file is a, its approval note b's: WO_APPROVED is b's, not a's.
		msg, err := os.ReadFile(filepath.Join(root, workorder.NotePath(b)))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(root, workorder.NotePath(a)), msg, 0o444))
		require.Equal(t, []string{workorder.CodeNotApproved}, codes(g2(t, root, gate.WOAction{WorkOrder: a})))
		// b approved, its note replaced by a note for a signed by the trusted key.
		wa, ha, err := workorder.Read(root, a)
		require.NoError(t, err)
		forged, err := note.Sign(&note.Note{Text: workorder.NoteText(a, ha, wa.ExpiresAt)}, signer)
		require.NoError(t, err)
		rewrite(t, filepath.Join(root, workorder.NotePath(b)), forged)
		require.Equal(t, []string{workorder.CodeApprovalBad}, codes(g2(t, root, gate.WOAction{WorkOrder: b})))
	})
	t.Run("key no longer trusted", func(t *testing.T) {
		root, signer := woPlane(t)
		id := newWO(t, root, signer, woDraft("code_change", time.Hour), true)
		_, err := install.Trust(ctx, root, install.TrustOptions{Key: "approver", Purposes: []string{"work_order"}, Actor: plane.Actor{Name: "tester"}})
		require.NoError(t, err)
		require.Equal(t, []string{workorder.CodeKeyUntrusted}, codes(g2(t, root, gate.WOAction{WorkOrder: id})))
	})
	t.Run("expired", func(t *testing.T) {
		root, signer := woPlane(t)
		d := woDraft("code_change", 2*time.Second)
		id := newWO(t, root, signer, d, true)
		exp, err := time.Parse(time.RFC3339, d.ExpiresAt)
		require.NoError(t, err)
		time.Sleep(time.Until(exp) + 50*time.Millisecond)
		require.Equal(t, []string{workorder.CodeExpired}, codes(g2(t, root, gate.WOAction{WorkOrder: id})))
	})
	t.Run("after WO_COMPLETED only a no-op replay passes", func(t *testing.T) {
		root, signer := woPlane(t)
		id := newWO(t, root, signer, woDraft("package_install", time.Hour), true)
		l, _, err := plane.OpenLedger(filepath.Join(root, filepath.FromSlash(plane.Layout[1].Dir)), plane.ForAppend, plane.Actor{Name: "alice"})
		require.NoError(t, err)
		_, err = l.Append(ctx, []ledger.Draft{{EventType: workorder.EventCompleted, SubmissionID: id, Decision: "COMPLETED",
			Reason: "done", Metadata: map[string]any{"wo_id": id}}})
		require.NoError(t, err)
		require.NoError(t, l.Close())
		r := g2(t, root, gate.WOAction{WorkOrder: id, Paths: []string{"lib/router/a.py"}})
		require.Equal(t, []string{workorder.CodeClosed}, codes(r))
		// a no-op that no entry recorded under the work order is no replay
		// (a registry row is not a record)
		replay := gate.ReplayRecord{EventType: "INSTALLED", Subject: "PKG-R-001", Metadata: map[string]string{"version": "1.0.0"}}
		r = g2(t, root, gate.WOAction{WorkOrder: id, Paths: []string{"lib/router/a.py"}, Replay: true, ReplayOf: replay})
		require.Equal(t, []string{workorder.CodeClosed}, codes(r))
		require.Contains(t, r.Errors[0].Message, "no INSTALLED under it")
		r = g2(t, root, gate.WOAction{WorkOrder: id, Paths: []string{"lib/router/a.py"}, Replay: true})
		require.Equal(t, []string{workorder.CodeClosed}, codes(r))
		// recorded under another work order: still no replay of this one
		_, err = plane.Record(ctx, root, plane.Actor{Name: "alice"}, ledger.Draft{EventType: "INSTALLED", SubmissionID: "PKG-R-001",
			Decision: "INSTALLED", Metadata: map[string]any{"version": "1.0.0", "work_order_id": "WO-20200101-001"}})
		require.NoError(t, err)
		r = g2(t, root, gate.WOAction{WorkOrder: id, Paths: []string{"lib/router/a.py"}, Replay: true, ReplayOf: replay})
		require.Equal(t, []string{workorder.CodeClosed}, codes(r))
		e, err := plane.Record(ctx, root, plane.Actor{Name: "alice"}, ledger.Draft{EventType: "INSTALLED", SubmissionID: "PKG-R-001",
			Decision: "INSTALLED", Metadata: map[string]any{"version": "1.0.0", "work_order_id": id}})
		require.NoError(t, err)
		r = g2(t, root, gate.WOAction{WorkOrder: id, Paths: []string{"lib/router/a.py"}, Replay: true, ReplayOf: replay})
		require.True(t, r.Passed, r.Message)
		require.Equal(t, true, r.Details["replay"])
		require.EqualValues(t, e.Seq, r.Details["replay_seq"])
	})
}

func TestG3(t *testing.T) {
	ctx := context.Background()
	root, signer := woPlane(t)
	change := newWO(t, root, signer, woDraft("code_change", time.Hour), true)
	depAdd := newWO(t, root, signer, woDraft("dependency_add", time.Hour), true)
	up := func(wo string, required bool, prev, next []string) *gate.Result {
		t.Helper()
		a := gate.WOAction{WorkOrder: wo, Required: required, Paths: []string{"lib/router/a.py"}, PrevDeps: prev, Deps: next, Upgrade: true}
		_, g3, err := gate.WorkOrderGates(ctx, root, a)
		require.NoError(t, err)
		return g3
	}
	t.Run("a dependency added without dependency_add", func(t *testing.T) {
		r := up(change, false, []string{"PKG-A-001>=1.0.0"}, []string{"PKG-A-001>=1.0.0", "PKG-B-001>=1.0.0"})
		require.Equal(t, []string{gate.CodeDependencyChange}, codes(r))
		require.Contains(t, r.Errors[0].Message, "code_change, not dependency_add")
	})
	t.Run("a dependency removed or loosened is a change too", func(t *testing.T) {
		require.False(t, up(change, false, []string{"PKG-A-001>=1.0.0"}, nil).Passed)
		require.False(t, up(change, false, []string{"PKG-A-001>=1.0.0"}, []string{"PKG-A-001>=0.1.0"}).Passed)
	})
	t.Run("under dependency_add", func(t *testing.T) {
		r := up(depAdd, false, nil, []string{"PKG-B-001>=1.0.0"})
		require.True(t, r.Passed, r.Message)
		require.Equal(t, []string{"PKG-B-001>=1.0.0"}, r.Details["dependencies_added"])
	})
	t.Run("required, none given", func(t *testing.T) {
		require.Equal(t, []string{gate.CodeDependencyChange}, codes(up("", true, nil, []string{"PKG-B-001>=1.0.0"})))
	})
	t.Run("unchanged, in another order", func(t *testing.T) {
		require.True(t, up(change, false, []string{"PKG-A-001>=1.0.0", "PKG-B-001>=1.0.0"}, []string{"PKG-B-001>=1.0.0", "PKG-A-001>=1.0.0"}).Passed)
	})
	t.Run("no work order, none required: a weakened control, passed and said", func(t *testing.T) {
		r := up("", false, nil, []string{"PKG-B-001>=1.0.0"})
		require.True(t, r.Passed)
		require.Len(t, r.Warnings, 1)
		require.Equal(t, gate.CodeWeakenedControl, r.Warnings[0].Code)
	})
	t.Run("a first install changes nothing installed", func(t *testing.T) {
		_, g3, err := gate.WorkOrderGates(ctx, root, gate.WOAction{WorkOrder: change, Deps: []string{"PKG-B-001>=1.0.0"}})
		require.NoError(t, err)
		require.True(t, g3.Passed, g3.Message)
	})
	t.Run("G2 failed: G3 does not trust the work order's type", func(t *testing.T) {
		r := up("WO-20261206-777", false, nil, []string{"PKG-B-001>=1.0.0"})
		require.Equal(t, []string{gate.CodeDependencyChange}, codes(r))
	})
}
