package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/plane"
	"github.com/stretchr/testify/require"
)

func newPlane(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	return root
}

func objects(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(root, objectsDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	require.NoError(t, err)
	return out
}

func TestTakeLoadList(t *testing.T) {
	root := newPlane(t)
	now := time.Date(2026, 11, 25, 2, 3, 4, 0, time.UTC)
	v, err := Take(root, Options{Label: "first", Actor: "tester", Now: now})
	require.NoError(t, err)
	require.True(t, ValidID(v.VersionID), v.VersionID)
	require.True(t, strings.HasPrefix(v.VersionID, "VER-20261125T020304Z-"))
	require.Equal(t, []Package{{PackageID: plane.KernelID, Version: plane.KernelVersion}}, v.Packages)

	// The scope: registries, installed/, every owned file; sorted, modes kept.
	paths := map[string]File{}
	for _, f := range v.Files {
		paths[f.Path] = f
	}
	for _, p := range []string{"registries/file_ownership.csv", "registries/packages_state.csv", "installed/PKG-KERNEL-001/receipt.json", "config/governed_roots.json"} {
		require.Contains(t, paths, p)
	}
	require.Equal(t, "0444", paths["config/governed_roots.json"].Mode)
	require.Equal(t, "0644", paths["registries/packages_state.csv"].Mode)
	for _, f := range v.Files {
		require.False(t, strings.HasPrefix(f.Path, "ledger/") || strings.HasPrefix(f.Path, "versions/"), f.Path)
	}

	got, err := Load(root, v.VersionID)
	require.NoError(t, err)
	require.Equal(t, v, got)

	// A second checkpoint of the same state stores no new blob.
	before := objects(t, root)
	v2, err := Take(root, Options{Label: "second", Actor: "tester", Now: now.Add(time.Second)})
	require.NoError(t, err)
	require.Equal(t, before, objects(t, root))
	list, err := List(root)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, []string{v.VersionID, v2.VersionID}, []string{list[0].VersionID, list[1].VersionID})

	// Every blob holds the bytes it is named by, read-only.
	r, err := os.OpenRoot(root)
	require.NoError(t, err)
	defer r.Close()
	for i, f := range v.Files {
		dst := "_staging/copy-" + string(rune('a'+i%26)) + f.SHA256[7:15]
		require.NoError(t, CopyObject(r, f, dst))
		a, err := os.ReadFile(filepath.Join(root, f.Path))
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(root, dst))
		require.NoError(t, err)
		require.Equal(t, a, b, f.Path)
		fi, err := os.Stat(filepath.Join(root, ObjectPath(f.SHA256)))
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o444), fi.Mode().Perm())
	}
}

func TestCopyObjectRefusesDamage(t *testing.T) {
	root := newPlane(t)
	v, err := Take(root, Options{Label: "x", Actor: "tester", Now: time.Now()})
	require.NoError(t, err)
	f := v.Files[0]
	r, err := os.OpenRoot(root)
	require.NoError(t, err)
	defer r.Close()

	obj := filepath.Join(root, ObjectPath(f.SHA256))
	require.NoError(t, os.Chmod(obj, 0o644))
	require.NoError(t, os.WriteFile(obj, []byte("altered"), 0o644))
	var e *Error
	require.ErrorAs(t, CopyObject(r, f, "_staging/a"), &e)
	require.Equal(t, "OBJECT_CORRUPT", e.Code())

	require.NoError(t, os.Remove(obj))
	require.ErrorAs(t, CopyObject(r, f, "_staging/b"), &e)
	require.Equal(t, "OBJECT_CORRUPT", e.Code())
}

