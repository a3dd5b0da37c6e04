package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/regfile"
)

// gzipLevel is the fixed compression level of [Write]. Level 9 made
// staging a 50 MB package take seconds and its Huffman-coded output slow to
// inflate; level 1 keeps compression from dominating stage and preflight.
const gzipLevel = gzip.BestSpeed

// gzipOSUnknown is the gzip header OS byte [Write] emits ("unknown").
const gzipOSUnknown = 255

// Write writes a deterministic tar.gz of the named files to w. paths are
// clean slash-separated paths relative to srcDir naming regular files
// (symlinks are refused); they obey the name rules of [Extract] (with
// [DefaultMaxNameBytes]) and may not repeat or collide when case-folded.
// Reserved targets and the presence of manifest.json are not checked here.
//
// The same tree gives the same bytes whatever its mtimes, owners, umask or
// the order of paths: members are sorted by path bytes; only regular files
// are emitted (no directory entries); each has mtime 0, uid/gid 0, empty
// uname/gname and mode 0755 if the source has any execute bit, else 0644;
// headers are USTAR, or PAX where a name needs it; the gzip header has zero
// mtime, no name and OS byte 255, and the deflate stream is made of 1 MiB
// blocks compressed independently (in parallel) at a fixed level. The bytes
// depend on the Go toolchain's compress/flate, so compare content hashes,
// not archive bytes, across toolchains.
//
// Names are checked before anything is written; an error met later (a
// missing file, a symlink, a failing w) leaves a partial archive in w.
func Write(w io.Writer, srcDir string, paths []string) error {
	_, err := WriteContents(w, srcDir, paths)
	return err
}

// WriteContents is [Write] that also describes what it wrote, as [Scan]
// would read it back: every file's hash and size computed from the bytes
// that went into the archive (not from a separate read, so a file changing
// underneath cannot slip by), the manifest.json bytes, and the hash of the
// compressed output.
func WriteContents(w io.Writer, srcDir string, paths []string) (*Contents, error) {
	sorted, err := sortedNames(paths)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(srcDir)
	if err != nil {
		return nil, err
	}
	dirs := NewDirRoots(root)
	defer dirs.Close()
	return writeMembers(w, sorted, func(tw *tar.Writer, p string, h hash.Hash) (File, []byte, error) {
		dir, base, err := dirs.Split(p)
		if err != nil {
			return File{}, nil, err
		}
		return writeFile(tw, dir, base, p, h)
	})
}

// WriteFiles is [Write] of files held in memory, by slash path, each
// archived with mode 0644: the same bytes Write gives for a tree of those
// files with that mode. For an archive a program builds (the plane's
// kernel): no directory to write out first, and to leave behind if the
// program is killed.
func WriteFiles(w io.Writer, files map[string][]byte) error {
	sorted, err := sortedNames(slices.Collect(maps.Keys(files)))
	if err != nil {
		return err
	}
	_, err = writeMembers(w, sorted, func(tw *tar.Writer, p string, h hash.Hash) (File, []byte, error) {
		b := files[p]
		return writeMember(tw, p, 0o644, int64(len(b)), bytes.NewReader(b), h)
	})
	return err
}

// sortedNames returns paths sorted by their bytes, once each has been
// checked against the name rules and against the others.
func sortedNames(paths []string) ([]string, error) {
	sorted := slices.Clone(paths)
	slices.Sort(sorted)
	names := nameSet{}
	for _, p := range sorted {
		name, uerr := checkName(p, false, DefaultMaxNameBytes)
		if uerr != nil {
			return nil, uerr
		}
		if uerr := names.add(name, false); uerr != nil {
			return nil, uerr
		}
	}
	return sorted, nil
}

