// Package snapshot keeps the checkpoints of a plane's installed state that
// cp-install calls versions (VER-...; DESIGN.md §6): the receipts and
// installed manifests, the registries and the bytes of every owned file,
// stored content-addressed so that each distinct blob is kept once however
// many checkpoints hold it.
//
// # On-disk format
//
// Under the plane root:
//
//	versions/objects/<h[:2]>/<h[2:]>   a blob whose lowercase hex SHA-256 is h,
//	                                   mode 0444, written to a temporary name,
//	                                   fsynced, then renamed: whole or absent
//	versions/<VER-ID>.json             one checkpoint (a Version), written
//	                                   after all of its blobs are durable
//
// A checkpoint file is JSON:
//
//	{"version_id": "VER-20261125T020304Z-1a2b3c4d", "label": "before upgrade",
//	 "created_at": "2026-11-25T02:03:04.123456Z", "actor": "ops",
//	 "packages": [{"package_id": "PKG-KERNEL-001", "version": "1.0.0"}],
//	 "files": [{"path": "registries/file_ownership.csv", "sha256": "sha256:<hex>",
//	            "size": 812, "mode": "0644"}, ...]}
//
// files are sorted by path and cover the state's scope (Scope): the five
// registries, every file under installed/, the kept archives and signatures
// of the installed packages, and every owned file that exists on disk, with
// the bytes and mode found there. No other path is ever part of a
// checkpoint (Unmanaged). Readers refuse unknown
// fields (fail closed). A checkpoint is never changed or deleted.
//
// Blobs are copies, never hard links to governed files: a governed file
// edited in place must not alter the history kept of it. The one exception
// is a rollback's own checkpoint of the state it leaves (Options.Displaced):
// the read-only files it replaces or removes leave the plane when it
// commits, so their inodes become the blobs; if the rollback does not
// happen, Forget removes those links.
package snapshot

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/manifest"
)

// Dir is the versions directory relative to the plane root.
const Dir = "versions"

const objectsDir = Dir + "/objects"

// File is one file of a checkpoint.
type File struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"` // "sha256:" + hex
	Size   int64  `json:"size"`
	Mode   string `json:"mode"` // octal permission bits, e.g. "0444"
}

// Package is one installed package at checkpoint time.
type Package struct {
	PackageID string `json:"package_id"`
	Version   string `json:"version"`
}

// Version is one checkpoint.
type Version struct {
	VersionID string    `json:"version_id"`
	Label     string    `json:"label"`
	CreatedAt string    `json:"created_at"`
	Actor     string    `json:"actor"`
	Packages  []Package `json:"packages"`
	Files     []File    `json:"files"`
	linked    []string  // blobs Take hard-linked to displaced files
	fileHash  string    // "sha256:<hex>" of the checkpoint file's bytes
}

// FileSHA256 is "sha256:<hex>" of the checkpoint file's bytes, as Take
// wrote them or Load read them: recorded in the ledger when the checkpoint
// is made, and checked before a rollback trusts the file.
func (v *Version) FileSHA256() string { return v.fileHash }

// Error is a snapshot failure callers act on: VERSION_NOT_FOUND (the
// caller named a checkpoint that does not exist), VERSION_INVALID or
// OBJECT_CORRUPT (the stored history is damaged: nothing is restored from
// it), STATE_UNSAFE or STATE_CHANGED (the state is not one a checkpoint or
// a rollback may take or write).
type Error struct {
	code string
	Path string
	Msg  string
}

func (e *Error) Error() string { return e.Path + ": " + e.Msg }

// Code returns the stable error code.
func (e *Error) Code() string { return e.code }

// ErrorDetails names the path concerned.
func (e *Error) ErrorDetails() map[string]any { return map[string]any{"path": e.Path} }

