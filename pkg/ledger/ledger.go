// Package ledger is Control Plane's append-only, tamper-evident ledger
// (DESIGN.md §5): its entries and their canonical encoding, the Merkle tree
// over them, inclusion and consistency proofs, C2SP checkpoints, and
// Verify.
//
// Where a ledger lives is behind Store (store.go), the interface its
// callers need: append a batch, read the state, read lines, read stored
// hashes, find entries, read and write the checkpoint. Proofs and Genesis
// are functions over a Store. The file store, *Ledger (Open, OpenWriter),
// is the embedded driver; a tier's ledger is opened through the plane's
// one opener (internal/plane.OpenLedger), which reads tier.json.
//
// The file store is a JSONL file X.jsonl of canonical-JSON entries, each
// chained to the previous one by previous_hash and forming the leaves of an
// RFC 6962 Merkle tree. Beside it live:
//
//	X.tlog        the tree's stored hashes (golang.org/x/mod/sumdb/tlog layout,
//	              32 bytes each), so the root and any proof cost O(log n) reads
//	X.checkpoint  the latest checkpoint, C2SP tlog-checkpoint text, optionally a
//	              signed note (Ed25519)
//	X.lock        the advisory lock that serializes appends across processes
//	X.idx         the index of entries by event type, submission_id and indexed
//	              metadata (op_id, package_id, path), so Find by them is not a
//	              scan: a cache, rebuilt from the ledger and never trusted over
//	              it (index.go says exactly what it does and does not promise)
//
// An append is acknowledged (Append returns) only after the new lines and
// hashes are fsynced. A crash can lose only unacknowledged entries: the next
// append truncates a partial last line (a torn tail) and brings X.tlog back in
// step with X.jsonl, and Verify reports such a tail until then. Readers never
// modify the files.
package ledger

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/lockfile"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/pkg/jcs"
	"golang.org/x/mod/sumdb/tlog"
)

// Options configure a Ledger. Zero values are sensible defaults.
type Options struct {
	// LockTimeout bounds the wait for another writer (default 10s).
	LockTimeout time.Duration
	// Actor is stamped on every appended entry.
	Actor string
	// AuthOff stamps metadata._auth "off" on every appended entry: it was
	// written without a verified token (DESIGN.md §8). The stamp goes into
	// a copy of the draft's metadata; the caller's map is never changed.
	AuthOff bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Checkpoint, when set, makes every append leave a checkpoint signed
	// by its key, and refuse to build on a stored one that the ledger
	// contradicts (see CheckpointKey).
	Checkpoint *CheckpointKey
}

// Ledger is the file store: an open ledger file with its side files. It
// implements Store. A Ledger is for one goroutine at a time: its state
// and its lock (one descriptor of X.lock, shared by all its calls) are
// not guarded, so an unlock by one call could release a lock another
// call took. Processes, and Ledgers opened on the same file, exclude each
// other through X.lock; goroutines of one process that append at once
// each open their own.
type Ledger struct {
	path     string
	opts     Options
	writable bool
	lockF    *os.File
	held     bool // Hold holds lockF exclusively: this store's own calls do not lock it again
	data     *os.File
	hashes   hashFile
	noHashes bool // a reader found no X.tlog
	// sideErr is a reader's refusal of X.tlog or X.lock (not a regular
	// file): Lines and Find go on without them, the rest fail with it.
	sideErr error

	// State as of the last sync under the exclusive lock; valid while the
	// on-disk sizes still equal dataSize and hashSize.
	synced   bool
	n        int64
	head     string
	dataSize int64
	hashSize int64
	repair   Repair
	// frontier[L] is the hash of the last complete level-L subtree when it
	// is a left child still waiting for its sibling (bit L of n is 1): all an
	// append needs to compute the new stored hashes, without reading X.tlog.
	frontier [64]tlog.Hash
	// ckptLast is the stored checkpoint this process last wrote or
	// accepted (Options.Checkpoint).
	ckptLast []byte
	// idx is a writer's open index (X.idx, index.go), idxF its file.
	idx  *idxWriter
	idxF *os.File
	// rdIdx is a reader's index file (Find), kept open (index.go).
	rdIdx readIdx
	// entryReads counts the entries read at an index's postings
	// (entryAt): what a lookup cost, for the tests.
	entryReads atomic.Int64
}

// Repair describes what an append had to mend before writing: a partial last
// line from a crashed writer, or stored hashes out of step with the entries.
type Repair struct {
	TornBytes     int64 `json:"torn_bytes,omitempty"`      // bytes of a partial last line removed
	TornOffset    int64 `json:"torn_offset,omitempty"`     // where they started
	RebuiltHashes int64 `json:"rebuilt_hashes,omitempty"`  // entries whose stored hashes were recomputed
	DroppedHashes int64 `json:"dropped_hashes,omitempty"`  // stored hashes beyond the last entry removed
	TornHashBytes int64 `json:"torn_hash_bytes,omitempty"` // bytes of a partial stored hash removed
	CompletedLine bool  `json:"completed_line,omitempty"`  // a whole last entry lacked only its newline
}

// Any reports whether anything was repaired.
func (r Repair) Any() bool { return r != Repair{} }

// SideFiles are the suffixes of the files the file store keeps beside a
// ledger X.jsonl: X.tlog (stored hashes), X.checkpoint (the latest
// checkpoint), X.lock (the append lock) and X.idx (the index, a cache
// rebuilt from the ledger: index.go).
var SideFiles = []string{".tlog", ".checkpoint", ".lock", IndexSuffix}

// SidePaths returns the paths of the stored hashes, checkpoint and lock of
// the ledger at path: X.jsonl has X.tlog, X.checkpoint and X.lock.
func SidePaths(path string) (hashes, checkpoint, lock string) {
	base := strings.TrimSuffix(path, ".jsonl")
	return base + ".tlog", base + ".checkpoint", base + ".lock"
}