func TestLoadRefuses(t *testing.T) {
	root := newPlane(t)
	v, err := Take(root, Options{Label: "x", Actor: "tester", Now: time.Now()})
	require.NoError(t, err)
	name := filepath.Join(root, Dir, v.VersionID+".json")
	good, err := os.ReadFile(name)
	require.NoError(t, err)

	var e *Error
	_, err = Load(root, "VER-20000101T000000Z-00000000")
	require.ErrorAs(t, err, &e)
	require.Equal(t, "VERSION_NOT_FOUND", e.Code())
	_, err = Load(root, "../../etc/passwd")
	require.ErrorAs(t, err, &e)
	require.Equal(t, "VERSION_NOT_FOUND", e.Code())

	var doc map[string]any
	require.NoError(t, json.Unmarshal(good, &doc))
	for name2, mutate := range map[string]func(map[string]any){
		"unknown field":  func(d map[string]any) { d["extra"] = 1 },
		"other id":       func(d map[string]any) { d["version_id"] = "VER-20000101T000000Z-00000000" },
		"absolute path":  func(d map[string]any) { d["files"].([]any)[0].(map[string]any)["path"] = "/etc/passwd" },
		"dot-dot path":   func(d map[string]any) { d["files"].([]any)[0].(map[string]any)["path"] = "../x" },
		"bad mode":       func(d map[string]any) { d["files"].([]any)[0].(map[string]any)["mode"] = "7777" },
		"bad hash":       func(d map[string]any) { d["files"].([]any)[0].(map[string]any)["sha256"] = "sha256:00" },
		"unsorted files": func(d map[string]any) { fs := d["files"].([]any); fs[0], fs[1] = fs[1], fs[0] },
	} {
		var d map[string]any
		require.NoError(t, json.Unmarshal(good, &d))
		mutate(d)
		b, err := json.Marshal(d)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(name, 0o644))
		require.NoError(t, os.WriteFile(name, b, 0o644))
		_, err = Load(root, v.VersionID)
		require.ErrorAs(t, err, &e, name2)
		require.Equal(t, "VERSION_INVALID", e.Code(), name2)
		_, err = List(root)
		require.Error(t, err, "%s: List skips nothing", name2)
	}
}