// Compiled on first use, not at package init: every binary links this package.
var idPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^VER-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`) })

// ValidID reports whether id has the form of a version id.
func ValidID(id string) bool { return idPattern().MatchString(id) }

// NewID returns a fresh version id for time t: sortable by time, unique by
// its random suffix.
func NewID(t time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return "VER-" + t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Unmanaged says why p is not a path of a plane's installed state, or ""
// when it is. The state is: the five registries,
// installed/<PKG-ID>/receipt.json and manifest.json,
// packages_store/<PKG-ID>-<version>.tar.gz and its .sig, and the files
// under the governed roots that no reserved path covers. Installs and
// rollbacks write and remove nothing else, whatever a registry or a
// checkpoint file says: tier.json, ledgers, checkpoints and the lower tiers
// are out of their reach.
func Unmanaged(p string, governed []string) string {
	if !fs.ValidPath(p) || p == "." || strings.Contains(p, `\`) {
		return "not a clean relative path"
	}
	for _, t := range registry.All {
		if p == registry.Dir+"/"+t.File {
			return ""
		}
	}
	dir, name := path.Split(p)
	switch {
	case strings.HasPrefix(p, plane.InstalledDir+"/"):
		id := strings.TrimSuffix(strings.TrimPrefix(dir, plane.InstalledDir+"/"), "/")
		if manifest.ValidPackageID(id) && (name == "receipt.json" || name == "manifest.json") {
			return ""
		}
		return "not a receipt or an installed manifest"
	case dir == "packages_store/":
		if strings.HasPrefix(name, "PKG-") && (strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".tar.gz.sig")) {
			return ""
		}
		return "not a kept package archive or signature"
	case p == "tier.json" || plane.Under(p, plane.Reserved):
		return "a reserved plane path"
	case !plane.Under(p, governed):
		return "outside the governed roots"
	}
	return ""
}

// CheckManaged refuses (STATE_UNSAFE) the first path that Unmanaged
// rejects.
func CheckManaged(paths []string, governed []string) error {
	for _, p := range paths {
		if why := Unmanaged(p, governed); why != "" {
			return &Error{code: "STATE_UNSAFE", Path: p, Msg: why + ": an install or rollback never writes or removes it"}
		}
	}
	return nil
}

// Scope lists the plane-relative paths a checkpoint covers right now: the
// five registries, every regular file under installed/, the kept archive
// and signature of every installed package, and every path in
// file_ownership.csv (whether or not it exists on disk). Sorted, unique.
// A registry row naming a path outside the state (Unmanaged) is
// STATE_UNSAFE: a tampered registry never widens what a rollback touches.
func Scope(root string) ([]string, error) {
	governed, err := plane.GovernedRoots(root)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, t := range registry.All {
		set[registry.Dir+"/"+t.File] = true
	}
	pkgs, err := registry.Read(root, registry.Packages)
	if err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		if p["status"] == registry.StatusInstalled {
			store := plane.StorePath(p["package_id"], p["version"])
			set[store], set[store+".sig"] = true, true
		}
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	err = fs.WalkDir(r.FS(), plane.InstalledDir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return &Error{code: "STATE_UNSAFE", Path: p, Msg: "not a regular file"}
		}
		set[p] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	owners, err := registry.Read(root, registry.Ownership)
	if err != nil {
		return nil, err
	}
	for _, o := range owners {
		set[o["path"]] = true
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, CheckManaged(out, governed)
}

// Stat describes the file at a path now: absent, or its hash, size and
// mode.
type Stat struct {
	Exists bool
	File   File
}

// StatAll hashes the files at paths under root in parallel, reading each
// once. A path that does not exist is reported absent; one that is not a
// regular file is STATE_UNSAFE.
func StatAll(root string, paths []string) ([]Stat, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := make([]Stat, len(paths))
	err = parallel(len(paths), func(i int) error {
		st, err := statFile(r, paths[i])
		out[i] = st
		return err
	})
	return out, err
}

func statFile(r *os.Root, p string) (Stat, error) {
	fi, err := r.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return Stat{}, nil
	} else if err != nil {
		return Stat{}, err
	}
	if !fi.Mode().IsRegular() {
		return Stat{}, &Error{code: "STATE_UNSAFE", Path: p, Msg: "not a regular file"}
	}
	f, err := regfile.OpenIn(r, p)
	if err != nil {
		return Stat{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := atomicfile.Copy(h, f)
	if err != nil {
		return Stat{}, err
	}
	return Stat{Exists: true, File: File{Path: p, SHA256: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n, Mode: FormatMode(fi.Mode())}}, nil
}

// FormatMode formats permission bits as a checkpoint records them.
func FormatMode(m fs.FileMode) string { return fmt.Sprintf("%04o", uint32(m.Perm())) }

// ParseMode parses a recorded mode.
func ParseMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || len(s) != 4 || v&^uint64(fs.ModePerm) != 0 {
		return 0, fmt.Errorf("bad mode %q", s)
	}
	return fs.FileMode(v), nil
}

// Options describe a checkpoint being taken.
type Options struct {
	Label string
	Actor string
	Now   time.Time
	// Known holds files already hashed under the same lock (by path), so
	// that they are not read again; the rest of the scope is hashed.
	Known map[string]Stat
	// Displaced, if set, names the read-only (0444) files that the caller
	// is about to replace or remove for good (a rollback's targets): their
	// blobs may be hard links to them rather than copies, since their
	// inodes leave the plane when the change commits. If it does not, the
	// caller calls Forget.
	Displaced func(path string) bool
}

// Take checkpoints the state of the plane at root: it hashes every file in
// Scope, stores the blobs not stored yet, then writes versions/<id>.json.
// The caller holds the plane's registry lock, so the state cannot change
// underneath. A crash leaves at most some unreferenced blobs, which are
// harmless (a later checkpoint reuses them).
func Take(root string, opts Options) (*Version, error) {
	paths, err := Scope(root)
	if err != nil {
		return nil, err
	}
	var todo []string
	for _, p := range paths {
		if _, ok := opts.Known[p]; !ok {
			todo = append(todo, p)
		}
	}
	hashed, err := StatAll(root, todo)
	if err != nil {
		return nil, err
	}
	stats := make([]Stat, 0, len(paths))
	for i, j := 0, 0; i < len(paths); i++ {
		if st, ok := opts.Known[paths[i]]; ok {
			stats = append(stats, st)
		} else {
			stats = append(stats, hashed[j])
			j++
		}
	}
	pkgs, err := registry.Read(root, registry.Packages)
	if err != nil {
		return nil, err
	}
	v := &Version{VersionID: NewID(opts.Now), Label: opts.Label, CreatedAt: opts.Now.UTC().Format("2006-01-02T15:04:05.000000Z"),
		Actor: opts.Actor, Packages: []Package{}, Files: []File{}}
	for _, p := range pkgs {
		if p["status"] == registry.StatusInstalled {
			v.Packages = append(v.Packages, Package{PackageID: p["package_id"], Version: p["version"]})
		}
	}
	for _, st := range stats {
		if st.Exists {
			v.Files = append(v.Files, st.File)
		}
	}
	linked, err := store(root, v.Files, opts.Displaced)
	if err != nil {
		return nil, err
	}
	v.linked = linked
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if err := atomicfile.Write(filepath.Join(root, Dir, v.VersionID+".json"), b, 0o444); err != nil {
		return nil, err
	}
	v.fileHash = plane.SHA256(b)
	return v, nil
}

// store copies into the object store every file whose blob is not there
// yet, each durable before the checkpoint that names it is written.
func store(root string, files []File, displaced func(string) bool) ([]string, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.MkdirAll(objectsDir, 0o755); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	made := map[string]bool{}
	seen := map[string]bool{}
	var todo []File
	var linked []string
	for _, f := range files {
		if !seen[f.SHA256] {
			seen[f.SHA256] = true
			todo = append(todo, f)
		}
	}
	var wrote atomic.Bool
	err = parallel(len(todo), func(i int) error {
		f := todo[i]
		obj := ObjectPath(f.SHA256)
		if blobHolds(r, obj, f) {
			return nil // stored before, and still the bytes it is named by
		}
		dir := path.Dir(obj)
		mu.Lock()
		if !made[dir] {
			if err := r.MkdirAll(dir, 0o755); err != nil {
				mu.Unlock()
				return err
			}
			made[dir] = true
		}
		mu.Unlock()
		wrote.Store(true)
		if displaced != nil && f.Mode == "0444" && displaced(f.Path) {
			if ok, err := linkObject(r, f, obj); err != nil || ok {
				if ok {
					mu.Lock()
					linked = append(linked, obj)
					mu.Unlock()
				}
				return err
			}
		}
		return copyObject(r, f, obj)
	})
	if err != nil || !wrote.Load() {
		return linked, err
	}
	for d := range made {
		if err := atomicfile.SyncIn(r, d); err != nil {
			return linked, err
		}
	}
	return linked, atomicfile.SyncIn(r, objectsDir)
}

// linkedElsewhere reports whether the file has more than one name.
func linkedElsewhere(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink > 1
}

// linkObject stores f's blob as a hard link to f's file, after checking the
// bytes; false (and no error) when the link cannot be made, so that the
// caller copies instead.
func linkObject(r *os.Root, f File, obj string) (bool, error) {
	tmp := obj + ".tmp-" + randHex()
	if err := r.Link(f.Path, tmp); err != nil {
		return false, nil
	}
	if !holds(r, tmp, f) {
		r.Remove(tmp)
		return false, &Error{code: "STATE_CHANGED", Path: f.Path, Msg: "changed while being checkpointed"}
	}
	if err := r.Rename(tmp, obj); err != nil {
		r.Remove(tmp)
		return false, err
	}
	return true, nil
}

// Detach makes every blob of checkpoint id that shares its inode with the
// file now at its path (a link Take made for a rollback that did not
// commit) a copy of its own, so that no history shares an inode with the
// plane. Recovery of an interrupted rollback calls it.
//
// A checkpoint never written (id unknown, or its file missing: the
// rollback was cut short inside Take) names no blobs, but Take may have
// linked some already: every blob with another name is then made a copy of
// its own (blobs have one name at rest; their bytes are unchanged).
func Detach(root, id string) error {
	if id == "" {
		return detachLinked(root)
	}
	v, err := Load(root, id)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.code == "VERSION_NOT_FOUND" {
			return detachLinked(root) // the checkpoint was never written
		}
		return err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, f := range v.Files {
		obj := ObjectPath(f.SHA256)
		a, errA := r.Lstat(obj)
		b, errB := r.Lstat(f.Path)
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			continue
		}
		if err := copyIn(r, obj, obj, f, corruptBlob(f)); err != nil {
			return err
		}
	}
	return nil
}

// detachLinked makes every blob in the object store that has another name
// a copy of its own.
func detachLinked(root string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	dir := filepath.Join(root, filepath.FromSlash(objectsDir))
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil || !linkedElsewhere(fi) {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		obj := filepath.ToSlash(rel)
		if strings.Contains(obj, ".tmp-") {
			return nil // a leftover, not a blob
		}
		sum := strings.ReplaceAll(strings.TrimPrefix(obj, objectsDir+"/"), "/", "")
		f := File{SHA256: "sha256:" + sum, Size: fi.Size()}
		err = copyIn(r, obj, obj, f, corruptBlob(f))
		if e := (*Error)(nil); errors.As(err, &e) && e.code == "OBJECT_CORRUPT" {
			return nil // no longer its bytes: the next checkpoint stores the blob again
		}
		return err
	})
}

// Forget removes a checkpoint that Take made for a change that then did
// not happen: its file, and the blobs it hard-linked to files that stay in
// the plane (which must never share an inode with history).
func Forget(root string, v *Version) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	var first error
	for _, obj := range append([]string{Dir + "/" + v.VersionID + ".json"}, v.linked...) {
		if err := r.Remove(obj); err != nil && !errors.Is(err, fs.ErrNotExist) && first == nil {
			first = err
		}
	}
	return first
}

// blobHolds reports whether the blob obj exists, has no other name and
// holds f's bytes: a blob altered since it was stored, or still linked to a
// file of the plane by a rollback that was cut short, is copied again, not
// trusted, so a new checkpoint is always restorable and never shares an
// inode with the plane.
func blobHolds(r *os.Root, obj string, f File) bool {
	b, err := regfile.OpenIn(r, obj) // a FIFO or device is no blob: store a copy
	if err != nil {
		return false
	}
	defer b.Close()
	if fi, err := b.Stat(); err != nil || linkedElsewhere(fi) {
		return false // shares its inode with a file outside history (a rollback cut short): store a copy
	}
	return readHolds(b, f)
}

// holds reports whether the file name holds f's bytes.
func holds(r *os.Root, name string, f File) bool {
	b, err := regfile.OpenIn(r, name)
	if err != nil {
		return false
	}
	defer b.Close()
	return readHolds(b, f)
}

func readHolds(b *os.File, f File) bool {
	h := sha256.New()
	n, err := atomicfile.Copy(h, b)
	return err == nil && n == f.Size && "sha256:"+hex.EncodeToString(h.Sum(nil)) == f.SHA256
}

// copyObject stores the blob obj from f's file through a temporary name,
// checking that the bytes copied are the bytes hashed.
func copyObject(r *os.Root, f File, obj string) error {
	return copyIn(r, f.Path, obj, f, &Error{code: "STATE_CHANGED", Path: f.Path, Msg: "changed while being checkpointed"})
}

// copyIn replaces dst with a copy of src (mode 0444, fsynced, through a
// temporary name) whose bytes must be f's, else the copy is dropped and the
// error is changed.
func copyIn(r *os.Root, src, dst string, f File, changed error) error {
	tmp := dst + ".tmp-" + randHex()
	defer r.Remove(tmp) // a no-op after the rename
	if err := copyChecked(r, src, tmp, f, 0o444, true, changed); err != nil {
		return err
	}
	return r.Rename(tmp, dst)
}

// copyChecked copies src to a new file dst (exclusive; mode exact, whatever
// the umask; fsynced if sync) and returns changed unless the bytes copied
// are f's size and hash. dst is left for the caller to remove on error.
func copyChecked(r *os.Root, src, dst string, f File, mode fs.FileMode, sync bool, changed error) error {
	in, err := regfile.OpenIn(r, src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := r.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := atomicfile.Copy(io.MultiWriter(out, h), in)
	if err == nil && (n != f.Size || "sha256:"+hex.EncodeToString(h.Sum(nil)) != f.SHA256) {
		err = changed
	}
	if err == nil {
		err = out.Chmod(mode)
	}
	if err == nil && sync {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// ObjectPath is where the blob with the given "sha256:<hex>" hash is kept,
// relative to the plane root.
func ObjectPath(sha string) string {
	h := strings.TrimPrefix(sha, "sha256:")
	return objectsDir + "/" + h[:2] + "/" + h[2:]
}

// Load reads checkpoint id of the plane at root (VERSION_NOT_FOUND,
// VERSION_INVALID).
func Load(root, id string) (*Version, error) {
	if !ValidID(id) {
		return nil, &Error{code: "VERSION_NOT_FOUND", Path: id, Msg: "not a version id (VER-YYYYMMDDTHHMMSSZ-xxxxxxxx)"}
	}
	name := Dir + "/" + id + ".json"
	b, err := regfile.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &Error{code: "VERSION_NOT_FOUND", Path: id, Msg: "no such checkpoint (cp-install versions lists them)"}
	} else if err != nil {
		return nil, err
	}
	v, err := parse(b)
	if err != nil {
		return nil, &Error{code: "VERSION_INVALID", Path: name, Msg: err.Error()}
	}
	v.fileHash = plane.SHA256(b)
	if v.VersionID != id {
		return nil, &Error{code: "VERSION_INVALID", Path: name, Msg: "holds version " + v.VersionID}
	}
	governed, err := plane.GovernedRoots(root)
	if err != nil {
		return nil, err
	}
	for _, f := range v.Files {
		if why := Unmanaged(f.Path, governed); why != "" {
			return nil, &Error{code: "VERSION_INVALID", Path: name, Msg: f.Path + ": " + why}
		}
	}
	return v, nil
}

func parse(b []byte) (*Version, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v Version
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	prev := ""
	for _, f := range v.Files {
		if !fs.ValidPath(f.Path) || f.Path == "." || strings.Contains(f.Path, `\`) || f.Path <= prev {
			return nil, fmt.Errorf("bad, duplicate or unsorted path %q", f.Path)
		}
		prev = f.Path
		if _, err := ParseMode(f.Mode); err != nil {
			return nil, fmt.Errorf("%s: %v", f.Path, err)
		}
		if h := strings.TrimPrefix(f.SHA256, "sha256:"); len(h) != 64 || h == f.SHA256 || strings.ToLower(h) != h {
			return nil, fmt.Errorf("%s: bad sha256 %q", f.Path, f.SHA256)
		} else if _, err := hex.DecodeString(h); err != nil {
			return nil, fmt.Errorf("%s: bad sha256 %q", f.Path, f.SHA256)
		}
		if f.Size < 0 {
			return nil, fmt.Errorf("%s: negative size", f.Path)
		}
	}
	return &v, nil
}

// List returns every checkpoint of the plane at root, oldest first. A
// checkpoint file that does not parse is VERSION_INVALID: history that
// cannot be read is not skipped.
func List(root string) ([]*Version, error) {
	entries, err := os.ReadDir(filepath.Join(root, Dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []*Version
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !ValidID(id) {
			continue // objects/ and temporary files
		}
		v, err := Load(root, id)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *Version) int {
		if c := strings.Compare(a.CreatedAt, b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.VersionID, b.VersionID)
	})
	return out, nil
}

// CopyObjects is CopyObject for many files on several goroutines (file
// creation, not copying, bounds it); the first error wins.
func CopyObjects(r *os.Root, files []File, dsts []string) error {
	return parallel(len(files), func(i int) error { return CopyObject(r, files[i], dsts[i]) })
}

// CopyObject copies the blob of f to dst (a root-relative path, created
// exclusively, mode 0600), checking its hash and size: a blob that is
// missing or altered is OBJECT_CORRUPT, so nothing is restored from it.
func CopyObject(r *os.Root, f File, dst string) error {
	obj := ObjectPath(f.SHA256)
	if _, err := r.Lstat(obj); errors.Is(err, fs.ErrNotExist) {
		return &Error{code: "OBJECT_CORRUPT", Path: f.Path, Msg: "the blob " + f.SHA256 + " is missing from " + objectsDir}
	}
	// Not fsynced here: the journal that takes the copy fsyncs it.
	return copyChecked(r, obj, dst, f, 0o600, false, corruptBlob(f))
}

func corruptBlob(f File) *Error {
	return &Error{code: "OBJECT_CORRUPT", Path: f.Path, Msg: "the blob " + f.SHA256 + " no longer holds those bytes"}
}

// parallel calls fn(0) ... fn(n-1) from a bounded number of goroutines
// (I/O bound: fsyncs in flight share journal commits) and returns the
// first error.
func parallel(n int, fn func(i int) error) error {
	const workers = 32
	var next atomic.Int64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				errs[i] = fn(i)
			}
		})
	}
	wg.Wait()
	return firstErr(errs)
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func randHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
