package archive

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
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
// mtime, no name and OS byte 255, at a fixed compression level. The bytes
// depend on the Go toolchain's compress/flate, so compare content hashes,
// not archive bytes, across toolchains.
//
// Names are checked before anything is written; an error met later (a
// missing file, a symlink, a failing w) leaves a partial archive in w.
func Write(w io.Writer, srcDir string, paths []string) error {
	sorted := slices.Clone(paths)
	slices.Sort(sorted)
	names := nameSet{}
	for _, p := range sorted {
		name, uerr := checkName(p, false, DefaultMaxNameBytes)
		if uerr != nil {
			return uerr
		}
		if uerr := names.add(name, false); uerr != nil {
			return uerr
		}
	}
	root, err := os.OpenRoot(srcDir)
	if err != nil {
		return err
	}
	defer root.Close()
	zw, err := gzip.NewWriterLevel(w, gzipLevel)
	if err != nil {
		return err
	}
	zw.Header = gzip.Header{OS: gzipOSUnknown}
	tw := tar.NewWriter(zw)
	for _, p := range sorted {
		if err := writeFile(tw, root, p); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// writeFile appends the regular file p under root to tw.
func writeFile(tw *tar.Writer, root *os.Root, p string) error {
	lfi, err := root.Lstat(p)
	if err != nil {
		return err
	}
	if !lfi.Mode().IsRegular() {
		return fmt.Errorf("archive: %s is not a regular file (%s)", p, lfi.Mode().Type())
	}
	f, err := root.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(lfi, fi) {
		return fmt.Errorf("archive: %s changed while being archived", p)
	}
	mode := int64(0o644)
	if fi.Mode().Perm()&0o111 != 0 {
		mode = 0o755
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     p,
		Mode:     mode,
		Size:     fi.Size(),
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("archive: copying %s: %w", p, err)
	}
	return nil
}
