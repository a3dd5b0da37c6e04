package gate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/plane"
	"github.com/stretchr/testify/require"
)

// findings returns "GATE CODE path" for every error of the results.
func findings(rs []Result) []string {
	var out []string
	for _, r := range rs {
		for _, e := range r.Errors {
			out = append(out, r.Gate+" "+e.Code+" "+e.Path)
		}
	}
	return out
}

var kernelStore = plane.StorePath(plane.KernelID, plane.KernelVersion)

func TestIntegrity(t *testing.T) {
	ctx := context.Background()
	fresh := func(t *testing.T) string {
		root := filepath.Join(t.TempDir(), "plane")
		_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
		require.NoError(t, err)
		return root
	}
	write := func(t *testing.T, root, p, data string) {
		full := filepath.Join(root, filepath.FromSlash(p))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		os.Chmod(full, 0o644)
		require.NoError(t, os.WriteFile(full, []byte(data), 0o644))
	}

	root := fresh(t)
	rs, err := Integrity(ctx, root, "")
	require.NoError(t, err)
	require.Empty(t, findings(rs))
	require.Equal(t, []string{"G0B", "G6", "RECEIPTS"}, []string{rs[0].Gate, rs[1].Gate, rs[2].Gate})
	require.True(t, rs[0].Passed && rs[1].Passed && rs[2].Passed)
	require.Greater(t, rs[0].Details["owned"], 0)

	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, root string)
		want   []string
	}{
		{"orphan", func(t *testing.T, root string) { write(t, root, "lib/stray.py", "x") }, []string{"G0B ORPHAN lib/stray.py"}},
		{"edited", func(t *testing.T, root string) { write(t, root, "schemas/receipt.schema.json", "{}") },
			[]string{"G0B HASH_MISMATCH schemas/receipt.schema.json"}},
		{"missing", func(t *testing.T, root string) {
			require.NoError(t, os.Remove(filepath.Join(root, "schemas", "receipt.schema.json")))
		}, []string{"G0B MISSING schemas/receipt.schema.json"}},
		{"symlink", func(t *testing.T, root string) {
			require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(root, "lib")))
		}, []string{"G0B NOT_REGULAR lib"}},
		{"receipt gone", func(t *testing.T, root string) {
			require.NoError(t, os.Remove(filepath.Join(root, "installed", plane.KernelID, "receipt.json")))
		}, []string{"G0B RECEIPT_INVALID installed/PKG-KERNEL-001/receipt.json", "RECEIPTS RECEIPT_MISSING installed/PKG-KERNEL-001/receipt.json"}},
		{"receipt unknown field", func(t *testing.T, root string) {
			p := "installed/" + plane.KernelID + "/receipt.json"
			b, err := os.ReadFile(filepath.Join(root, p))
			require.NoError(t, err)
			write(t, root, p, strings.Replace(string(b), "{", `{"extra": 1,`, 1))
		}, []string{"G0B RECEIPT_INVALID installed/PKG-KERNEL-001/receipt.json", "G0B MODE_MISMATCH installed/PKG-KERNEL-001/receipt.json", "RECEIPTS RECEIPT_INVALID installed/PKG-KERNEL-001/receipt.json"}},
		{"file and its row edited together", func(t *testing.T, root string) {
			write(t, root, "schemas/receipt.schema.json", "{}")
			require.NoError(t, os.Chmod(filepath.Join(root, "schemas", "receipt.schema.json"), 0o444))
			p := filepath.Join(root, "registries", "file_ownership.csv")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			lines := strings.Split(string(b), "\n")
			for i, l := range lines {
				if strings.HasPrefix(l, "schemas/receipt.schema.json,") {
					f := strings.Split(l, ",")
					f[2], f[3] = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "2"
					lines[i] = strings.Join(f, ",")
				}
			}
			require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644))
		}, []string{"G0B HASH_MISMATCH schemas/receipt.schema.json", "RECEIPTS RECEIPT_MISMATCH schemas/receipt.schema.json"}},
		{"writable", func(t *testing.T, root string) {
			require.NoError(t, os.Chmod(filepath.Join(root, "schemas", "receipt.schema.json"), 0o644))
		}, []string{"G0B MODE_MISMATCH schemas/receipt.schema.json"}},
		{"receipt version", func(t *testing.T, root string) {
			p := "installed/" + plane.KernelID + "/receipt.json"
			b, err := os.ReadFile(filepath.Join(root, p))
			require.NoError(t, err)
			write(t, root, p, strings.Replace(string(b), `"version": "1.0.0"`, `"version": "9.0.0"`, 1))
		}, []string{"G0B MODE_MISMATCH installed/PKG-KERNEL-001/receipt.json", "RECEIPTS RECEIPT_MISMATCH installed/PKG-KERNEL-001/receipt.json"}},
		{"installed manifest", func(t *testing.T, root string) {
			p := "installed/" + plane.KernelID + "/manifest.json"
			b, err := os.ReadFile(filepath.Join(root, p))
			require.NoError(t, err)
			require.Contains(t, string(b), `"version": "1.0.0"`)
			write(t, root, p, strings.Replace(string(b), `"version": "1.0.0"`, `"version": "1.0.1"`, 1))
		}, []string{"G0B MODE_MISMATCH installed/PKG-KERNEL-001/manifest.json", "RECEIPTS RECEIPT_MISMATCH installed/PKG-KERNEL-001/manifest.json"}},
		// issue 10 items 16 and 18: the kept archive, receipt modes and
		// fields, a pending journal, hard links and owners.
		{"kept archive replaced", func(t *testing.T, root string) {
			write(t, root, kernelStore, "not the kernel")
			require.NoError(t, os.Chmod(filepath.Join(root, kernelStore), 0o444))
		}, []string{"G0B HASH_MISMATCH " + kernelStore}},
		{"kept archive deleted", func(t *testing.T, root string) {
			require.NoError(t, os.Remove(filepath.Join(root, kernelStore)))
		}, []string{"G0B ARCHIVE_MISSING " + kernelStore}},
		{"receipt mode only", func(t *testing.T, root string) {
			require.NoError(t, os.Chmod(filepath.Join(root, "installed", plane.KernelID, "receipt.json"), 0o644))
		}, []string{"G0B MODE_MISMATCH installed/PKG-KERNEL-001/receipt.json"}},
		{"receipt says signed", func(t *testing.T, root string) {
			p := "installed/" + plane.KernelID + "/receipt.json"
			b, err := os.ReadFile(filepath.Join(root, p))
			require.NoError(t, err)
			write(t, root, p, strings.Replace(string(b), `"signature": "waived"`, `"signature": "signed:ops"`, 1))
			require.NoError(t, os.Chmod(filepath.Join(root, p), 0o444))
		}, []string{"RECEIPTS RECEIPT_MISMATCH installed/PKG-KERNEL-001/receipt.json"}},
		{"journal pending", func(t *testing.T, root string) {
			require.NoError(t, os.Mkdir(filepath.Join(root, "_journal"), 0o700))
		}, []string{"G0B JOURNAL_PENDING _journal"}},
		{"journal corrupt", func(t *testing.T, root string) { write(t, root, "_journal/plan.json", "{nope") },
			[]string{"G0B JOURNAL_CORRUPT _journal"}},
		{"journal plan a FIFO", func(t *testing.T, root string) {
			require.NoError(t, os.Mkdir(filepath.Join(root, "_journal"), 0o700))
			require.NoError(t, syscall.Mkfifo(filepath.Join(root, "_journal", "plan.json"), 0o600))
		}, []string{"G0B JOURNAL_CORRUPT _journal"}},
		{"receipt a FIFO", func(t *testing.T, root string) {
			p := filepath.Join(root, "installed", plane.KernelID, "receipt.json")
			require.NoError(t, os.Remove(p))
			require.NoError(t, syscall.Mkfifo(p, 0o444))
		}, []string{"G0B RECEIPT_INVALID installed/PKG-KERNEL-001/receipt.json", "G0B NOT_REGULAR installed/PKG-KERNEL-001/receipt.json", "RECEIPTS RECEIPT_INVALID installed/PKG-KERNEL-001/receipt.json"}},
		{"hard link", func(t *testing.T, root string) {
			require.NoError(t, os.Link(filepath.Join(root, "config", "governed_roots.json"), filepath.Join(t.TempDir(), "outside")))
		}, []string{"G0B HARD_LINK config/governed_roots.json"}},
		{"owner changed", func(t *testing.T, root string) {
			if os.Geteuid() != 0 {
				t.Skip("changing a file's owner needs root")
			}
			require.NoError(t, os.Lchown(filepath.Join(root, "config", "governed_roots.json"), 4242, 4242))
			require.NoError(t, os.Lchown(filepath.Join(root, "installed", plane.KernelID, "receipt.json"), 4242, 4242))
		}, []string{"G0B OWNER_MISMATCH config/governed_roots.json", "G0B OWNER_MISMATCH installed/PKG-KERNEL-001/receipt.json"}},
		{"orphan receipt dir", func(t *testing.T, root string) { write(t, root, "installed/PKG-GHOST-001/receipt.json", "{}") },
			[]string{"RECEIPTS RECEIPT_ORPHAN installed/PKG-GHOST-001"}},
		{"empty dir is nothing", func(t *testing.T, root string) {
			require.NoError(t, os.MkdirAll(filepath.Join(root, "installed", "PKG-GONE-001"), 0o755))
			require.NoError(t, os.MkdirAll(filepath.Join(root, "lib", "empty"), 0o755))
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fresh(t)
			tc.damage(t, root)
			rs, err := Integrity(ctx, root, "")
			require.NoError(t, err)
			require.Equal(t, tc.want, findings(rs))
			for _, r := range rs {
				require.Equal(t, len(r.Errors) == 0, r.Passed, r.Gate)
			}
		})
	}

	// Unreadable inputs are errors, never "nothing to check".
	root = fresh(t)
	require.NoError(t, os.Remove(filepath.Join(root, "registries", "file_ownership.csv")))
	_, err = Integrity(ctx, root, "")
	require.Error(t, err)
	root = fresh(t)
	write(t, root, "config/governed_roots.json", "not json")
	_, err = Integrity(ctx, root, "")
	require.Error(t, err)
}
