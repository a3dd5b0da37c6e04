package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Extract reads a tar.gz from r and writes its files under dir through an
// [os.Root], so no name can reach outside dir. dir must exist and be empty:
// it is the caller's private staging directory.
//
// Every header is validated before any of its bytes are written, and files
// are hashed while they are written. On any error, a refusal or otherwise,
// Extract removes everything it wrote, leaving dir empty. Refusals are
// returned as [*UnsafeError]; other errors (I/O) are returned as is.
func Extract(r io.Reader, dir string, lim Limits) (*Contents, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if err := checkEmpty(root); err != nil {
		return nil, err
	}
	c, err := read(r, lim, root)
	if err != nil {
		if cerr := removeContents(root); cerr != nil {
			return nil, errors.Join(err, fmt.Errorf("archive: cleaning staging dir: %w", cerr))
		}
		return nil, err
	}
	return c, nil
}

// Scan validates and hashes an archive like [Extract] but writes nothing.
// It streams: memory use is bounded by the manifest and the name table.
func Scan(r io.Reader, lim Limits) (*Contents, error) {
	return read(r, lim, nil)
}

func checkEmpty(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if err != nil && err != io.EOF {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("archive: staging dir %s is not empty", root.Name())
	}
	return nil
}

// removeContents removes everything inside root.
func removeContents(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		errs = append(errs, root.RemoveAll(n))
	}
	return errors.Join(errs...)
}

// source records the first error of the caller's reader, so that I/O
// errors are told apart from format errors.
type source struct {
	r   io.Reader
	err error
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

var errStreamCap = errors.New("archive: decompressed stream cap passed")

// stream sits between gzip and tar. It counts decompressed bytes and fails
// once more than max have been read, and it reports io.EOF only on a call
// of its own, so that sawEOF tells whether tar asked for bytes past the end.
type stream struct {
	r          io.Reader
	n, max     int64
	err        error // sticky
	pendingEOF bool
	sawEOF     bool
	over       bool
}

func (s *stream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.pendingEOF {
		s.sawEOF, s.err = true, io.EOF
		return 0, io.EOF
	}
	if room := s.max - s.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.n > s.max {
		s.over, s.err = true, errStreamCap
		return 0, s.err
	}
	if err == io.EOF {
		if n > 0 {
			s.pendingEOF = true
			return n, nil
		}
		s.sawEOF = true
	}
	s.err = err
	return n, err
}

// reader holds the state of one Extract or Scan.
type reader struct {
	lim      Limits
	root     *os.Root // nil for Scan
	src      *source
	st       *stream
	tr       *tar.Reader
	names    nameSet
	dirs     map[string]bool     // directories made under root
	subs     map[string]*os.Root // directories opened under root, so that each file is created with one call
	pool     *writePool          // writes small files beside the reading goroutine
	members  int
	total    int64
	files    []File
	manifest []byte
	haveMan  bool
	buf      []byte
}

// read does the work of Extract (root set) and Scan (root nil).
func read(r io.Reader, lim Limits, root *os.Root) (*Contents, error) {
	lim = lim.withDefaults()
	src := &source{r: r}
	sum := sha256.New()
	br := bufio.NewReader(io.TeeReader(src, sum))
	gz, err := gzip.NewReader(br)
	if err != nil {
		if src.err != nil {
			return nil, src.err
		}
		return nil, unsafeErr("not_gzip", "", "input is not gzip: %v", err)
	}
	gz.Multistream(false)
	x := &reader{
		lim:   lim,
		root:  root,
		src:   src,
		st:    &stream{r: gz, max: lim.streamCap()},
		names: nameSet{},
		dirs:  map[string]bool{},
		subs:  map[string]*os.Root{},
		buf:   make([]byte, 32<<10),
	}
	defer func() {
		for _, d := range x.subs {
			d.Close()
		}
	}()
	if root != nil {
		x.pool = newWritePool(runtime.GOMAXPROCS(0))
		defer x.pool.wait() // before the directories close; a no-op after the wait below
	}
	x.tr = tar.NewReader(x.st)
	for {
		hdr, err := x.tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return nil, x.readErr(err)
		}
		if err := x.member(hdr); err != nil {
			return nil, err
		}
	}
	if x.st.sawEOF {
		return nil, unsafeErr("truncated", "", "tar stream ends without its end-of-archive marker")
	}
	if err := x.trailer(); err != nil {
		return nil, err
	}
	switch _, err := br.ReadByte(); {
	case err == nil:
		return nil, unsafeErr("trailing_data", "", "data after the gzip stream")
	case src.err != nil:
		return nil, src.err
	case err != io.EOF:
		return nil, err
	}
	if !x.haveMan {
		return nil, unsafeErr("manifest_missing", ManifestName, "no regular file %s at the archive root", ManifestName)
	}
	if x.pool != nil {
		if err := x.pool.wait(); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(x.files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return &Contents{
		Files:         x.files,
		Manifest:      x.manifest,
		ArchiveSHA256: hex.EncodeToString(sum.Sum(nil)),
	}, nil
}

// readErr turns an error met while reading the archive into an I/O error
// of the caller's reader or a refusal.
func (x *reader) readErr(err error) error {
	var corrupt flate.CorruptInputError
	switch {
	case x.src.err != nil:
		return x.src.err
	case x.st.over:
		return unsafeErr("archive_too_large", "", "decompressed stream is larger than %d bytes", x.st.max)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return unsafeErr("truncated", "", "archive ends early: %v", err)
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader), errors.As(err, &corrupt):
		return unsafeErr("corrupt_gzip", "", "%v", err)
	default:
		return unsafeErr("corrupt_tar", "", "%v", err)
	}
}

// trailer reads what follows the end-of-archive marker: zeros only, up to
// the end of the gzip member.
func (x *reader) trailer() error {
	for {
		n, err := x.st.Read(x.buf)
		if slices.ContainsFunc(x.buf[:n], func(b byte) bool { return b != 0 }) {
			return unsafeErr("trailing_data", "", "non-zero data after the tar end-of-archive marker")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return x.readErr(err)
		}
	}
}

// typeRule names the rule a member's type breaks, or "" for a regular file
// or directory.
func typeRule(hdr *tar.Header) string {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeGNUSparse:
		return "sparse"
	default:
		return "unsupported_type"
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return "sparse"
		}
	}
	return ""
}

