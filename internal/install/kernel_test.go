package install

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/journal"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

func verifierKey(t *testing.T, name string) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, name)
	require.NoError(t, err)
	return vkey
}

// allPass requires every gate to pass on every tier.
func allPass(t *testing.T, root string) {
	t.Helper()
	for _, p := range []string{"ho3", "ho2", "ho1"} {
		rs, err := gate.Check(context.Background(), root, gate.CheckOptions{PlaneID: p})
		require.NoError(t, err)
		for _, r := range rs {
			require.True(t, r.Passed, "%s %s: %+v", p, r.Gate, r.Errors)
		}
	}
}

// kernelRows returns the kernel's version on each tier, HO3 first.
func kernelRows(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, tl := range plane.Layout {
		row, err := currentPackage(filepath.Join(root, filepath.FromSlash(tl.Dir)), plane.KernelID)
		require.NoError(t, err)
		out = append(out, row["version"])
	}
	return out
}

func ledgerSize(t *testing.T, root string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(root, "ledger", "governance.jsonl"))
	require.NoError(t, err)
	return fi.Size()
}

// A trust change is a kernel patch release on all three tiers, recorded
// as one operation; a change that changes nothing writes nothing.
func TestTrust(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	rel := verifierKey(t, "rel")

	res, err := Trust(ctx, root, TrustOptions{Add: true, Key: rel, Purposes: []string{"package", "work_order"}, Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	require.Equal(t, "added", res.Change)
	require.Equal(t, []string{"package", "work_order"}, res.Purposes)
	require.Equal(t, "1.0.1", res.Kernel.Version)
	require.Equal(t, []string{"1.0.1", "1.0.1", "1.0.1"}, kernelRows(t, root))
	allPass(t, root)
	evs := events(t, root, opOf(t, root, res.LedgerEntryID))
	require.Equal(t, []string{"INSTALL_STARTED", "INSTALLED", "TRUST_CHANGED"}, types(evs))
	for _, e := range evs[:2] {
		require.Equal(t, res.Kernel.ManifestHash, e.Metadata["manifest_hash"])
		require.Equal(t, res.Kernel.ArchiveSHA256, e.Metadata["archive_sha256"])
	}
	require.Equal(t, "rel", evs[2].Metadata["key_name"])
	for _, tl := range plane.Layout[1:] {
		a, err := os.ReadFile(filepath.Join(root, "config", "trusted_keys.json"))
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(root, tl.Dir, "config", "trusted_keys.json"))
		require.NoError(t, err)
		require.Equal(t, string(a), string(b), tl.Tier)
	}

	size := ledgerSize(t, root)
	res, err = Trust(ctx, root, TrustOptions{Add: true, Key: rel, Purposes: []string{"package"}, Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	require.Equal(t, "none", res.Change)
	require.Nil(t, res.Kernel)
	require.Equal(t, size, ledgerSize(t, root), "nothing recorded")

	res, err = Trust(ctx, root, TrustOptions{Key: "rel", Purposes: []string{"work_order"}, Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	require.Equal(t, "removed", res.Change)
	require.Equal(t, []string{"package"}, res.KeyPurposes)
	res, err = Trust(ctx, root, TrustOptions{Key: rel, Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	require.Equal(t, "1.0.3", res.Kernel.Version)
	require.Empty(t, res.KeyPurposes)
	trusted, err := os.ReadFile(filepath.Join(root, "planes", "ho1", "config", "trusted_keys.json"))
	require.NoError(t, err)
	require.NotContains(t, string(trusted), "rel")
	allPass(t, root)
}

// opOf returns the op_id of HO3's ledger entry id.
func opOf(t *testing.T, root, id string) string {
	t.Helper()
	var op string
	l, _, err := plane.OpenLedger(root, plane.ForReading, plane.Actor{Name: ""})
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Find(context.Background(), ledger.Query{}, func(e *ledger.Entry) bool {
		if e.ID == id {
			op, _ = e.Metadata["op_id"].(string)
		}
		return true
	}))
	require.NotEmpty(t, op)
	return op
}

// Refusals leave every tier as it was.
func TestTrustRefusals(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	rel := verifierKey(t, "rel")
	_, err := Trust(ctx, root, TrustOptions{Add: true, Key: rel, Purposes: []string{"package"}, Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	code := func(err error) string {
		var e *Error
		require.ErrorAs(t, err, &e)
		return e.Code()
	}

	_, err = Trust(ctx, root, TrustOptions{Add: true, Key: verifierKey(t, "rel"), Purposes: []string{"package"}, Actor: plane.Actor{Name: "tester"}})
	require.Equal(t, "KEY_NAME_TAKEN", code(err))
	_, err = Trust(ctx, root, TrustOptions{Key: "nobody", Actor: plane.Actor{Name: "tester"}})
	require.Equal(t, "KEY_NOT_TRUSTED", code(err))
	_, err = Trust(ctx, root, TrustOptions{Add: true, Key: rel, Actor: plane.Actor{Name: "tester"}})
	require.Equal(t, "USAGE", code(err))

	// A kernel file edited on HO1: refused before anything is written.
	p := filepath.Join(root, "planes", "ho1", "schemas", "tier.schema.json")
	require.NoError(t, os.Chmod(p, 0o644))
	require.NoError(t, os.WriteFile(p, []byte("{}"), 0o644))
	size := ledgerSize(t, root)
	_, err = Trust(ctx, root, TrustOptions{Add: true, Key: verifierKey(t, "other"), Purposes: []string{"package"}, Actor: plane.Actor{Name: "tester"}})
	require.Equal(t, "HASH_MISMATCH", code(err))
	require.Equal(t, []string{"1.0.1", "1.0.1", "1.0.1"}, kernelRows(t, root))
	require.Equal(t, size, ledgerSize(t, root))

	// A lower tier's directory that is a symlink: never followed.
	ho2 := filepath.Join(root, "planes", "ho2")
	require.NoError(t, os.Rename(ho2, ho2+".real"))
	require.NoError(t, os.Symlink("ho2.real", ho2))
	_, err = Trust(ctx, root, TrustOptions{Add: true, Key: verifierKey(t, "other"), Purposes: []string{"package"}, Actor: plane.Actor{Name: "tester"}})
	require.Equal(t, "STATE_UNSAFE", code(err))
}

// A release drops the files its predecessor had and it has not (the
// router policy placeholder of kernels before issue 10), on every tier.
func TestReleaseDropsFiles(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	roots, err := os.ReadFile(filepath.Join(root, "config", "governed_roots.json"))
	require.NoError(t, err)
	trusted, err := os.ReadFile(filepath.Join(root, "config", "trusted_keys.json"))
	require.NoError(t, err)
	files, err := plane.KernelFiles(roots, trusted)
	require.NoError(t, err)
	files["config/router_policy.json"] = []byte(`{"routes":[]}` + "\n")
	old, err := plane.BuildRelease("1.0.1", files)
	require.NoError(t, err)
	_, err = installRelease(ctx, root, old, "1.0.0", &TrustChange{Change: "none", KeyName: "x", Purposes: []string{}, KeyPurposes: []string{}},
		TrustOptions{Actor: plane.Actor{Name: "tester"}, Now: time.Now})
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "planes", "ho1", "config", "router_policy.json"))

	res, err := Trust(ctx, root, TrustOptions{Add: true, Key: verifierKey(t, "rel"), Purposes: []string{"package"}, Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	require.Equal(t, "1.0.2", res.Kernel.Version)
	require.Equal(t, []string{"config/router_policy.json"}, res.Kernel.Removed)
	for _, tl := range plane.Layout {
		require.NoFileExists(t, filepath.Join(root, tl.Dir, "config", "router_policy.json"), tl.Tier)
		owners, err := registry.Read(filepath.Join(root, filepath.FromSlash(tl.Dir)), registry.Ownership)
		require.NoError(t, err)
		for _, o := range owners {
			require.NotEqual(t, "config/router_policy.json", o["path"], tl.Tier)
		}
	}
	allPass(t, root)
}

// Recovery owes TRUST_CHANGED when a crash cut the append after
// INSTALLED, and records it once.
func TestRecoverOwesTrustChanged(t *testing.T) {
	ctx := context.Background()
	root := newPlane(t)
	change := &TrustChange{Change: "added", KeyName: "rel", KeyHash: "01234567", Key: "rel+01234567+AAAA", Purposes: []string{"package"},
		KeyPurposes: []string{"package"}, PackageID: plane.KernelID, Version: "1.0.1"}
	res := &Result{PackageID: plane.KernelID, Version: "1.0.1", PreviousVersion: "1.0.0", ManifestHash: "sha256:aa", ArchiveSHA256: "sha256:bb",
		Action: ActionUpgrade, Signature: registry.SignatureWaived}
	rec := &recorder{root: root, actor: "tester", opID: "OP-0123456789abcdef", pkg: res}
	require.NoError(t, rec.start(ctx))
	_, err := rec.record(ctx, rec.installedDraft(res, false)) // INSTALLED alone: TRUST_CHANGED lost
	require.NoError(t, err)
	m := opMeta{Op: "install", OpID: rec.opID, Actor: "tester", PackageID: plane.KernelID, Version: "1.0.1", ManifestHash: "sha256:aa",
		ArchiveSHA256: "sha256:bb", PreviousVersion: "1.0.0", Action: ActionUpgrade, Signature: registry.SignatureWaived, Trust: change}
	for range 2 {
		outcome, err := recordRecovered(ctx, root, plane.Actor{Name: "tester"}, m, journal.Outcome{Found: true, RolledForward: true})
		require.NoError(t, err)
		require.Equal(t, "INSTALLED", outcome)
	}
	evs := events(t, root, rec.opID)
	require.Equal(t, []string{"INSTALL_STARTED", "INSTALLED", "TRUST_CHANGED"}, types(evs))
	require.Equal(t, true, evs[2].Metadata["recovered"])
}
