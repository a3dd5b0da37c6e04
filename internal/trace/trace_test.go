package trace

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestOwnerRow holds the one-row lookup to what the whole-table reader
// says, for paths CSV must quote and for prefixes of other paths.
func TestOwnerRow(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, registry.Create(root))
	paths := []string{"lib/a.py", "lib/a.py.bak", "lib/x/a.py", `lib/with,comma.py`, `lib/with"quote.py`, "lib/ünï.py"}
	now := time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)
	require.NoError(t, registry.Update(context.Background(), root, registry.Ownership, func([]registry.Row) ([]registry.Row, error) {
		var rows []registry.Row
		for i, p := range paths {
			rows = append(rows, registry.Owner{Path: p, PackageID: "PKG-T-00" + string(rune('1'+i)), Size: int64(i),
				SHA256: "sha256:" + string(make64('a'+byte(i))), Classification: "library", InstalledAt: now}.Row())
		}
		return rows, nil
	}))
	for _, p := range paths {
		o, ok, err := ownerRow(root, p)
		require.NoError(t, err, p)
		require.True(t, ok, p)
		require.Equal(t, p, o.Path)
	}
	for _, p := range []string{"lib/a", "a.py", "lib/with", "lib/x", `lib/with"quote`} {
		_, ok, err := ownerRow(root, p)
		require.NoError(t, err, p)
		require.False(t, ok, p)
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}

// TestPlanePath holds the path argument to a clean path inside the plane.
func TestPlanePath(t *testing.T) {
	for _, tc := range []struct{ in, tier, rel string }{
		{"lib/x.py", "ho3", "lib/x.py"},
		{"planes/ho1/config/a.json", "ho1", "config/a.json"},
		{"planes/ho2/schemas/s.json", "ho2", "schemas/s.json"},
		{"/plane/lib/x.py", "ho3", "lib/x.py"},
	} {
		tier, rel, _, err := PlanePath("/plane", tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.tier, tier, tc.in)
		require.Equal(t, tc.rel, rel, tc.in)
	}
	for _, bad := range []string{"", ".", "..", "../x", "lib/../x", "lib//x", "lib/x/", "/elsewhere/x", "/plane/../x", "./lib/x"} {
		_, _, _, err := PlanePath("/plane", bad)
		require.Error(t, err, bad)
	}
}

// FuzzVerifyProvenance: whatever arrives on a verifier's stdin, the check
// never panics, and with no verifier key nothing verifies (a provenance
// needs a checkpoint signed by a key the verifier holds).
func FuzzVerifyProvenance(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"path":"lib/x","provenance":{"install_entry":{},"latest_entry":{}}}`))
	f.Add([]byte(`{"path":"../x","owner":{"package_id":"PKG-X"},"latest_seq":1,"provenance":{"install_inclusion":{"seq":0,"tree_size":1,"leaf_hash":"00","checkpoint":"o\n1\nAA==\n"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := VerifyProvenance(b, nil)
		if err == nil && (v == nil || !v.Valid) {
			t.Fatalf("no error and no valid verdict")
		}
		if err == nil {
			t.Fatalf("a fuzzed document verified: %s", b)
		}
	})
}
