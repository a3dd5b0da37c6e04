package workorder

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/testenv"
	"github.com/control-plane/cp/pkg/keys"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	alice = Options{Actor: plane.Actor{Name: "alice"}}
	bob   = Options{Actor: plane.Actor{Name: "bob"}}
)

// newPlane bootstraps a plane trusting one work_order key and returns its
// root and that key's signer.
func newPlane(t testing.TB) (string, note.Signer) {
	t.Helper()
	skey, vkey, err := keys.Generate("approver")
	require.NoError(t, err)
	root := filepath.Join(t.TempDir(), "plane")
	_, err = bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "tester"},
		TrustKeys: []string{"work_order=" + vkey}})
	require.NoError(t, err)
	s, err := keys.Signer(skey)
	require.NoError(t, err)
	return root, s
}

func draft() Draft {
	return Draft{Type: "code_change", Title: "fix the router", Description: "d", Tier: "ho1",
		Scope: Scope{Paths: []string{"lib/router/**", "config/router_policy.json"}}, Budget: Budget{Turns: 3},
		ExpiresAt: time.Now().UTC().Add(time.Hour).Truncate(time.Second).Format(time.RFC3339)}
}

func code(t *testing.T, err error) string {
	t.Helper()
	require.Error(t, err)
	var c interface{ Code() string }
	require.True(t, errors.As(err, &c), "%T %v", err, err)
	return c.Code()
}

func create(t *testing.T, root string, d Draft) *Created {
	t.Helper()
	c, err := Create(context.Background(), root, d, alice)
	require.NoError(t, err)
	return c
}

func TestCreateApproveStatus(t *testing.T) {
	ctx := context.Background()
	root, signer := newPlane(t)
	c := create(t, root, draft())
	require.True(t, ValidID(c.WorkOrder.ID))
	require.True(t, strings.HasSuffix(c.WorkOrder.ID, "-001"), c.WorkOrder.ID)
	fi, err := os.Stat(filepath.Join(root, c.Path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o444), fi.Mode().Perm())

	w, h, err := Read(root, c.WorkOrder.ID)
	require.NoError(t, err)
	require.Equal(t, c.PayloadHash, h)
	require.Equal(t, "alice", w.CreatedBy)

	st, err := State(ctx, root, w.ID, time.Now())
	require.NoError(t, err)
	require.Equal(t, StateCreated, st.State)
	require.Equal(t, h, st.PayloadHash)

	_, err = Approved(ctx, root, w.ID)
	require.Equal(t, CodeNotApproved, code(t, err))

	// The creator never approves.
	_, err = Approve(ctx, root, w.ID, signer, alice)
	require.Equal(t, CodeSelfApproval, code(t, err))

	a, err := Approve(ctx, root, w.ID, signer, bob)
	require.NoError(t, err)
	require.Equal(t, "bob", a.ApprovedBy)
	require.Equal(t, "approver", a.KeyName)
	fi, err = os.Stat(filepath.Join(root, a.NotePath))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o444), fi.Mode().Perm())

	got, err := Approved(ctx, root, w.ID)
	require.NoError(t, err)
	require.Equal(t, h, got.PayloadHash)
	require.Equal(t, a.NoteHash, got.NoteHash)
	require.Equal(t, a.Seq, got.Seq)

	_, err = Approve(ctx, root, w.ID, signer, bob)
	require.Equal(t, CodeState, code(t, err))
	_, err = Reject(ctx, root, w.ID, "", bob)
	require.Equal(t, CodeState, code(t, err))

	d, err := Cancel(ctx, root, w.ID, "done otherwise", alice)
	require.NoError(t, err)
	require.Equal(t, StateCancelled, d.State)
	_, err = Approved(ctx, root, w.ID)
	require.Equal(t, CodeClosed, code(t, err))
	_, err = Cancel(ctx, root, w.ID, "", alice)
	require.Equal(t, CodeClosed, code(t, err))

	st, err = State(ctx, root, w.ID, time.Now())
	require.NoError(t, err)
	require.Equal(t, StateCancelled, st.State)
	var types []string
	for _, e := range st.Events {
		types = append(types, e.EventType)
	}
	require.Equal(t, []string{EventCreated, EventApproved, EventCancelled}, types)
}