func TestScopeRefusesSymlink(t *testing.T) {
	root := newPlane(t)
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(root, "installed", "evil")))
	_, err := Scope(root)
	var e *Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, "STATE_UNSAFE", e.Code())
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version_id":"VER-20261125T020304Z-1a2b3c4d","label":"x","created_at":"t","actor":"a","packages":[],"files":[{"path":"a","sha256":"sha256:` + strings.Repeat("ab", 32) + `","size":1,"mode":"0444"}]}`))
	f.Add([]byte(`{"files":[{"path":"../a"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parse(b)
		if err != nil {
			return
		}
		prev := ""
		for _, fl := range v.Files {
			if !fs.ValidPath(fl.Path) || fl.Path <= prev || len(fl.SHA256) != 71 || fl.Size < 0 {
				t.Fatalf("accepted a bad file entry %+v", fl)
			}
			if _, err := ParseMode(fl.Mode); err != nil {
				t.Fatalf("accepted mode %q", fl.Mode)
			}
			prev = fl.Path
		}
	})
}

func TestUnmanaged(t *testing.T) {
	governed := []string{"config/", "lib/", "schemas/"}
	for p, ok := range map[string]bool{
		"registries/file_ownership.csv":             true,
		"registries/other.csv":                      false,
		"installed/PKG-X-001/receipt.json":          true,
		"installed/PKG-X-001/manifest.json":         true,
		"installed/PKG-X-001/evil.sh":               false,
		"installed/not-an-id/receipt.json":          false,
		"packages_store/PKG-X-001-1.0.0.tar.gz":     true,
		"packages_store/PKG-X-001-1.0.0.tar.gz.sig": true,
		"packages_store/other.txt":                  false,
		"lib/x.py":                                  true,
		"config/a/b.json":                           true,
		"tier.json":                                 false,
		"ledger/governance.jsonl":                   false,
		"versions/VER-x.json":                       false,
		"planes/ho2/tier.json":                      false,
		"_journal/plan.json":                        false,
		"docs/readme.md":                            false,
		"../etc/passwd":                             false,
		"/etc/passwd":                               false,
		"lib/../tier.json":                          false,
	} {
		require.Equal(t, ok, Unmanaged(p, governed) == "", "%s: %q", p, Unmanaged(p, governed))
	}
}

// A blob altered after it was stored is not reused: the next checkpoint
// stores the bytes again, and is restorable.
func TestTakeRepairsAlteredBlob(t *testing.T) {
	root := newPlane(t)
	v, err := Take(root, Options{Label: "a", Actor: "tester", Now: time.Now()})
	require.NoError(t, err)
	f := v.Files[0]
	obj := filepath.Join(root, ObjectPath(f.SHA256))
	require.NoError(t, os.Chmod(obj, 0o644))
	require.NoError(t, os.WriteFile(obj, []byte("altered"), 0o644))
	_, err = Take(root, Options{Label: "b", Actor: "tester", Now: time.Now()})
	require.NoError(t, err)
	r, err := os.OpenRoot(root)
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, CopyObject(r, f, "_staging/check"))
}

// A rollback's checkpoint links the blobs of the read-only files it
// displaces; Forget (the rollback did not happen) or Detach (recovery)
// leaves no blob sharing an inode with the plane.
func TestDisplacedLinks(t *testing.T) {
	root := newPlane(t)
	const p = "schemas/receipt.schema.json"
	sameInode := func(v *Version) bool {
		for _, f := range v.Files {
			if f.Path == p {
				a, err := os.Stat(filepath.Join(root, ObjectPath(f.SHA256)))
				require.NoError(t, err)
				b, err := os.Stat(filepath.Join(root, p))
				require.NoError(t, err)
				return os.SameFile(a, b)
			}
		}
		t.Fatalf("%s not in the checkpoint", p)
		return false
	}
	opts := Options{Label: "before", Actor: "tester", Now: time.Now(), Displaced: func(q string) bool { return q == p }}
	v, err := Take(root, opts)
	require.NoError(t, err)
	require.True(t, sameInode(v), "a displaced file's blob is a link")
	require.Equal(t, 1, len(v.linked))
	require.NoError(t, Forget(root, v))
	_, err = Load(root, v.VersionID)
	require.Error(t, err)

	v, err = Take(root, opts)
	require.NoError(t, err)
	require.True(t, sameInode(v))
	require.NoError(t, Detach(root, v.VersionID))
	require.False(t, sameInode(v), "after Detach the blob is a copy")
	r, err := os.OpenRoot(root)
	require.NoError(t, err)
	defer r.Close()
	for _, f := range v.Files {
		if f.Path == p {
			require.NoError(t, CopyObject(r, f, "_staging/check"))
		}
	}
}

// A blob left linked to a governed file (a rollback cut short before any
// checkpoint named it) is never reused: the next checkpoint stores a copy.
func TestLinkedBlobNotReused(t *testing.T) {
	root := newPlane(t)
	const p = "schemas/receipt.schema.json"
	v, err := Take(root, Options{Label: "a", Actor: "tester", Now: time.Now(), Displaced: func(q string) bool { return q == p }})
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(root, Dir, v.VersionID+".json"))) // as if cut short before the file was written
	w, err := Take(root, Options{Label: "b", Actor: "tester", Now: time.Now()})
	require.NoError(t, err)
	for _, f := range w.Files {
		if f.Path == p {
			a, err := os.Stat(filepath.Join(root, ObjectPath(f.SHA256)))
			require.NoError(t, err)
			b, err := os.Stat(filepath.Join(root, p))
			require.NoError(t, err)
			require.False(t, os.SameFile(a, b))
		}
	}
}

// A rollback cut short after Take linked a displaced file's blob but
// before the checkpoint file was written (or before recovery knew its id)
// leaves a blob sharing the plane file's inode, which G0B reports as a
// HARD_LINK: Detach of a checkpoint never written, or of none, makes every
// blob that has another name a copy of its own.
func TestDetachUnwrittenCheckpoint(t *testing.T) {
	for _, id := range []string{"", "named"} {
		root := newPlane(t)
		const p = "schemas/receipt.schema.json"
		v, err := Take(root, Options{Label: "a", Actor: "tester", Now: time.Now(), Displaced: func(q string) bool { return q == p }})
		require.NoError(t, err)
		require.NoError(t, os.Remove(filepath.Join(root, Dir, v.VersionID+".json"))) // cut short before the file was written
		if id == "named" {
			id = v.VersionID
		}
		require.NoError(t, Detach(root, id))
		b, err := os.Stat(filepath.Join(root, p))
		require.NoError(t, err)
		for _, o := range objects(t, root) {
			a, err := os.Stat(o)
			require.NoError(t, err)
			require.False(t, os.SameFile(a, b), "blob %s still shares %s's inode", o, p)
			require.Equal(t, fs.FileMode(0o444), a.Mode().Perm())
		}
	}
}

// A FIFO where a blob is stored is never opened blocking: the next
// checkpoint stores the blob again (issue 10 item 15).
func TestFIFOBlob(t *testing.T) {
	root := newPlane(t)
	v, err := Take(root, Options{Label: "a", Actor: "tester", Now: time.Now()})
	require.NoError(t, err)
	obj := filepath.Join(root, ObjectPath(v.Files[0].SHA256))
	require.NoError(t, os.Remove(obj))
	require.NoError(t, syscall.Mkfifo(obj, 0o644))
	done := make(chan error, 1)
	go func() {
		_, err := Take(root, Options{Label: "b", Actor: "tester", Now: time.Now()})
		done <- err
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Take blocked on a FIFO blob")
	}
	fi, err := os.Lstat(obj)
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular())
}