// writeMembers writes the deterministic tar.gz of Write to w, its members
// the sorted paths, each appended by add.
func writeMembers(w io.Writer, sorted []string, add func(tw *tar.Writer, p string, h hash.Hash) (File, []byte, error)) (*Contents, error) {
	archiveHash := sha256.New()
	zw, err := newParallelGzip(io.MultiWriter(w, archiveHash))
	if err != nil {
		return nil, err
	}
	defer zw.abort() // a no-op after Close
	tw := tar.NewWriter(zw)
	c := &Contents{}
	h := sha256.New()
	for _, p := range sorted {
		f, manifest, err := add(tw, p, h)
		if err != nil {
			return nil, err
		}
		c.Files = append(c.Files, f)
		if p == ManifestName {
			c.Manifest = manifest
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	c.ArchiveSHA256 = hex.EncodeToString(archiveHash.Sum(nil))
	return c, nil
}

// writeFile appends the regular file base in dir (archived as p) to tw and
// describes it from the bytes written (h is a reused hash); for
// manifest.json it also returns those bytes.
func writeFile(tw *tar.Writer, dir *os.Root, base, p string, h hash.Hash) (File, []byte, error) {
	lfi, err := dir.Lstat(base)
	if err != nil {
		return File{}, nil, err
	}
	if !lfi.Mode().IsRegular() {
		return File{}, nil, &ChangedError{Path: p, Msg: fmt.Sprintf("not a regular file (%s)", lfi.Mode().Type())}
	}
	f, err := regfile.OpenIn(dir, base) // never waits on a FIFO swapped in after the Lstat
	if err != nil {
		return File{}, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return File{}, nil, err
	}
	if !os.SameFile(lfi, fi) {
		return File{}, nil, &ChangedError{Path: p, Msg: "replaced while being archived"}
	}
	mode := int64(0o644)
	if fi.Mode().Perm()&0o111 != 0 {
		mode = 0o755
	}
	return writeMember(tw, p, mode, fi.Size(), f, h)
}

// writeMember appends member p (mode, size bytes read from r) to tw and
// describes it from the bytes written (h is a reused hash); for
// manifest.json it also returns those bytes.
func writeMember(tw *tar.Writer, p string, mode, size int64, r io.Reader, h hash.Hash) (File, []byte, error) {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     p,
		Mode:     mode,
		Size:     size,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return File{}, nil, err
	}
	h.Reset()
	var manifest bytes.Buffer
	dst := io.MultiWriter(tw, h)
	if p == ManifestName {
		dst = io.MultiWriter(tw, h, &manifest)
	}
	if _, err := io.CopyN(dst, r, size); err != nil {
		return File{}, nil, &ChangedError{Path: p, Msg: "shrank or could not be read while being archived: " + err.Error()}
	}
	return File{Path: p, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Mode: fs.FileMode(mode)}, manifest.Bytes(), nil
}

// ChangedError is a source file that changed (or was never a regular file)
// while Write archived it. Its code is SOURCE_CHANGED: try again once the
// tree is still.
type ChangedError struct{ Path, Msg string }

func (e *ChangedError) Error() string { return "archive: " + e.Path + ": " + e.Msg }

// Code returns SOURCE_CHANGED.
func (e *ChangedError) Code() string { return "SOURCE_CHANGED" }

// DirRoots opens each directory of a tree once, as an os.Root of its own
// under the tree's root, so that opening many files costs one
// single-component call each instead of a walk from the top for every
// operation. Nothing it opens can be outside the tree's root.
type DirRoots struct {
	root *os.Root
	subs map[string]*os.Root
}

// NewDirRoots starts a DirRoots over root, which it then owns (Close
// closes it). Split is safe for concurrent use only once every directory
// needed has been split once.
func NewDirRoots(root *os.Root) *DirRoots {
	return &DirRoots{root: root, subs: map[string]*os.Root{".": root}}
}

// Split returns the root of p's directory and p's last element.
func (d *DirRoots) Split(p string) (*os.Root, string, error) {
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if r, ok := d.subs[dir]; ok {
		return r, base, nil
	}
	r, err := d.root.OpenRoot(dir)
	if err != nil {
		return nil, "", err
	}
	d.subs[dir] = r
	return r, base, nil
}

// Close closes every root it opened, the tree's root included.
func (d *DirRoots) Close() error {
	for _, r := range d.subs {
		r.Close()
	}
	return nil
}