// Open opens the file store of an existing ledger for reading. A missing
// ledger is an error satisfying errors.Is(err, fs.ErrNotExist). (A tier's
// ledger is opened by plane.OpenLedger; a ledger file named by its path,
// by OpenFileStore.)
func Open(path string, opts Options) (*Ledger, error) {
	return open(path, opts, false)
}

// OpenFileStore opens the ledger file at path as a Store for reading:
// for a ledger named by its file rather than by its tier (cp-ledger
// --ledger, G6's audit of the files of the canonical layout). A missing
// ledger is an error satisfying errors.Is(err, fs.ErrNotExist).
func OpenFileStore(path string) (Store, error) {
	l, err := Open(path, Options{})
	if err != nil {
		return nil, err // not a nil *Ledger in a non-nil Store
	}
	return l, nil
}

// OpenWriter opens the file store of the ledger at path for appending,
// creating it (and its directory) if needed.
func OpenWriter(path string, opts Options) (*Ledger, error) {
	return open(path, opts, true)
}

func open(path string, opts Options, writable bool) (*Ledger, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Ledger{path: path, opts: opts, writable: writable}
	hashPath, _, lockPath := SidePaths(path)
	flags := os.O_RDONLY
	if writable {
		flags = os.O_RDWR | os.O_CREATE
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
	}
	created := false
	if writable {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			created = true
		}
	}
	var err error
	if l.data, err = openData(path, flags); err != nil {
		return nil, err
	}
	if writable {
		if err := checkOneName(l.data); err != nil {
			l.data.Close()
			return nil, err
		}
	}
	// The side files are never followed through a symbolic link and must
	// be regular: a link planted in a writable directory would otherwise
	// aim the next append's writes at any file its writer may write.
	hf, err := regfile.OpenFile(hashPath, flags|regfile.NoFollow, 0o644)
	if errors.Is(err, fs.ErrNotExist) && !writable {
		// A ledger without stored hashes (copied without its side files):
		// readers treat it as having none; Verify reports TLOG_MISSING.
		hf, err = os.Open(os.DevNull)
		l.noHashes = true
	}
	if err != nil && !writable && isRefusal(err) {
		// A reader of lines needs neither the stored hashes nor the lock:
		// the refusal waits for what does (sideFiles), so that a FIFO
		// planted beside a ledger cannot stop its lines being read.
		l.sideErr = err
		hf, err = os.Open(os.DevNull)
		l.noHashes = true
	}
	if err != nil {
		l.data.Close()
		return nil, err
	}
	l.hashes.f = hf
	if writable {
		// A hard link planted as X.tlog is refused like a symbolic link:
		// the append would write stored hashes into the file behind it.
		if err := checkOneName(hf); err != nil {
			l.Close()
			return nil, err
		}
	}
	lf, err := lockfile.Open(lockPath)
	if err != nil && !writable && !isRefusal(err) {
		// A read-only directory: lock shared if we can; with no lock file
		// and none can be made, no writer can exist either.
		lf, err = regfile.OpenFile(lockPath, os.O_RDONLY|regfile.NoFollow, 0)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			lf, err = nil, nil
		}
	}
	if err != nil && !writable && isRefusal(err) {
		l.sideErr = cmp.Or(l.sideErr, err)
		lf, err = nil, nil
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	l.lockF = lf
	if writable {
		// The index is a cache, but a link or FIFO in its place is refused
		// like one beside X.tlog: the writer would write through it.
		if fi, err := os.Lstat(IndexPath(path)); err == nil && !fi.Mode().IsRegular() {
			l.Close()
			return nil, errorf(regfile.Code, "%s is not a regular file (%s): refused, never opened", IndexPath(path), kindOf(fi.Mode()))
		}
	}
	if created {
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// OpenFile opens the ledger file at path for reading its lines, refusing
// what Open refuses: a symbolic link (see openData) and anything that is
// not a regular file. Every reader of a ledger by path goes through it.
func OpenFile(path string) (*os.File, error) { return openData(path, os.O_RDONLY) }

// openData is the one place a ledger file is opened by path. A symbolic
// link as the ledger's own name is refused, never resolved: its side files
// are named after the path (X.tlog, X.lock beside X.jsonl), so two names of
// one ledger would take two locks and keep two trees, and writers through
// both lose acknowledged entries. Resolving the link instead would let
// whoever can write the directory point a privileged writer at any file
// named *.jsonl. Symbolic links in the directories above are followed.
// Anything but a regular file (a FIFO, /dev/zero) is refused without
// blocking (NOT_REGULAR).
func openData(path string, flags int) (*os.File, error) {
	f, err := regfile.OpenFile(path, flags|regfile.NoFollow, 0o644)
	var re *regfile.Error
	if errors.As(err, &re) && re.Mode&fs.ModeSymlink != 0 {
		return nil, errorf(regfile.Code, "ledger %s is a symbolic link: refused (name the ledger by its real path: its side files and lock are named after the path)", path)
	}
	return f, err
}

// checkOneName refuses to write a ledger file, or its stored hashes, that
// has another hard link: like a symbolic link, a second name takes a second
// lock and keeps a second tree, or aims the append's writes at a file
// outside the ledger.
func checkOneName(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok && s.Nlink > 1 {
		return errorf("LEDGER_LINKED", "%s has %d hard links: a ledger written under two names takes two locks and loses entries; copy it to a file of its own", f.Name(), s.Nlink)
	}
	return nil
}

func isRefusal(err error) bool {
	var re *regfile.Error
	return errors.As(err, &re)
}

// Path returns the ledger file's path.
func (l *Ledger) Path() string { return l.path }

// Close releases the ledger's files.
func (l *Ledger) Close() error {
	var errs []error
	for _, f := range []*os.File{l.data, l.hashes.f, l.lockF, l.idxF} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	errs = append(errs, l.closeReadIdx())
	return errors.Join(errs...)
}

// Append implements Store.Append: appends from any number of processes are
// serialized by X.lock, and Append returns only after the new lines and
// stored hashes are fsynced (and, with Options.Checkpoint, the new
// checkpoint published).
func (l *Ledger) Append(ctx context.Context, drafts []Draft) ([]Entry, error) {
	if len(drafts) == 0 {
		return nil, l.ready(ctx)
	}
	return l.append(ctx, drafts, drafts[0].EventType == "GENESIS")
}

// LastRepair returns what the most recent append had to repair.
func (l *Ledger) LastRepair() Repair { return l.repair }

func (l *Ledger) append(ctx context.Context, drafts []Draft, genesis bool) ([]Entry, error) {
	if !l.writable {
		return nil, errorf("INTERNAL", "ledger %s opened read-only", l.path)
	}
	if err := l.lock(ctx, true, l.opts.LockTimeout); err != nil {
		return nil, err
	}
	defer l.unlock()
	l.repair = Repair{}
	if err := l.sync(); err != nil {
		l.synced = false
		return nil, err
	}
	if genesis && l.n != 0 {
		return nil, errorf("LEDGER_NOT_EMPTY", "%s already holds %d entries; GENESIS opens an empty ledger", l.path, l.n)
	}
	var checkSig func() error
	if l.opts.Checkpoint != nil {
		var err error
		// An empty ledger has no checkpoint to keep: its first append
		// (a GENESIS, or the first entry of a worker's or a session's
		// ledger) makes the first one.
		if checkSig, err = l.checkStored(l.n, genesis || l.n == 0, l.rootAt); err != nil {
			return nil, err
		}
	}
	var buf []byte
	if len(drafts) >= spreadFrom {
		buf = getBuf(linesSize(drafts))
	} else {
		buf = make([]byte, 0, len(drafts)*384)
	}
	hbuf := make([]byte, 0, (2*len(drafts)+64)*tlog.HashSize)
	frontier := l.frontier
	buf, hbuf, entries, ends, encErr := build(buf, hbuf, &frontier, l.n, l.head, l.dataSize, drafts, l.opts)
	if len(entries) == 0 {
		return nil, encErr
	}
	prev := entries[len(entries)-1].EntryHash
	if err := l.writeDurably(buf, hbuf, l.n+int64(len(entries)), &frontier, checkSig); err != nil {
		l.synced = false
		return nil, err
	}
	prevN, prevEnd, prevHead := l.n, l.dataSize, l.head
	l.n += int64(len(entries))
	l.head = prev
	l.frontier = frontier
	l.dataSize += int64(len(buf))
	l.hashSize += int64(len(hbuf))
	// The entries are durable: now the index may name them.
	l.updateIndex(prevN, prevEnd, prevHead, entries, ends)
	putBuf(buf) // nothing returned holds its bytes
	return entries, encErr
}

// spare keeps the buffers large batches are encoded into from one append
// to the next (a batch's lines and, spread, each worker's run): a stream's
// group commits of megabytes would otherwise fault fresh pages in for each
// batch. Not a sync.Pool: a collection empties one, and a pipelined
// stream collects every few batches (and its Get hands back any buffer, a
// run's where the batch's is wanted: dropped, and a fresh one made). At
// most spareMax bytes are kept, the smallest buffers given up first.
var spare struct {
	sync.Mutex
	bufs  [][]byte
	bytes int
}

const spareMax = 16 << 20

// linesSize is about what the lines of drafts take: ~430 bytes an entry
// besides a canonical metadata's. Sized short (it was 384 an entry), a
// batch's buffer grew onto fresh pages batch after batch.
func linesSize(drafts []Draft) int {
	n := 0
	for i := range drafts {
		n += 512 + len(drafts[i].Canonical.Bytes())
	}
	return n
}

// getBuf returns an empty buffer of capacity n or more: the smallest kept
// that is large enough, or a new one.
func getBuf(n int) []byte {
	spare.Lock()
	best := -1
	for i, b := range spare.bufs {
		if cap(b) >= n && (best < 0 || cap(b) < cap(spare.bufs[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := spare.bufs[best]
		spare.bufs = slices.Delete(spare.bufs, best, best+1)
		spare.bytes -= cap(b)
		spare.Unlock()
		return b[:0]
	}
	spare.Unlock()
	return make([]byte, 0, n+n/8) // the next batch's may be a little longer
}

// putBuf gives b back for another batch, unless it is small (a single
// append's: not worth keeping) or huge (not worth pinning).
func putBuf(b []byte) {
	if cap(b) < 64<<10 || cap(b) > spareMax {
		return
	}
	spare.Lock()
	defer spare.Unlock()
	for spare.bytes+cap(b) > spareMax {
		small := 0
		for i, k := range spare.bufs {
			if cap(k) < cap(spare.bufs[small]) {
				small = i
			}
		}
		if cap(spare.bufs[small]) > cap(b) {
			return // b is the smallest: given up
		}
		spare.bytes -= cap(spare.bufs[small])
		spare.bufs = slices.Delete(spare.bufs, small, small+1)
	}
	spare.bufs = append(spare.bufs, b[:0])
	spare.bytes += cap(b)
}

// build encodes drafts as the entries after seq n-1 (whose entry_hash is
// head), with opts' actor, clock and auth stamp: their lines appended to
// buf, the stored hashes they add to hbuf (the frontier advanced), and each
// line's end offset counted from off. It is the one place entries are made,
// for every driver (Tree.Build). If a draft cannot be encoded, the entries
// before it are returned with the error.
//
// A large batch of large entries (spreadFrom, spreadLine) is encoded on
// every core after its first entry (buildSpread): only the chain (each
// previous_hash, and the hash of the bytes from it on) is made in order.
func build(buf, hbuf []byte, frontier *[64]tlog.Hash, n int64, head string, off int64, drafts []Draft, opts Options) ([]byte, []byte, []Entry, []int64, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ends := make([]int64, 0, len(drafts))
	entries := make([]Entry, len(drafts))
	for i, d := range drafts { // the clock read in order: timestamps never go back within a batch
		entries[i] = Entry{
			Seq: n + int64(i), Timestamp: stamp(opts.Now()),
			EventType: d.EventType, SubmissionID: d.SubmissionID, Decision: d.Decision, Reason: d.Reason,
			PromptsUsed: d.PromptsUsed, Metadata: d.Metadata, Actor: opts.Actor, canonical: d.Canonical,
		}
	}
	workers := spreadWorkers(len(drafts))
	start := len(buf)
	prev := head
	for i := range entries {
		if i == 1 && workers > 1 && len(buf)-start >= spreadLine {
			// Entries of this size are worth the handoff: the rest on
			// every core, chained to this first one.
			var es []Entry
			var err error
			buf, hbuf, es, ends, err = buildSpread(buf, hbuf, frontier, prev, off, entries[1:], ends, opts, workers)
			return buf, hbuf, entries[:1+len(es)], ends, err
		}
		e := &entries[i]
		if err := fill(e, opts); err != nil {
			return buf, hbuf, entries[:i], ends, err
		}
		e.PreviousHash = prev
		var leaf tlog.Hash
		var err error
		if buf, leaf, err = encode(buf, e); err != nil {
			return buf, hbuf, entries[:i], ends, err
		}
		hbuf = appendStoredHashes(hbuf, frontier, e.Seq, leaf)
		ends = append(ends, off+int64(len(buf)))
		prev = e.EntryHash
	}
	return buf, hbuf, entries, ends, nil
}

// fill sets what an entry takes besides its draft, its clock and its
// chain: the id, the empty prompt list, the auth stamp. It fails when the
// stamp must be added to a canonical form that does not decode: the map
// beside it may hold only part of the metadata (Draft.Canonical), and is
// never written in its place.
func fill(e *Entry, opts Options) error {
	e.ID = newID(e.Seq)
	if e.PromptsUsed == nil {
		e.PromptsUsed = []string{}
	}
	if opts.AuthOff {
		if v, ok := e.Metadata["_auth"].(string); !ok || v != "off" {
			if e.canonical.IsObject() {
				// The map may hold only what the ledger reads
				// (Draft.Canonical): the whole metadata is the canonical
				// form's, stamped below.
				m, ok := decodeObject(e.canonical)
				if !ok {
					return errorf("INTERNAL", "entry %d: its canonical metadata does not decode, so it cannot be stamped", e.Seq)
				}
				e.Metadata = m
			}
			e.canonical = jcs.Raw{} // stamped below: the map's bytes are no longer the draft's
		}
		e.Metadata = stampAuthOff(e.Metadata)
	}
	return nil
}

// decodeObject is the map a canonical object stands for.
func decodeObject(r jcs.Raw) (map[string]any, bool) {
	v, err := jcs.Decode(r.Bytes())
	m, ok := v.(map[string]any)
	return m, err == nil && ok
}

// spreadFrom is the batch size from which build encodes on every core: a
// goroutine costs more than encoding a few entries (a single append, the
// commonest, never starts one).
const spreadFrom = 64

// spreadLine is the length of a batch's first line from which the batch
// is encoded on every core: a short entry (cp-ledger append's ~300 bytes)
// encodes in about the time its handoff costs, and its batch stays on one
// goroutine, as before; a cp-route decision (~1 KB) is spread.
const spreadLine = 512

// spreadWorkers returns how many goroutines encode a batch of n entries.
func spreadWorkers(n int) int {
	if n < spreadFrom {
		return 1
	}
	return min(runtime.GOMAXPROCS(0), n/(spreadFrom/2), 8)
}

// buildSpread is build's large batch (entries made but for id, stamp and
// chain), encoded by workers goroutines, each over a run of entries into a
// buffer of its own: the lines with every previous_hash but the batch's
// first as 64 zeros, and each line's leaf hash state up to its
// previous_hash value (SHA-256 is written in order, so the bytes before the
// chain are hashed off the chain). Then, in order, each previous_hash is
// written in and the hash finished over the rest of the line (~200 bytes,
// whatever the metadata's size). The lines are the bytes encode makes: an
// entry's hash is always 64 hex digits, so a placeholder of that length
// moves nothing.
func buildSpread(buf, hbuf []byte, frontier *[64]tlog.Hash, head string, off int64, entries []Entry, ends []int64, opts Options, workers int) ([]byte, []byte, []Entry, []int64, error) {
	type encoded struct {
		start int // in its run's buffer
		at    lineAt
		h     hash.Hash // the leaf hash, written up to the previous_hash value
		err   error
	}
	const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
	enc := make([]encoded, len(entries))
	runs := make([][]byte, workers)
	chunk := (len(entries) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		from, to := min(w*chunk, len(entries)), min((w+1)*chunk, len(entries))
		wg.Go(func() {
			n := 0
			for i := from; i < to; i++ {
				n += 512 + len(entries[i].canonical.Bytes())
			}
			b := getBuf(n)
			for i := from; i < to; i++ {
				e, x := &entries[i], &enc[i]
				if x.err = fill(e, opts); x.err != nil {
					break // the batch ends before it
				}
				if i == 0 {
					e.PreviousHash = head // any string: hashed in order below
				} else {
					e.PreviousHash = zeros
				}
				x.start = len(b)
				if b, x.at, x.err = appendLine(b, e); x.err != nil {
					b = b[:x.start]
					break // the batch ends before it
				}
				line := b[x.start:]
				x.h = sha256.New()
				x.h.Write([]byte{0})
				x.h.Write(line[:x.at.hash-len(entryHashKey)])
				if i > 0 {
					x.h.Write(line[x.at.hash+entryHashTail : x.at.prev])
				}
			}
			runs[w] = b
		})
	}
	wg.Wait()
	total := 0
	for _, b := range runs {
		total += len(b)
	}
	buf = slices.Grow(buf, total)
	prev := head
	for i := range entries {
		e, x := &entries[i], &enc[i]
		if x.err != nil {
			return buf, hbuf, entries[:i], ends, x.err
		}
		run := runs[i/chunk]
		end := len(run)
		if i+1 < len(entries) && (i+1)/chunk == i/chunk {
			end = enc[i+1].start
		}
		line := run[x.start:end]
		from := x.at.hash + entryHashTail // the hash so far stops here (the batch's first line)...
		if i > 0 {
			copy(line[x.at.prev:x.at.prev+64], prev)
			e.PreviousHash = prev
			from = x.at.prev // ... or here
		}
		x.h.Write(line[from : len(line)-1])
		var leaf tlog.Hash
		x.h.Sum(leaf[:0])
		setEntryHash(line, x.at, e, leaf)
		buf = append(buf, line...)
		hbuf = appendStoredHashes(hbuf, frontier, e.Seq, leaf)
		ends = append(ends, off+int64(len(buf)))
		prev = e.EntryHash
	}
	for _, b := range runs {
		putBuf(b) // copied into buf
	}
	return buf, hbuf, entries, ends, nil
}

// writeDurably writes the new lines and stored hashes at the ends of their
// files and fsyncs both (in parallel: recovery handles any order of loss).
// With a checkpoint key, the checkpoint of the new tree (size n, frontier
// f) is signed at the same time (and, when it cannot be written in place,
// fsynced to a temporary file), and made X.checkpoint only after the
// entries are durable: a checkpoint never claims an entry that is not.
// checkSig, the stored checkpoint's signature check, runs meanwhile too;
// if it fails, the entries are removed again and nothing is published.
func (l *Ledger) writeDurably(lines, hashes []byte, n int64, f *[64]tlog.Hash, checkSig func() error) error {
	if _, err := l.data.WriteAt(lines, l.dataSize); err != nil {
		return errorf("IO_ERROR", "writing %s: %v", l.path, err)
	}
	if _, err := l.hashes.f.WriteAt(hashes, l.hashSize); err != nil {
		return errorf("IO_ERROR", "writing %s: %v", l.hashes.f.Name(), err)
	}
	var wg sync.WaitGroup
	var cerr, serr error
	var ckpt []byte
	var staged bool
	var derr error
	// The data's fsync on a goroutine of its own, the signatures on this
	// one: they take less time than the fsync, and a third goroutine would
	// cost a thread. This way round the new goroutine only waits in a
	// syscall on its first 2 KiB of stack, and the signatures' deep calls
	// run on this goroutine's stack, already grown: on the other they
	// grew a fresh stack twice, and each fresh stack page is a fault.
	wg.Go(func() { derr = l.data.Sync() })
	if checkSig != nil {
		serr = checkSig()
	}
	if l.opts.Checkpoint != nil && serr == nil {
		ckpt, staged, cerr = l.stageCheckpoint(n, frontierRoot(f, n))
	}
	herr := l.hashes.f.Sync()
	wg.Wait()
	if err := errors.Join(derr, herr); err != nil {
		return errorf("IO_ERROR", "fsync %s: %v", l.path, err)
	}
	if serr != nil {
		if err := l.unappend(); err != nil {
			return errorf("IO_ERROR", "%v; and removing the entries not acknowledged: %v", serr, err)
		}
		return serr
	}
	if cerr != nil {
		return errorf("IO_ERROR", "writing the checkpoint of %s: %v", l.path, cerr)
	}
	if ckpt != nil {
		return l.publishCheckpoint(ckpt, staged)
	}
	return nil
}

// rootAt returns the root of the first size entries, for a writer synced
// under the lock: from the frontier at the current size, else O(log n)
// stored hashes.
func (l *Ledger) rootAt(size int64) (tlog.Hash, error) {
	if size == l.n {
		return frontierRoot(&l.frontier, l.n), nil
	}
	return tlog.TreeHash(size, &l.hashes)
}

// sync brings the in-memory head in step with the files, repairing a torn
// tail, under the exclusive lock. It is cheap when no other process wrote
// since our last append.
func (l *Ledger) sync() error {
	dst, err := l.data.Stat()
	if err != nil {
		return err
	}
	// A ledger file with no name left was moved to another store
	// (cp-ledger migrate unlinks it under this lock) while this writer
	// waited: what it would write here no reader would ever see.
	if s, ok := dst.Sys().(*syscall.Stat_t); ok && s.Nlink == 0 {
		return errorf("LEDGER_MOVED", "%s was moved to another store (cp-ledger migrate) or removed while this writer waited: nothing written; run again (tier.json names where the ledger is now)", l.path)
	}
	hst, err := l.hashes.f.Stat()
	if err != nil {
		return err
	}
	if l.synced && dst.Size() == l.dataSize && hst.Size() == l.hashSize {
		return nil
	}
	t, err := readTail(l.data, dst.Size(), hst.Size())
	if err != nil {
		return err
	}
	if t.tornBytes > 0 && t.hashTree > t.n {
		// The stored hashes already hold the entry after the last newline:
		// if those bytes are that very entry, only its newline is missing.
		// Complete the line rather than drop an entry that may have been
		// acknowledged.
		completed, err := l.completeLine(t)
		if err != nil {
			return err
		}
		if completed {
			if dst, err = l.data.Stat(); err != nil {
				return err
			}
			if t, err = readTail(l.data, dst.Size(), hst.Size()); err != nil {
				return err
			}
		}
	}
	if t.tornBytes > 0 {
		if err := l.data.Truncate(t.dataEnd); err != nil {
			return err
		}
		if err := l.data.Sync(); err != nil {
			return err
		}
		l.repair.TornBytes, l.repair.TornOffset = t.tornBytes, t.dataEnd
	}
	want := tlog.StoredHashCount(min(t.hashTree, t.n)) * tlog.HashSize
	if partial := hst.Size() % tlog.HashSize; partial != 0 {
		l.repair.TornHashBytes = partial
	}
	if hst.Size() != want {
		if t.hashTree > t.n {
			l.repair.DroppedHashes = t.hashTree - t.n
		}
		if err := l.hashes.f.Truncate(want); err != nil {
			return err
		}
	}
	hashSize := want
	if t.hashTree < t.n {
		// The entries were written but their stored hashes were not:
		// recompute them from the lines themselves.
		lines, err := tailLines(l.data, t.dataEnd, int(t.n-t.hashTree))
		if err != nil {
			return err
		}
		l.hashes.base = hashSize / tlog.HashSize
		l.hashes.pending = nil
		var hbuf []byte
		for i, line := range lines {
			seq := t.hashTree + int64(i)
			leaf, err := checkedLeaf(line, seq)
			if err != nil {
				return err
			}
			hs, err := tlog.StoredHashesForRecordHash(seq, leaf, &l.hashes)
			if err != nil {
				return err
			}
			l.hashes.pending = append(l.hashes.pending, hs...)
			for _, h := range hs {
				hbuf = append(hbuf, h[:]...)
			}
		}
		l.hashes.pending = nil
		if _, err := l.hashes.f.WriteAt(hbuf, hashSize); err != nil {
			return err
		}
		hashSize += int64(len(hbuf))
		l.repair.RebuiltHashes = t.n - t.hashTree
	}
	if hst.Size() != hashSize {
		if err := l.hashes.f.Sync(); err != nil {
			return err
		}
	}
	if t.n > 0 {
		// The new entries chain to the last one: re-hash it rather than
		// trust its entry_hash, and check the tree agrees.
		lines, err := tailLines(l.data, t.dataEnd, 1)
		if err != nil {
			return err
		}
		leaf, err := checkedLeaf(lines[0], t.n-1)
		if err != nil {
			return err
		}
		hs, err := l.hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, t.n-1)})
		if err != nil {
			return err
		}
		if hs[0] != leaf {
			return errorf("LEDGER_INVALID", "%s: stored leaf hash of seq %d differs from its entry_hash; refusing to append (run cp-ledger verify)", l.path, t.n-1)
		}
	}
	if err := l.loadFrontier(t.n); err != nil {
		return err
	}
	l.n, l.head, l.dataSize, l.hashSize, l.synced = t.n, t.head, t.dataEnd, hashSize, true
	return nil
}

// loadFrontier reads the left siblings an append of leaf n will need
// (readFrontier).
func (l *Ledger) loadFrontier(n int64) error { return readFrontier(&l.hashes, n, &l.frontier) }

// appendStoredHashes appends the stored hashes that leaf n adds to the tree
// (the leaf, then every node it completes, in tlog.StoredHashIndex order) and
// updates the frontier. It is tlog.StoredHashesForRecordHash without reads.
func appendStoredHashes(dst []byte, frontier *[64]tlog.Hash, n int64, leaf tlog.Hash) []byte {
	dst = append(dst, leaf[:]...)
	h := leaf
	level := 0
	for ; n>>level&1 == 1; level++ {
		h = tlog.NodeHash(frontier[level], h)
		dst = append(dst, h[:]...)
	}
	frontier[level] = h
	return dst
}

// completeLine appends the missing newline when the bytes after the last
// one are exactly the entry whose leaf the stored hashes hold at seq t.n.
func (l *Ledger) completeLine(t tail) (bool, error) {
	frag := make([]byte, t.tornBytes)
	if _, err := l.data.ReadAt(frag, t.dataEnd); err != nil {
		return false, err
	}
	leaf, err := checkedLeaf(frag, t.n)
	if err != nil {
		return false, nil // not a whole entry: a torn write
	}
	hs, err := l.hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, t.n)})
	if err != nil || hs[0] != leaf {
		return false, nil
	}
	if _, err := l.data.WriteAt([]byte{'\n'}, t.dataEnd+t.tornBytes); err != nil {
		return false, err
	}
	if err := l.data.Sync(); err != nil {
		return false, err
	}
	l.repair.CompletedLine = true
	return true, nil
}