// member validates one header and, for a file, copies and hashes its data.
func (x *reader) member(hdr *tar.Header) error {
	x.members++
	if x.members > x.lim.MaxFiles {
		return unsafeErr("too_many_files", hdr.Name, "more than %d members", x.lim.MaxFiles)
	}
	if rule := typeRule(hdr); rule != "" {
		return unsafeErr(rule, hdr.Name, "member type %q is not allowed", hdr.Typeflag)
	}
	isDir := hdr.Typeflag == tar.TypeDir
	name, uerr := checkName(hdr.Name, isDir, x.lim.MaxNameBytes)
	if uerr != nil {
		return uerr
	}
	if uerr := checkReserved(name); uerr != nil {
		return uerr
	}
	if uerr := x.names.add(name, isDir); uerr != nil {
		return uerr
	}
	if isDir {
		if name == ManifestName {
			return unsafeErr("manifest_not_regular", name, "%s is a directory", ManifestName)
		}
		if hdr.Size != 0 {
			return unsafeErr("size_mismatch", name, "directory declares %d bytes of data", hdr.Size)
		}
		return x.mkdirAll(name)
	}
	switch {
	case hdr.Size > x.lim.MaxFileBytes:
		return unsafeErr("file_too_large", name, "file is %d bytes, limit %d", hdr.Size, x.lim.MaxFileBytes)
	case hdr.Size > x.lim.MaxTotalBytes-x.total:
		return unsafeErr("archive_too_large", name, "file data passes %d bytes", x.lim.MaxTotalBytes)
	case name == ManifestName && hdr.Size > x.lim.MaxManifestBytes:
		return unsafeErr("manifest_too_large", name, "manifest is %d bytes, limit %d", hdr.Size, x.lim.MaxManifestBytes)
	}
	x.total += hdr.Size
	mode := fs.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		mode = 0o755
	}
	f, err := x.copyFile(name, hdr.Size, mode)
	if err != nil {
		return err
	}
	x.files = append(x.files, f)
	return nil
}

// mkdirAll makes dir and its parents under the root, once.
func (x *reader) mkdirAll(dir string) error {
	if x.root == nil || dir == "." || x.dirs[dir] {
		return nil
	}
	if err := x.root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	x.dirs[dir] = true
	return nil
}