func TestCreateRefusesBadDrafts(t *testing.T) {
	root, _ := newPlane(t)
	past := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	for _, tc := range []struct {
		name string
		edit func(*Draft)
		code string
		msg  string
	}{
		{"no title", func(d *Draft) { d.Title = "" }, CodeInvalid, "/title"},
		{"unknown type", func(d *Draft) { d.Type = "yolo" }, CodeInvalid, "/type"},
		{"tier ho3", func(d *Draft) { d.Tier = "ho3" }, CodeInvalid, "/tier"},
		{"no turns", func(d *Draft) { d.Budget.Turns = 0 }, CodeInvalid, "/budget/turns"},
		{"absolute path", func(d *Draft) { d.Scope.Paths = []string{"/etc/passwd"} }, CodeInvalid, "absolute"},
		{"dot-dot", func(d *Draft) { d.Scope.Paths = []string{"lib/../../x"} }, CodeInvalid, `".."`},
		{"bad glob", func(d *Draft) { d.Scope.Paths = []string{"lib/[x"} }, CodeInvalid, "malformed"},
		{"half globstar", func(d *Draft) { d.Scope.Paths = []string{"lib/a**"} }, CodeInvalid, "whole segment"},
		{"twice", func(d *Draft) { d.Scope.Paths = []string{"lib/*", "lib/*"} }, CodeInvalid, "twice"},
		{"not utc", func(d *Draft) { d.ExpiresAt = "2099-01-01T00:00:00+02:00" }, CodeInvalid, "UTC"},
		{"not a time", func(d *Draft) { d.ExpiresAt = "tomorrow at noon, ok?" }, CodeInvalid, "RFC 3339"},
		{"expiry in the past", func(d *Draft) { d.ExpiresAt = past }, CodeInvalid, "not after created_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := draft()
			tc.edit(&d)
			_, err := Create(context.Background(), root, d, alice)
			require.Equal(t, tc.code, code(t, err))
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	// Nothing was written.
	ents, _ := os.ReadDir(filepath.Join(root, Dir))
	for _, e := range ents {
		require.True(t, strings.HasPrefix(e.Name(), "."), e.Name())
	}
}

// TestCreateConcurrent: creators racing on one plane get distinct ids and
// one WO_CREATED each.
func TestCreateConcurrent(t *testing.T) {
	ctx := context.Background()
	root, _ := newPlane(t)
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := Create(ctx, root, draft(), alice)
			if err == nil {
				ids[i] = c.WorkOrder.ID
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range ids {
		require.NotEmpty(t, id)
		require.False(t, seen[id], "id %s given twice", id)
		seen[id] = true
		st, err := State(ctx, root, id, time.Now())
		require.NoError(t, err)
		require.Len(t, st.Events, 1)
	}
}

func approved(t *testing.T) (root string, signer note.Signer, id string) {
	t.Helper()
	root, signer = newPlane(t)
	c := create(t, root, draft())
	_, err := Approve(context.Background(), root, c.WorkOrder.ID, signer, bob)
	require.NoError(t, err)
	return root, signer, c.WorkOrder.ID
}

func replace(t *testing.T, path string, b []byte) {
	t.Helper()
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, os.WriteFile(path, b, 0o444))
}

// TestApprovedAttacks: G2's question fails closed on every mismatch.
func TestApprovedAttacks(t *testing.T) {
	ctx := context.Background()
	t.Run("file edited after approval", func(t *testing.T) {
		root, _, id := approved(t)
		p := filepath.Join(root, FilePath(id))
		b, _ := os.ReadFile(p)
		replace(t, p, []byte(strings.Replace(string(b), `"lib/router/**"`, `"**"`, 1)))
		_, err := Approved(ctx, root, id)
		require.Equal(t, CodePayloadChanged, code(t, err))
		require.Contains(t, err.Error(), "sha256:")
	})
	t.Run("file relaid out, same content", func(t *testing.T) {
		root, _, id := approved(t)
		p := filepath.Join(root, FilePath(id))
		b, _ := os.ReadFile(p)
		var v map[string]any
		require.NoError(t, json.Unmarshal(b, &v))
		pretty, _ := json.MarshalIndent(v, "", "  ")
		replace(t, p, pretty)
		_, err := Approved(ctx, root, id)
		require.NoError(t, err) // the payload hash is of the canonical form
	})
	t.Run("symlinked work order", func(t *testing.T) {
		root, _, id := approved(t)
		p := filepath.Join(root, FilePath(id))
		b, _ := os.ReadFile(p)
		elsewhere := filepath.Join(t.TempDir(), "wo.json")
		require.NoError(t, os.WriteFile(elsewhere, b, 0o444))
		require.NoError(t, os.Chmod(filepath.Dir(p), 0o755))
		require.NoError(t, os.Remove(p))
		require.NoError(t, os.Symlink(elsewhere, p))
		_, err := Approved(ctx, root, id)
		require.Equal(t, "NOT_REGULAR", code(t, err))
	})
	t.Run("note of another work order swapped in", func(t *testing.T) {
		root, signer, id := approved(t)
		other := create(t, root, draft())
		_, err := Approve(ctx, root, other.WorkOrder.ID, signer, bob)
		require.NoError(t, err)
		b, _ := os.ReadFile(filepath.Join(root, NotePath(other.WorkOrder.ID)))
		replace(t, filepath.Join(root, NotePath(id)), b)
		_, err = Approved(ctx, root, id)
		require.Equal(t, CodeApprovalBad, code(t, err))
	})
	t.Run("note for another payload hash signed by a trusted key", func(t *testing.T) {
		root, signer, id := approved(t)
		w, _, err := Read(root, id)
		require.NoError(t, err)
		msg, err := note.Sign(&note.Note{Text: NoteText(id, "sha256:"+strings.Repeat("0", 64), w.ExpiresAt)}, signer)
		require.NoError(t, err)
		replace(t, filepath.Join(root, NotePath(id)), msg)
		_, err = Approved(ctx, root, id) // its hash is not WO_APPROVED's note_hash
		require.Equal(t, CodeApprovalBad, code(t, err))
	})
	t.Run("note missing", func(t *testing.T) {
		root, _, id := approved(t)
		require.NoError(t, os.Remove(filepath.Join(root, NotePath(id))))
		_, err := Approved(ctx, root, id)
		require.Equal(t, CodeApprovalBad, code(t, err))
	})
	// A key untrusted after approval: internal/gate's TestG2 (it needs
	// internal/install, which imports this package through internal/gate).
	t.Run("expired after approval", func(t *testing.T) {
		root, _, id := approved(t)
		_, err := approvedAt(ctx, root, id, time.Now().Add(2*time.Hour))
		require.Equal(t, CodeExpired, code(t, err))
	})
	t.Run("no such work order", func(t *testing.T) {
		root, _ := newPlane(t)
		_, err := Approved(ctx, root, "WO-20261206-042")
		require.Equal(t, CodeNotFound, code(t, err))
		_, err = Approved(ctx, root, "../../etc/passwd")
		require.Equal(t, CodeInvalid, code(t, err))
	})
	t.Run("a file without WO_CREATED", func(t *testing.T) {
		root, _, id := approved(t)
		b, _ := os.ReadFile(filepath.Join(root, FilePath(id)))
		forged := strings.Replace(string(b), id, "WO-20261206-999", 1)
		require.NoError(t, os.WriteFile(filepath.Join(root, FilePath("WO-20261206-999")), []byte(forged), 0o444))
		_, err := Approved(ctx, root, "WO-20261206-999")
		require.Equal(t, CodeNotFound, code(t, err))
	})
}

func TestApproveRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("untrusted key", func(t *testing.T) {
		root, _ := newPlane(t)
		c := create(t, root, draft())
		skey, _, err := keys.Generate("mallory")
		require.NoError(t, err)
		s, err := keys.Signer(skey)
		require.NoError(t, err)
		_, err = Approve(ctx, root, c.WorkOrder.ID, s, bob)
		require.Equal(t, CodeKeyUntrusted, code(t, err))
		_, err = os.Stat(filepath.Join(root, NotePath(c.WorkOrder.ID)))
		require.True(t, os.IsNotExist(err), "no note is written for a refused approval")
	})
	t.Run("no key trusted for work_order", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "plane")
		_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
		require.NoError(t, err)
		c := create(t, root, draft())
		skey, _, _ := keys.Generate("x")
		s, _ := keys.Signer(skey)
		_, err = Approve(ctx, root, c.WorkOrder.ID, s, bob)
		require.Equal(t, CodeKeyUntrusted, code(t, err))
		require.Contains(t, err.Error(), "always signed")
	})
	t.Run("expired before approval", func(t *testing.T) {
		root, signer := newPlane(t)
		c := create(t, root, draft())
		late := Options{Actor: bob.Actor, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
		_, err := Approve(ctx, root, c.WorkOrder.ID, signer, late)
		require.Equal(t, CodeExpired, code(t, err))
		st, err := State(ctx, root, c.WorkOrder.ID, time.Now())
		require.NoError(t, err)
		require.Equal(t, StateExpired, st.State, "WO_EXPIRED was recorded")
		require.False(t, st.ExpiryPending)
	})
	t.Run("edited before approval", func(t *testing.T) {
		root, signer := newPlane(t)
		c := create(t, root, draft())
		p := filepath.Join(root, c.Path)
		b, _ := os.ReadFile(p)
		replace(t, p, []byte(strings.Replace(string(b), `"turns":3`, `"turns":300`, 1)))
		_, err := Approve(ctx, root, c.WorkOrder.ID, signer, bob)
		require.Equal(t, CodePayloadChanged, code(t, err))
	})
	t.Run("rejected", func(t *testing.T) {
		root, signer := newPlane(t)
		c := create(t, root, draft())
		_, err := Reject(ctx, root, c.WorkOrder.ID, "too wide", bob)
		require.NoError(t, err)
		_, err = Approve(ctx, root, c.WorkOrder.ID, signer, bob)
		require.Equal(t, CodeClosed, code(t, err))
		_, err = Approved(ctx, root, c.WorkOrder.ID)
		require.Equal(t, CodeNotApproved, code(t, err))
	})
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		p, name string
		want    bool
	}{
		{"lib/**", "lib/a/b.go", true},
		{"lib/**", "lib", true},
		{"lib/**", "libx/a", false},
		{"lib/*.go", "lib/a.go", true},
		{"lib/*.go", "lib/a/b.go", false},
		{"**/x.json", "a/b/x.json", true},
		{"**", "anything/at/all", true},
		{"config/router_policy.json", "config/router_policy.json", true},
		{"config/router_policy.json", "config/providers.json", false},
	} {
		require.Equal(t, tc.want, Match(tc.p, tc.name), "%s ~ %s", tc.p, tc.name)
	}
}

// TestMatcherAgrees: the compiled Matcher answers as Scope.Covers.
func TestMatcherAgrees(t *testing.T) {
	s := Scope{Paths: []string{"lib/router/**", "config/router_policy.json", "**/*.md", "lib/*/x.py", "a/b/c", "a/b", "a/**/c/*", "d/[ab]*/e", "**"}}
	names := []string{"lib/router/a.py", "lib/router", "lib/routers/a", "config/router_policy.json", "config/x.json", "docs/a.md", "a.md",
		"lib/demo/x.py", "lib/demo/y.py", "a/b/c", "a/b", "a/b/c/d", "a/x/y/c/z", "a/c/z", "d/ax/e", "d/cx/e", "", "x"}
	for _, scope := range []Scope{s, {Paths: s.Paths[:8]}, {Paths: []string{"lib/router/**"}}, {}} {
		m := scope.Matcher()
		for _, n := range names {
			require.Equal(t, scope.Covers(n), m.Covers(n), "scope %v, %q", scope.Paths, n)
		}
	}
}