// checkedLeaf parses a line and returns its leaf hash, refusing a line whose
// seq or entry_hash is not what it must be.
func checkedLeaf(line []byte, seq int64) (tlog.Hash, error) {
	leaf, _, _, err := checkedLeafVals(line, seq)
	return leaf, err
}

// checkedLeafVals is checkedLeaf, which also returns the spans of the
// line's values when it is in canonical form (canonical).
func checkedLeafVals(line []byte, seq int64) (leaf tlog.Hash, vals [nFields]span, canonical bool, err error) {
	if vals, ok := scanEntry(line); ok {
		// A canonical line (as every append writes) is hashed as it is,
		// in one pass, as Verify's fast path does: its entry_hash must
		// be its content's, spelled as encode spells it.
		eh := vals[fEntryHash]
		leaf := leafHash(line[:eh.a-len(`"entry_hash":`)], line[eh.b+1:])
		if got, ok := seqOf(line, vals); !ok || got != seq {
			return tlog.Hash{}, vals, false, errorf("LEDGER_INVALID", "entry at position %d has seq %s (run cp-ledger verify)", seq, line[vals[fSeq].a:vals[fSeq].b])
		}
		var want [2 * tlog.HashSize]byte
		hex.Encode(want[:], leaf[:])
		if string(line[eh.a+1:eh.b-1]) != string(want[:]) {
			return tlog.Hash{}, vals, false, errorf("LEDGER_INVALID", "entry %d: entry_hash does not match its content (run cp-ledger verify)", seq)
		}
		return leaf, vals, true, nil
	}
	leaf, err = parsedLeaf(line, seq)
	return leaf, vals, false, err
}