// dirRoot makes dir under the root if needed and returns it opened, once.
func (x *reader) dirRoot(dir string) (*os.Root, error) {
	if dir == "." {
		return x.root, nil
	}
	if d, ok := x.subs[dir]; ok {
		return d, nil
	}
	if err := x.mkdirAll(dir); err != nil {
		return nil, err
	}
	d, err := x.root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	x.subs[dir] = d
	return d, nil
}

// smallFile is the size up to which a file's bytes are read whole and
// handed to the write pool: file creation, not reading, bounds extraction.
const smallFile = 1 << 20

// copyFile copies the current member's data to name under the root (if
// any), hashing it, and returns its File. Small files are written by the
// pool; their write errors surface when the pool is waited for.
func (x *reader) copyFile(name string, size int64, mode fs.FileMode) (File, error) {
	isMan := name == ManifestName
	var man bytes.Buffer
	h := sha256.New()
	var out io.Writer
	var f *os.File
	var small *bytes.Buffer
	var dir *os.Root
	if x.root != nil {
		var err error
		if dir, err = x.dirRoot(path.Dir(name)); err != nil {
			return File{}, err
		}
		if size <= smallFile {
			small = bytes.NewBuffer(make([]byte, 0, size))
			out = small
		} else {
			if f, err = dir.OpenFile(path.Base(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode); err != nil {
				return File{}, err
			}
			defer f.Close()
			out = f
		}
	}
	n, err := x.copyData(out, h, &man, isMan, size)
	if err != nil {
		return File{}, err
	}
	if n != size {
		return File{}, unsafeErr("size_mismatch", name, "header declares %d bytes, data has %d", size, n)
	}
	switch {
	case small != nil:
		if err := x.pool.write(dir, path.Base(name), small.Bytes(), mode); err != nil {
			return File{}, err
		}
	case f != nil:
		if err := finishFile(f, mode); err != nil {
			return File{}, err
		}
	}
	if isMan {
		x.manifest, x.haveMan = man.Bytes(), true
	}
	return File{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Mode: mode}, nil
}

// finishFile sets f's mode exactly, whatever the umask, and closes it.
func finishFile(f *os.File, mode fs.FileMode) error {
	if err := f.Chmod(mode); err != nil {
		return err
	}
	return f.Close()
}

// writePool creates files on several goroutines: on a filesystem where
// creating an inode costs more than reading and hashing its bytes, two
// cores create twice as many.
type writePool struct {
	jobs chan writeJob
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
	done bool
}

type writeJob struct {
	dir  *os.Root
	name string
	data []byte
	mode fs.FileMode
}

func newWritePool(workers int) *writePool {
	p := &writePool{jobs: make(chan writeJob, 64)}
	for range workers {
		p.wg.Go(func() {
			for j := range p.jobs {
				if p.failed() != nil {
					continue
				}
				if err := writeNew(j); err != nil {
					p.mu.Lock()
					if p.err == nil {
						p.err = err
					}
					p.mu.Unlock()
				}
			}
		})
	}
	return p
}

func (p *writePool) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// write queues a file, or returns the error of one written before.
func (p *writePool) write(dir *os.Root, name string, data []byte, mode fs.FileMode) error {
	if err := p.failed(); err != nil {
		return err
	}
	p.jobs <- writeJob{dir, name, data, mode}
	return nil
}

// wait waits for every queued file and returns the first error; later
// calls return the same.
func (p *writePool) wait() error {
	p.mu.Lock()
	if !p.done {
		p.done = true
		p.mu.Unlock()
		close(p.jobs)
		p.wg.Wait()
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	return p.err
}

func writeNew(j writeJob) error {
	f, err := j.dir.OpenFile(j.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, j.mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(j.data); err != nil {
		f.Close()
		return err
	}
	return finishFile(f, j.mode)
}

// copyData reads the current member to its end, writing to out (if not
// nil), h, and man (if isMan). It never accepts more than size bytes.
func (x *reader) copyData(out io.Writer, h hash.Hash, man *bytes.Buffer, isMan bool, size int64) (int64, error) {
	var n int64
	for {
		k, rerr := x.tr.Read(x.buf)
		if k > 0 {
			n += int64(k)
			if n > size {
				return n, nil
			}
			h.Write(x.buf[:k])
			if isMan {
				man.Write(x.buf[:k])
			}
			if out != nil {
				if _, err := out.Write(x.buf[:k]); err != nil {
					return n, err
				}
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, x.readErr(rerr)
		}
	}
}