// parsedLeaf is checkedLeaf for any line: parsed, then re-encoded.
func parsedLeaf(line []byte, seq int64) (tlog.Hash, error) {
	e, err := ParseLine(line)
	if err != nil {
		return tlog.Hash{}, errorf("LEDGER_INVALID", "entry %d unreadable: %v (run cp-ledger verify)", seq, err)
	}
	if e.Seq != seq {
		return tlog.Hash{}, errorf("LEDGER_INVALID", "entry at position %d has seq %d (run cp-ledger verify)", seq, e.Seq)
	}
	stored := e.EntryHash
	_, leaf, err := encode(nil, e)
	if err != nil || e.EntryHash != stored {
		return tlog.Hash{}, errorf("LEDGER_INVALID", "entry %d: entry_hash does not match its content (run cp-ledger verify)", seq)
	}
	return leaf, nil
}

// tail is what the end of a ledger's files says about its state.
type tail struct {
	n         int64  // entries: the last complete line's seq + 1
	head      string // the last complete line's entry_hash
	dataEnd   int64  // offset just past the last complete line
	tornBytes int64  // bytes after dataEnd (a partial line)
	hashTree  int64  // the tree size the stored hashes cover
}

// readTail inspects the last complete line and the stored-hash count.
func readTail(data *os.File, dataSize, hashBytes int64) (tail, error) {
	t := tail{hashTree: treeSizeForHashes(hashBytes / tlog.HashSize)}
	lines, end, err := lastLines(data, dataSize, 1)
	if err != nil {
		return t, err
	}
	t.dataEnd = end
	t.tornBytes = dataSize - end
	if len(lines) == 0 {
		return t, nil
	}
	seq, head, err := lastEntryOf(lines[0])
	if err != nil {
		return t, errorf("LEDGER_INVALID", "%s: last entry unreadable: %v (run cp-ledger verify)", data.Name(), err)
	}
	t.n, t.head = seq+1, head
	return t, nil
}

// lastEntryOf returns what a tail needs of a ledger line: its seq and
// entry_hash, as ParseLine reads them. A line in canonical form (as
// every append writes it) gives them from their spans, without decoding
// the rest (a State or a writer's sync reads the last line each time,
// and metadata can be most of it); any other line is parsed whole, so
// that what it refuses is refused as before (FuzzParseLine holds the two
// to one answer).
func lastEntryOf(line []byte) (int64, string, error) {
	if vals, ok := scanEntry(line); ok {
		eh := line[vals[fEntryHash].a+1 : vals[fEntryHash].b-1]
		if seq, ok := seqOf(line, vals); ok && bytes.IndexByte(eh, '\\') < 0 {
			return seq, string(eh), nil
		}
	}
	e, err := ParseLine(line)
	if err != nil {
		return 0, "", err
	}
	return e.Seq, e.EntryHash, nil
}

// seqOf reads the seq of a line scanEntry accepted (at most 18 digits,
// no sign: it always fits).
func seqOf(line []byte, vals [nFields]span) (int64, bool) {
	n, err := strconv.ParseInt(string(line[vals[fSeq].a:vals[fSeq].b]), 10, 64)
	return n, err == nil
}

// tailLines returns the last k complete lines ending at end.
func tailLines(f *os.File, end int64, k int) ([][]byte, error) {
	lines, _, err := lastLines(f, end, k)
	if err != nil {
		return nil, err
	}
	if len(lines) != k {
		return nil, errorf("LEDGER_INVALID", "%s: expected %d lines before offset %d, found %d", f.Name(), k, end, len(lines))
	}
	return lines, nil
}

// lastLines reads backwards from size and returns up to k complete
// ("\n"-terminated) lines, oldest first, without their newlines, and the
// offset just past the last complete line. Bytes after it are a torn tail.
//
// No line is longer than MaxLine, and a torn tail is part of one line (an
// append writes whole lines, each ending in its newline): so it never
// reads more than MaxLine+1 bytes back for the last newline, nor more
// than MaxLine+1 bytes a line for the k lines before it. Past that the
// file is not a ledger's (LEDGER_INVALID): a tail made huge at no cost
// (a sparse extension of the file) must not be read back whole, by every
// reader's State. The chunks read are joined once, at the end.
func lastLines(f *os.File, size int64, k int) ([][]byte, int64, error) {
	chunk := int64(4 << 10) // grows: most tails are one short line
	var chunks [][]byte     // the file's bytes from off to end, newest first
	off := size
	end := int64(-1)
	newlines := 0 // in the file's bytes from off to end
	for {
		if end >= 0 && (newlines > k || off == 0) {
			break
		}
		if off == 0 {
			break
		}
		if end < 0 && size-off > MaxLine+1 {
			return nil, 0, errorf("LEDGER_INVALID", "%s: no newline in its last %d bytes: longer than any line, not the tail of an append (run cp-ledger verify)", f.Name(), size-off)
		}
		if end >= 0 && end-off > int64(k)*(MaxLine+1) {
			return nil, 0, errorf("LEDGER_INVALID", "%s: fewer than %d newlines in the %d bytes before its last line's end: a line longer than any entry (run cp-ledger verify)", f.Name(), k, end-off)
		}
		n := min(chunk, off)
		chunk = min(chunk*4, 1<<20)
		off -= n
		more := make([]byte, n)
		if _, err := f.ReadAt(more, off); err != nil && err != io.EOF {
			return nil, 0, err
		}
		if end < 0 {
			// The torn tail is not kept: only the bytes up to the last
			// newline are returned.
			if i := bytes.LastIndexByte(more, '\n'); i >= 0 {
				end = off + int64(i) + 1
				newlines = bytes.Count(more[:i+1], []byte{'\n'})
				chunks = append(chunks, more[:i+1])
			} else if off == 0 {
				return nil, 0, nil // no complete line at all
			}
		} else {
			newlines += bytes.Count(more, []byte{'\n'})
			chunks = append(chunks, more)
		}
	}
	if end < 0 {
		return nil, 0, nil
	}
	buf := make([]byte, 0, end-off)
	for i := len(chunks) - 1; i >= 0; i-- {
		buf = append(buf, chunks[i]...)
	}
	region := buf[:end-off]
	region = region[:len(region)-1] // drop the final newline
	parts := bytes.Split(region, []byte{'\n'})
	if off > 0 {
		parts = parts[1:] // the first part is a fragment of an earlier line
	}
	if len(parts) > k {
		parts = parts[len(parts)-k:]
	}
	return parts, end, nil
}

// MaxLine bounds one ledger line: readers refuse a longer one rather than
// hold it in memory (a file of a single endless line must not exhaust the
// machine). Entries are far smaller.
const MaxLine = 64 << 20

// Lines implements Store.Lines over the complete ("\n"-terminated) lines
// of X.jsonl, whether or not X.tlog covers them yet; a partial last line
// (TornBytes) is not one. A line longer than MaxLine is LEDGER_INVALID.
//
// The lines from seq from on are found through the index when it holds
// a right posting of an entry at or before from (lineAt): a read of the
// lines appended since an entry costs those lines, not the whole file.
func (l *Ledger) Lines(ctx context.Context, from, to int64, fn func(seq int64, line []byte) bool) error {
	off, seq := l.lineAt(from)
	return l.linesAt(ctx, off, seq, func(seq int64, line []byte) bool {
		if to >= 0 && seq >= to {
			return false
		}
		return seq < from || fn(seq, line)
	})
}

// linesAt calls fn with each complete line from byte offset off to the
// end of X.jsonl, the first being entry seq, until fn returns false.
func (l *Ledger) linesAt(ctx context.Context, off, seq int64, fn func(seq int64, line []byte) bool) error {
	st, err := l.data.Stat()
	if err != nil {
		return err
	}
	return l.linesIn(ctx, off, seq, st.Size(), fn)
}

// linesIn is linesAt up to byte offset end.
func (l *Ledger) linesIn(ctx context.Context, off, seq, end int64, fn func(seq int64, line []byte) bool) error {
	// A buffer no larger than the bytes to read: a short tail (Find's
	// entries after those its index covers) must not cost a 1 MiB
	// allocation that a one-shot process pays in page faults.
	size := int(min(max(end-off, 4096), 1<<20))
	br := bufio.NewReaderSize(io.NewSectionReader(l.data, off, max(end-off, 0)), size)
	for ; ; seq++ {
		if seq&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			line, err = readLong(br, line)
		}
		if errors.Is(err, io.EOF) {
			return nil // no line, or a partial one
		}
		if err != nil {
			return err
		}
		if !fn(seq, line[:len(line)-1]) {
			return nil
		}
	}
}

// readLong reads the rest of a line longer than the reader's buffer, up to
// MaxLine.
func readLong(br *bufio.Reader, first []byte) ([]byte, error) {
	buf := append([]byte(nil), first...)
	for {
		more, err := br.ReadSlice('\n')
		buf = append(buf, more...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return buf, err
		}
		if len(buf) > MaxLine {
			return nil, errorf("LEDGER_INVALID", "a line longer than %d bytes: not a ledger line (run cp-ledger verify)", MaxLine)
		}
	}
}

// TornBytes returns the length of the bytes after the last complete line
// of X.jsonl: an append that did not finish (the next one removes them).
func (l *Ledger) TornBytes() (int64, error) {
	st, err := l.data.Stat()
	if err != nil {
		return 0, err
	}
	_, end, err := lastLines(l.data, st.Size(), 1)
	return st.Size() - end, err
}

// Find implements Store.Find. A query that names an event type, a
// subject (with WO_* event types, the two together: typedSubjectEvents)
// or an indexed metadata value goes through the index (X.idx, index.go)
// when there is one fit to use: the matches it lists, each read
// from the ledger and checked against X.tlog, then the entries after those
// it covers. Otherwise, a scan of the lines from q.From: a line is parsed
// only when the fields q names, read cheaply, match. Either way the
// answer is the scan's.
func (l *Ledger) Find(ctx context.Context, q Query, fn func(*Entry) bool) error {
	if keys := q.indexKeys(); keys != nil {
		if done, err := l.findIndexed(ctx, q, keys, fn); done || err != nil {
			return err
		}
	}
	return l.scan(ctx, q, q.From, fn)
}

// ReadHashes implements Store.ReadHashes from X.tlog.
func (l *Ledger) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if l.sideErr != nil {
		return nil, l.sideErr
	}
	return l.hashes.ReadHashes(indexes)
}

// stampAuthOff returns meta with _auth "off" (DESIGN.md §8): a copy, the
// caller's map never changed, or meta itself when it already says so (a
// writer that knows its auth is off stamps its own metadata, and spares
// the copy of a large map per entry).
func stampAuthOff(meta map[string]any) map[string]any {
	if v, ok := meta["_auth"].(string); ok && v == "off" {
		return meta
	}
	m := maps.Clone(meta)
	if m == nil {
		m = make(map[string]any, 1)
	}
	m["_auth"] = "off"
	return m
}

// kindOf names a file mode's type for a message.
func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m.IsDir():
		return "a directory"
	}
	return "a special file"
}
