package ledger

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/tidwall/gjson"
	"golang.org/x/mod/sumdb/tlog"
)

// The index X.idx beside a ledger X.jsonl maps keys (an event type, a
// submission_id, an event type and submission_id together for the few
// types in typedSubjectEvents, a value of an indexed metadata key, a path
// an entry's metadata.changed lists: Changed, and an entry id that does
// not name its own seq) to the seqs and byte offsets of the entries that
// carry them, so that Find by those keys costs what the matches cost (plus
// the entries appended after the index), not a scan of the ledger. Find by
// a subject and event types all in typedSubjectEvents (a work order's
// WO_* entries) reads those types' postings of the subject, not every
// entry of the subject (its thousands of LLM_* entries); any other query
// with a subject reads the subject's. An id this package made names its
// entry's seq (IDSeq): Find by id reads the posting of that seq (the
// postings are in seq order: a binary search), and the id's own key only
// for the entries whose id does not (imported, or written before ids
// named their seq). So an entry costs the index no posting for its id. It
// is a cache, rebuilt from the ledger, and never trusted over it:
//
//   - it says which entries it covers (their count, the ledger offset they
//     end at, the last one's leaf hash); a reader checks that leaf against
//     X.tlog and reads the entries after it from the ledger itself;
//   - every entry Find returns through it is read from the ledger at the
//     offset the index gives, parsed, re-hashed, and its leaf compared with
//     X.tlog at its seq: an index can make Find return nothing that is not
//     in the ledger, and nothing its query does not select. A posting that
//     fails the check sends Find back to a scan from the entry after the
//     last one checked;
//   - a missing, torn, garbled or stale index (one that covers more than
//     the ledger holds, or another history), one a writer was interrupted
//     writing (its dirty mark), or one written before the machine last
//     booted (its pages were never fsynced: a cache, it costs no fsync of
//     its own) is not used: a reader scans, the next writer rebuilds it.
//
// What is not guaranteed by a reader: that a well-formed index lists every
// entry it claims to cover. An index edited to omit a posting hides that
// entry from Find by its key. Verify rebuilds the index in memory and
// compares it with the file (INDEX_MISMATCH), so cp-ledger verify and
// cp-gate's G6 find such an edit; and whoever can edit X.idx can edit
// X.jsonl, which Verify catches the same way.
//
// Layout (little endian): a 128-byte header, then a table of 2^k bucket
// heads (8 bytes: a posting number + 1, 0 for none), then postings of 40
// bytes in seq order: key hash, seq, offset, the previous posting in the
// same bucket (+1), line length and a CRC-32 of those 36 bytes. Every
// entry has at least one posting (its event type's). A key's
// postings are its bucket's chain, newest first. The whole file is a pure
// function of the bucket count and the ledger's lines: Verify compares it
// byte for byte with a rebuild.

// IndexSuffix is the index's suffix beside a ledger: X.jsonl has X.idx.
const IndexSuffix = ".idx"

// IndexPath returns the path of the index of the ledger at path.
func IndexPath(path string) string { return strings.TrimSuffix(path, ".jsonl") + IndexSuffix }

// indexedMetadata are the metadata keys whose string values the index
// maps to entries (Query.Metadata; Query.OpID is op_id). Adding one here
// is all that issue 14's lookups (package_id, path) need: the list is part
// of the index's identity (idxKeyset), so every index built with another
// list is rebuilt by the next writer and not used until then.
// _work_order_id (the tier's stamp) finds a work order's entries in each
// session's ledger (cp-trace explain WO-...).
var indexedMetadata = []string{"op_id", "package_id", "path", "_work_order_id"}

// typedSubjectEvents are the event types whose entries the index also
// maps by (event type, submission_id) together: Find by a Subject and
// EventTypes all in this list reads the entries of those types only, not
// every entry of the subject. A work order's WO_* entries share its
// submission_id with every LLM_RESERVED and LLM_CALL the gateway writes
// for it, and workorder.State reads them on every governed call: through
// the subject's key alone it read, parsed and re-hashed the whole history
// (~75 ms a call at 5,000 LLM entries). Only rare types belong here: each
// costs its entries one more posting (the high-volume LLM_*, ROUTE_* and
// TOOL_* streams pay none). Like indexedMetadata, the list is part of the
// index's identity (idxKeyset): an index built with another list is
// rebuilt by the next writer and not used until then.
var typedSubjectEvents = []string{"WO_CREATED", "WO_APPROVED", "WO_REJECTED", "WO_STARTED", "WO_COMPLETED", "WO_CANCELLED", "WO_EXPIRED"}

const (
	// idxMagic is the format's version: 2 had CRC-32 (IEEE) checksums; 3
	// added the keys of entry ids and changed paths; 4 keys only the ids
	// that do not name their seq (IDSeq). An index of another version is
	// not used, and the next writer rebuilds it from the ledger.
	idxMagic       = "CPIDX4\n\x00"
	idxHeaderSize  = 128
	idxPostingSize = 40
	idxMinBuckets  = 256
	idxMaxBuckets  = 1 << 26
	// idxLoad is the most postings per bucket before a writer rebuilds
	// the index with more buckets (to at most four per bucket): a rare
	// key's lookup reads a few postings, the table a batch rewrites is
	// small beside the postings, and the index is rebuilt each time its
	// postings grow four- to eightfold (from its own postings, not the
	// ledger).
	idxLoad = 16
)

var idxKeyset = keysetOf(indexedMetadata, typedSubjectEvents)

// keysetOf is the identity of an index that keys the metadata keys meta
// and the (type, subject) pairs of the event types typed.
func keysetOf(meta, typed []string) uint64 {
	return keyHash("cp-ledger-index/3\x00id-unless-seq\x00" + ChangedKey + "\x00" + strings.Join(meta, "\x00") +
		"\x00typed-subject\x00" + strings.Join(typed, "\x00"))
}

// keyHash is 64-bit FNV-1a. A collision costs a lookup a longer chain,
// never a wrong answer: every posting is checked against its entry.
func keyHash(s string) uint64 { return fnvAdd(fnvOffset, s) }

const fnvOffset = 14695981039346656037

func fnvAdd(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// The keys are the hashes of "t\x00"+type, "s\x00"+subject,
// "ts\x00"+type+"\x00"+subject (typedSubjectEvents), "i\x00"+id,
// "c\x00"+path (a changed path) and "m\x00"+k+"\x00"+v, hashed without
// building those strings.
func eventKey(t string) uint64   { return fnvAdd(fnvAdd(fnvOffset, "t\x00"), t) }
func subjectKey(s string) uint64 { return fnvAdd(fnvAdd(fnvOffset, "s\x00"), s) }
func typedSubjectKey(t, s string) uint64 {
	return fnvAdd(fnvAdd(fnvAdd(fnvAdd(fnvOffset, "ts\x00"), t), "\x00"), s)
}
func idKey(id string) uint64     { return fnvAdd(fnvAdd(fnvOffset, "i\x00"), id) }
func changedKey(p string) uint64 { return fnvAdd(fnvAdd(fnvOffset, "c\x00"), p) }
func metaKey(k, v string) uint64 {
	return fnvAdd(fnvAdd(fnvAdd(fnvAdd(fnvOffset, "m\x00"), k), "\x00"), v)
}
func indexedKey(k string) bool { return slices.Contains(indexedMetadata, k) }

// typedSubject reports whether entries of event type t have a
// typed-subject key (typedSubjectEvents).
func typedSubject(t string) bool { return slices.Contains(typedSubjectEvents, t) }

// typedSubjectBytes is typedSubject of a line's bytes, without a string.
func typedSubjectBytes(t []byte) bool {
	for _, u := range typedSubjectEvents {
		if string(t) == u {
			return true
		}
	}
	return false
}

// IndexedKey reports whether the index finds entries by the metadata key
// k (indexedMetadata, and the paths under ChangedKey): what a Draft's
// Metadata must hold of its Canonical.
func IndexedKey(k string) bool       { return k == ChangedKey || indexedKey(k) }
func bucketOf(key uint64, b int) int { return int(key & uint64(b-1)) }
func postingAt(b int, i int64) int64 { return idxHeaderSize + int64(b)*8 + i*idxPostingSize }
func slotAt(slot int) int64          { return idxHeaderSize + int64(slot)*8 }
func validBuckets(b uint64) bool     { return b >= idxMinBuckets && b <= idxMaxBuckets && b&(b-1) == 0 }
func bucketsFor(postings int64) int64 {
	return min(idxMaxBuckets, max(idxMinBuckets, int64(1)<<bits.Len64(uint64(postings/4))))
}

// keysOf appends the key hashes of the entry at seq with these fields:
// its event type, subject, type and subject (typedSubjectEvents), id
// (unless it names seq: namesSeq), indexed metadata values, then the paths
// of its changed set (ch) in Changed.Paths's order.
func keysOf(dst []uint64, seq int64, id, eventType, subject string, meta func(k string) (string, bool), ch *Changed) []uint64 {
	dst = append(dst, eventKey(eventType))
	if subject != "" {
		dst = append(dst, subjectKey(subject))
		if typedSubject(eventType) {
			dst = append(dst, typedSubjectKey(eventType, subject))
		}
	}
	if id != "" && !namesSeq(id, seq) {
		dst = append(dst, idKey(id))
	}
	for _, k := range indexedMetadata {
		if v, ok := meta(k); ok && v != "" {
			dst = append(dst, metaKey(k, v))
		}
	}
	if ch != nil {
		for _, p := range ch.Paths() {
			dst = append(dst, changedKey(p))
		}
	}
	return dst
}

// lineKeys returns the key hashes of the ledger line at seq (its
// position), as keysOf does for the entry it holds. A canonical entry line
// is walked once (scan) and only its metadata object is searched; any
// other line through gjson (such a line does not parse, and Find skips it
// either way).
func lineKeys(dst []uint64, seq int64, line []byte) []uint64 {
	vals, ok := scan(line, false)
	if !ok {
		return slowLineKeys(dst, seq, line)
	}
	return valsKeys(dst, seq, line, &vals)
}

// valsKeys is lineKeys given the spans of the line's values.
func valsKeys(dst []uint64, seq int64, line []byte, vals *[nFields]span) []uint64 {
	et, ok1 := rawBytes(line[vals[fEventType].a:vals[fEventType].b])
	sub, ok2 := rawBytes(line[vals[fSubmission].a:vals[fSubmission].b])
	id, ok3 := rawBytes(line[vals[fID].a:vals[fID].b])
	if !ok1 || !ok2 || !ok3 {
		return slowLineKeys(dst, seq, line)
	}
	md := line[vals[fMetadata].a:vals[fMetadata].b]
	if hasIndexedKey(md) {
		// Rare enough to take the general path.
		return slowLineKeys(dst, seq, line)
	}
	// keysOf's keys, without building strings.
	dst = append(dst, fnvAddBytes(fnvAdd(fnvOffset, "t\x00"), et))
	if len(sub) > 0 {
		dst = append(dst, fnvAddBytes(fnvAdd(fnvOffset, "s\x00"), sub))
		if typedSubjectBytes(et) {
			dst = append(dst, fnvAddBytes(fnvAdd(fnvAddBytes(fnvAdd(fnvOffset, "ts\x00"), et), "\x00"), sub))
		}
	}
	if len(id) > 0 && !namesSeq(string(id), seq) {
		dst = append(dst, fnvAddBytes(fnvAdd(fnvOffset, "i\x00"), id))
	}
	return dst
}

// hasIndexedKey reports whether md holds one of the quoted indexed keys
// anywhere: one pass over its quotes.
func hasIndexedKey(md []byte) bool {
	for i := bytes.IndexByte(md, '"'); i >= 0; {
		rest := md[i:]
		for _, k := range metaQuoted {
			if bytes.HasPrefix(rest, k) {
				return true
			}
		}
		j := bytes.IndexByte(rest[1:], '"')
		if j < 0 {
			return false
		}
		i += j + 1
	}
	return false
}

func fnvAddBytes(h uint64, s []byte) uint64 {
	for _, c := range s {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// rawBytes returns the text of a JSON string without escapes.
func rawBytes(q []byte) ([]byte, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' || bytes.IndexByte(q, '\\') >= 0 {
		return nil, false
	}
	return q[1 : len(q)-1], true
}

// metaQuoted are the indexed keys as JSON strings: a metadata object
// without any of them is not searched.
var metaQuoted = func() [][]byte {
	var qs [][]byte
	for _, k := range append([]string{ChangedKey}, indexedMetadata...) {
		q, _ := json.Marshal(k)
		qs = append(qs, q)
	}
	return qs
}()

var metaPaths = func() []string {
	var ps []string
	for _, k := range indexedMetadata {
		ps = append(ps, gjsonEscape(k))
	}
	return ps
}()

func slowLineKeys(dst []uint64, seq int64, line []byte) []uint64 {
	r := gjson.GetManyBytes(line, "event_type", "submission_id", "metadata", "id")
	if !r[0].Exists() || !r[2].IsObject() {
		return keysOf(dst, seq, r[3].String(), r[0].String(), r[1].String(), func(string) (string, bool) { return "", false }, nil)
	}
	m := gjson.GetMany(r[2].Raw, append(metaPaths, ChangedKey)...)
	var ch *Changed
	if c := m[len(metaPaths)]; c.IsObject() {
		// Decoded as the entry's own metadata is (ParseLine), so the
		// writer's keys (from the entry) and a rebuild's (from the line)
		// are the same.
		var v any
		if json.Unmarshal([]byte(c.Raw), &v) == nil {
			if got, ok := changedOf(v); ok {
				ch = &got
			}
		}
	}
	return keysOf(dst, seq, r[3].String(), r[0].String(), r[1].String(), func(k string) (string, bool) {
		v := m[slices.Index(indexedMetadata, k)]
		return v.Str, v.Type == gjson.String
	}, ch)
}

func gjsonEscape(k string) string {
	var b strings.Builder
	for _, c := range k {
		if strings.ContainsRune(`.*?|#@\!=<>%`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// idxHeader is the index's first 128 bytes.
type idxHeader struct {
	keyset   uint64
	boot     [16]byte
	buckets  uint64
	postings uint64
	entries  uint64 // entries covered: seqs 0..entries-1
	dataEnd  uint64 // the ledger offset just past the last covered line
	leaf     tlog.Hash
	dirty    uint64 // a writer is changing the file
	gen      uint64 // bumped by every write
}

func (h *idxHeader) encode() []byte {
	b := make([]byte, idxHeaderSize)
	copy(b, idxMagic)
	le := binary.LittleEndian
	le.PutUint64(b[8:], h.keyset)
	copy(b[16:32], h.boot[:])
	le.PutUint64(b[32:], h.buckets)
	le.PutUint64(b[40:], h.postings)
	le.PutUint64(b[48:], h.entries)
	le.PutUint64(b[56:], h.dataEnd)
	copy(b[64:96], h.leaf[:])
	le.PutUint64(b[96:], h.dirty)
	le.PutUint64(b[104:], h.gen)
	le.PutUint32(b[124:], sum(b[:124]))
	return b
}

var errIndex = errors.New("index unusable")

// sum is the checksum of the index's header and postings: CRC-32 (IEEE),
// whose tables Go makes in microseconds on first use, where CRC-32C's
// (Castagnoli) took 0.15 ms of every appending process.
func sum(b []byte) uint32 { return crc32.ChecksumIEEE(b) }

// decodeHeader parses and checks an index header: its magic, checksum,
// key set and bucket count, and that it is clean.
func decodeHeader(b []byte) (idxHeader, error) {
	var h idxHeader
	le := binary.LittleEndian
	if len(b) < idxHeaderSize || string(b[:8]) != idxMagic || le.Uint32(b[124:]) != sum(b[:124]) {
		return h, errIndex
	}
	h.keyset = le.Uint64(b[8:])
	copy(h.boot[:], b[16:32])
	h.buckets = le.Uint64(b[32:])
	h.postings = le.Uint64(b[40:])
	h.entries = le.Uint64(b[48:])
	h.dataEnd = le.Uint64(b[56:])
	copy(h.leaf[:], b[64:96])
	h.dirty = le.Uint64(b[96:])
	h.gen = le.Uint64(b[104:])
	if h.keyset != idxKeyset || !validBuckets(h.buckets) || h.postings > 1<<40 || h.entries > 1<<40 ||
		h.dataEnd > 1<<56 || (h.entries == 0) != (h.dataEnd == 0) || h.dirty != 0 {
		return h, errIndex
	}
	return h, nil
}

// posting is one (key, entry) pair of the index.
type posting struct {
	key  uint64
	seq  int64
	off  int64
	prev uint64 // the bucket's previous posting + 1; 0 for none
	len  uint32 // the line's length without its newline
}

func (p *posting) put(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], p.key)
	le.PutUint64(b[8:], uint64(p.seq))
	le.PutUint64(b[16:], uint64(p.off))
	le.PutUint64(b[24:], p.prev)
	le.PutUint32(b[32:], p.len)
	le.PutUint32(b[36:], sum(b[:36]))
}

func decodePosting(b []byte) (posting, error) {
	le := binary.LittleEndian
	if len(b) < idxPostingSize || le.Uint32(b[36:]) != sum(b[:36]) {
		return posting{}, errIndex
	}
	p := posting{key: le.Uint64(b[0:]), seq: int64(le.Uint64(b[8:])), off: int64(le.Uint64(b[16:])), prev: le.Uint64(b[24:]), len: le.Uint32(b[32:])}
	if p.seq < 0 || p.off < 0 || p.len > MaxLine {
		return posting{}, errIndex
	}
	return p, nil
}

// bootID identifies this boot of the machine: an index stamped with
// another was written by a process whose unsynced pages a crash may have
// lost in part. Without one (not Linux) the index is neither written nor
// used.
var bootID = sync.OnceValue(func() (id [16]byte) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if s := strings.TrimSpace(string(b)); err == nil && len(s) >= 32 {
		sum := sha256.Sum256([]byte(s))
		copy(id[:], sum[:])
	}
	return id
})

func indexEnabled() bool { return bootID() != [16]byte{} }

// idxFile is an open index with its header, as a reader checked it.
type idxFile struct {
	f      *os.File
	h      idxHeader
	shared bool // f is the ledger's reader file (readIdx): close leaves it open
}

// close releases x's file unless the ledger keeps it.
func (x *idxFile) close() {
	if !x.shared {
		x.f.Close()
	}
}

// readIdx is a reader's index file, kept open from one Find to the next
// (a work-order step looks up a ledger several times): each use checks
// its header against the ledger's files again, as a fresh open would,
// and a file no longer linked (a writer put a rebuilt index in its place)
// is opened again by name. A file given up is closed with the ledger, as
// another goroutine's Find may still be reading it.
type readIdx struct {
	mu      sync.Mutex
	f       *os.File
	retired []*os.File
}

// openIndex opens the index of l for reading and checks it against the
// ledger's current files: nil when there is none fit to use. Release it
// with close.
func (l *Ledger) openIndex() *idxFile {
	if !indexEnabled() || l.sideErr != nil || l.noHashes {
		return nil
	}
	r := &l.rdIdx
	r.mu.Lock()
	defer r.mu.Unlock()
	for range 2 {
		if r.f == nil {
			f, err := regfile.OpenFile(IndexPath(l.path), os.O_RDONLY|regfile.NoFollow, 0)
			if err != nil {
				return nil
			}
			r.f = f
		}
		x := &idxFile{f: r.f, shared: true}
		ok, unlinked := l.checkIndexFile(x)
		if ok {
			return x
		}
		if !unlinked {
			return nil
		}
		r.retired = append(r.retired, r.f)
		r.f = nil
	}
	return nil
}

// closeReadIdx closes the reader's index files.
func (l *Ledger) closeReadIdx() error {
	r := &l.rdIdx
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, f := range append(r.retired, r.f) {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	r.f, r.retired = nil, nil
	return errors.Join(errs...)
}

// checkIndex reads x's header and reports whether it describes a clean
// index of this boot over a prefix of the ledger as it is now.
func (l *Ledger) checkIndex(x *idxFile) bool {
	ok, _ := l.checkIndexFile(x)
	return ok
}

// checkIndexFile is checkIndex, which also reports a file that no longer
// has a name (replaced by a rebuilt index: it will never be brought up to
// date again).
func (l *Ledger) checkIndexFile(x *idxFile) (ok, unlinked bool) {
	// The header first, then the size: a writer adding postings writes
	// them before the header that counts them.
	hb := make([]byte, idxHeaderSize)
	_, rerr := x.f.ReadAt(hb, 0)
	st, err := x.f.Stat()
	if err != nil {
		return false, false
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok && s.Nlink == 0 {
		return false, true
	}
	if rerr != nil {
		return false, false
	}
	h, err := decodeHeader(hb)
	if err != nil || h.boot != bootID() || st.Size() < postingAt(int(h.buckets), int64(h.postings)) {
		return false, false
	}
	dst, err := l.data.Stat()
	if err != nil || uint64(dst.Size()) < h.dataEnd {
		return false, false
	}
	if h.entries > 0 {
		var nl [1]byte
		if _, err := l.data.ReadAt(nl[:], int64(h.dataEnd)-1); err != nil || nl[0] != '\n' {
			return false, false
		}
		hs, err := l.hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(h.entries)-1)})
		if err != nil || hs[0] != h.leaf {
			return false, false
		}
	}
	x.h = h
	return true, false
}

// lookup returns the postings of key with seq >= from among the entries
// x covers, newest first; an error if the chain is not well formed.
func (x *idxFile) lookup(key uint64, from int64, out []posting) ([]posting, error) {
	err := x.walk(key, from, func(p posting) bool {
		out = append(out, p)
		return true
	})
	return out, err
}

// walk calls fn with each posting of key with seq >= from among the
// entries x covers, newest first, until fn returns false; an error if the
// chain is not well formed (as far as it was walked).
func (x *idxFile) walk(key uint64, from int64, fn func(posting) bool) error {
	b := int(x.h.buckets)
	bucket := bucketOf(key, b)
	var sb [8]byte
	if _, err := x.f.ReadAt(sb[:], slotAt(bucket)); err != nil {
		return errIndex
	}
	next := binary.LittleEndian.Uint64(sb[:])
	pb := make([]byte, idxPostingSize)
	lastSeq := int64(1<<63 - 1)
	for next != 0 {
		// A posting past the header's count is one a writer is adding
		// now: readable (postings are written before the heads that
		// name them), and dropped below by its seq.
		if _, err := x.f.ReadAt(pb, postingAt(b, int64(next-1))); err != nil {
			return errIndex
		}
		p, err := decodePosting(pb)
		if err != nil || bucketOf(p.key, b) != bucket || p.prev >= next || p.seq > lastSeq {
			return errIndex
		}
		lastSeq = p.seq
		if p.seq < from {
			break
		}
		if p.key == key && uint64(p.seq) < x.h.entries && !fn(p) {
			return nil
		}
		next = p.prev
	}
	return nil
}

// atSeq returns a posting of the entry at seq (among those x covers),
// found in the postings, which are in seq order: first in one read of a
// window where an even spread of postings over entries puts it (an entry
// has one to a few), then by a binary search of what is left; an error if
// there is none or they are not well formed.
func (x *idxFile) atSeq(seq int64) (posting, error) {
	const window = 64
	b := int(x.h.buckets)
	n := int64(x.h.postings)
	if n == 0 || x.h.entries == 0 {
		return posting{}, errIndex
	}
	pb := make([]byte, window*idxPostingSize)
	read := func(i int64) (posting, error) {
		if _, err := x.f.ReadAt(pb[:idxPostingSize], postingAt(b, i)); err != nil {
			return posting{}, errIndex
		}
		return decodePosting(pb)
	}
	// The first posting with a seq at least seq is in [lo, hi] (hi = n:
	// none).
	lo, hi := int64(0), n
	guess := int64(float64(seq) / float64(x.h.entries) * float64(n))
	start := max(0, min(guess-window/2, n-window))
	cnt := min(int64(window), n-start)
	w := pb[:cnt*idxPostingSize]
	if _, err := x.f.ReadAt(w, postingAt(b, start)); err != nil {
		return posting{}, errIndex
	}
	first, err1 := decodePosting(w)
	last, err2 := decodePosting(w[(cnt-1)*idxPostingSize:])
	switch {
	case err1 != nil || err2 != nil:
		return posting{}, errIndex
	case first.seq >= seq:
		hi = start
	case last.seq < seq:
		lo = start + cnt
	default:
		for i := int64(1); i < cnt; i++ {
			p, err := decodePosting(w[i*idxPostingSize:])
			if err != nil {
				return posting{}, errIndex
			}
			if p.seq >= seq {
				if p.seq != seq {
					return posting{}, errIndex
				}
				return p, nil
			}
		}
		return posting{}, errIndex // not in seq order
	}
	for lo < hi {
		mid := int64(uint64(lo+hi) >> 1)
		p, err := read(mid)
		if err != nil {
			return posting{}, err
		}
		if p.seq < seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == n {
		return posting{}, errIndex
	}
	p, err := read(lo)
	if err != nil || p.seq != seq {
		return posting{}, errIndex
	}
	return p, nil
}

// indexKeys returns the keys whose postings hold every entry q selects
// (any of them: the union), or nil when q names no indexed condition. For
// an id, its key's postings are the entries whose id does not name their
// seq; the entry at the seq it names is looked up too (findIndexed). A
// subject with event types all in typedSubjectEvents is the typed-subject
// key of each type; with any other types, or none, the subject's key.
func (q Query) indexKeys() []uint64 {
	switch {
	case q.ID != "":
		return []uint64{idKey(q.ID)}
	case q.Changed != "":
		return []uint64{changedKey(q.Changed)}
	case q.Subject != "" && len(q.EventTypes) > 0 && !slices.ContainsFunc(q.EventTypes, func(t string) bool { return !typedSubject(t) }):
		keys := make([]uint64, 0, len(q.EventTypes))
		for _, t := range q.EventTypes {
			if k := typedSubjectKey(t, q.Subject); !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		return keys
	case q.Subject != "":
		return []uint64{subjectKey(q.Subject)}
	case q.OpID != "":
		return []uint64{metaKey("op_id", q.OpID)}
	}
	for _, k := range slices.Sorted(mapKeys(q.Metadata)) {
		if indexedKey(k) {
			return []uint64{metaKey(k, q.Metadata[k])}
		}
	}
	if len(q.EventTypes) > 0 {
		keys := make([]uint64, 0, len(q.EventTypes))
		for _, t := range q.EventTypes {
			keys = append(keys, eventKey(t))
		}
		return keys
	}
	return nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// findIndexed is Find through the index. It reports false, having called
// fn for nothing, when there is no index fit to use.
func (l *Ledger) findIndexed(ctx context.Context, q Query, keys []uint64, fn func(*Entry) bool) (bool, error) {
	x := l.openIndex()
	if x == nil {
		return false, nil
	}
	defer x.close()
	var ps []posting
	for _, k := range keys {
		var err error
		if ps, err = x.lookup(k, q.From, ps); err != nil {
			return false, nil
		}
	}
	if seq, ok := IDSeq(q.ID); ok && q.ID != "" && seq >= q.From && uint64(seq) < x.h.entries {
		// The entry at the seq the id names (the index covers it, so it
		// holds a posting of it): checked like any other.
		p, err := x.atSeq(seq)
		if err != nil {
			return false, nil
		}
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b posting) int { return cmp.Compare(a.seq, b.seq) })
	ps = slices.CompactFunc(ps, func(a, b posting) bool { return a.seq == b.seq })
	var line []byte
	next := q.From // the seq after the last entry checked
	for i, p := range ps {
		if i&255 == 0 {
			if err := ctx.Err(); err != nil {
				return true, err
			}
		}
		e, ok := l.entryAt(p, x.h.dataEnd, &line)
		if !ok {
			// The index is wrong about this entry: what it has not yet
			// given is found by a scan, from the entry after the last
			// one it was right about (the posting's own seq is not to be
			// trusted: it may name a later entry than the line it points
			// at).
			return true, l.scan(ctx, q, next, fn)
		}
		next = p.seq + 1
		if q.selects(e) && !fn(e) {
			return true, nil
		}
	}
	return true, l.scanFrom(ctx, q, int64(x.h.dataEnd), int64(x.h.entries), fn)
}

// FindNewest implements NewestFinder. A query that names a subject, an
// event type or an indexed metadata value (one key) goes through the index
// when there is one fit to use: the entries appended after those it
// covers, then its postings of the key newest first, each entry read and
// checked as Find reads it, until one is selected. Otherwise, and where
// the index proves wrong, a scan.
func (l *Ledger) FindNewest(ctx context.Context, q Query) (*Entry, error) {
	keys := q.indexKeys()
	if len(keys) > 1 && q.Subject != "" {
		// Several typed-subject keys: the subject's one chain.
		keys = []uint64{subjectKey(q.Subject)}
	}
	if len(keys) == 1 && q.ID == "" {
		if e, done, err := l.newestIndexed(ctx, q, keys[0]); done || err != nil {
			return e, err
		}
	}
	var last *Entry
	err := l.scan(ctx, q, q.From, func(e *Entry) bool { last = e; return true })
	return last, err
}

// newestIndexed is FindNewest through the index; done is false when the
// index is not fit to answer (none, or wrong about an entry).
func (l *Ledger) newestIndexed(ctx context.Context, q Query, key uint64) (e *Entry, done bool, err error) {
	x := l.openIndex()
	if x == nil {
		return nil, false, nil
	}
	defer x.close()
	if err := l.scanFrom(ctx, q, int64(x.h.dataEnd), int64(x.h.entries), func(t *Entry) bool { e = t; return true }); err != nil || e != nil {
		return e, true, err
	}
	var line []byte
	wrong, n := false, 0
	werr := x.walk(key, q.From, func(p posting) bool {
		if n++; n&255 == 0 && ctx.Err() != nil {
			return false
		}
		t, ok := l.entryAt(p, x.h.dataEnd, &line)
		if !ok {
			wrong = true
			return false
		}
		if q.selects(t) {
			e = t
			return false
		}
		return true
	})
	if err := ctx.Err(); err != nil {
		return nil, true, err
	}
	if werr != nil || wrong {
		return nil, false, nil // a scan answers
	}
	return e, true, nil
}

// entryAt reads, parses and checks the entry posting p names: the line at
// its offset is entry p.seq and its leaf is the stored hash at that seq.
func (l *Ledger) entryAt(p posting, end uint64, buf *[]byte) (*Entry, bool) {
	l.entryReads.Add(1)
	if uint64(p.off)+uint64(p.len)+1 > end {
		return nil, false
	}
	// One read: the line, its newline, and the byte before it, which must
	// end the line before (a posting never points into a line).
	before := 0
	if p.off > 0 {
		before = 1
	}
	n := before + int(p.len) + 1
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	line := (*buf)[:n]
	if _, err := l.data.ReadAt(line, p.off-int64(before)); err != nil || line[n-1] != '\n' || (before == 1 && line[0] != '\n') {
		return nil, false
	}
	line = line[before : n-1]
	var leaf tlog.Hash
	var e *Entry
	if vals, canonical := scanEntry(line); canonical {
		// An entry in canonical form, checked and hashed as it is in one
		// pass (Verify's fast path), not re-encoded: its entry_hash must
		// be its content's.
		eh := vals[fEntryHash]
		leaf = leafHash(line[:eh.a-len(`"entry_hash":`)], line[eh.b+1:])
		var stated tlog.Hash
		if _, err := hex.Decode(stated[:], line[eh.a+1:eh.b-1]); err != nil || stated != leaf {
			return nil, false
		}
		var err error
		if e, err = entryOf(line, vals); err != nil || e.Seq != p.seq {
			return nil, false
		}
	} else {
		var err error
		if e, err = ParseLine(line); err != nil || e.Seq != p.seq {
			return nil, false
		}
		stored := e.EntryHash
		if _, leaf, err = encode(nil, e); err != nil || e.EntryHash != stored {
			return nil, false
		}
	}
	hs, err := l.hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, p.seq)})
	if err != nil || hs[0] != leaf {
		return nil, false
	}
	return e, true
}

// scan is Find by scanning the lines from seq from (at least q.From).
func (l *Ledger) scan(ctx context.Context, q Query, from int64, fn func(*Entry) bool) error {
	q.From = max(q.From, from)
	return l.Lines(ctx, q.From, -1, func(_ int64, line []byte) bool {
		if !q.match(line) {
			return true
		}
		e, err := ParseLine(line)
		return err != nil || !q.selects(e) || fn(e)
	})
}

// scanFrom scans the lines from byte offset off, whose first line is
// entry seq: the entries appended after those the index covers.
func (l *Ledger) scanFrom(ctx context.Context, q Query, off, seq int64, fn func(*Entry) bool) error {
	return l.linesAt(ctx, off, seq, func(s int64, line []byte) bool {
		if s < q.From || !q.match(line) {
			return true
		}
		e, err := ParseLine(line)
		return err != nil || !q.selects(e) || fn(e)
	})
}

// ---- the writer's side ----

// idxWriter is a writer's open index. table, when made, is the bucket
// table as of header gen (valid while the file's gen is still that), read
// a page at a time as batches touch it (loaded): a batch reads the pages
// of its buckets, not the whole table (64 MB at 5M entries).
type idxWriter struct {
	f      *os.File
	ino    uint64
	h      idxHeader
	table  []byte
	loaded []bool // by page of table
}

// tablePage is the unit in which the bucket table is read and written back.
const tablePage = 4096

// slotPage reads the table's page holding slot, if it is not read yet.
func (w *idxWriter) slotPage(slot int) error {
	pg := slot * 8 / tablePage
	if w.loaded[pg] {
		return nil
	}
	lo, hi := pg*tablePage, min((pg+1)*tablePage, len(w.table))
	if _, err := w.f.ReadAt(w.table[lo:hi], slotAt(0)+int64(lo)); err != nil {
		return err
	}
	w.loaded[pg] = true
	return nil
}

func fileID(fi os.FileInfo) uint64 {
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Ino)<<8 ^ uint64(s.Dev)
	}
	return 0
}

// updateIndex brings the index in step with the ledger after an append of
// entries (whose lines end at ends) to a ledger that held prevN entries
// ending at prevEnd. The index is a cache: failing to write it fails
// nothing (readers will not use it; the next writer rebuilds it).
func (l *Ledger) updateIndex(prevN, prevEnd int64, prevHead string, entries []Entry, ends []int64) {
	if !indexEnabled() {
		return
	}
	if err := l.updateIndexErr(prevN, prevEnd, prevHead, entries, ends); err != nil {
		l.idx = nil
		if l.idxF != nil {
			l.idxF.Close()
			l.idxF = nil
		}
	}
}

func (l *Ledger) updateIndexErr(prevN, prevEnd int64, prevHead string, entries []Entry, ends []int64) error {
	path := IndexPath(l.path)
	w := l.idx
	if w != nil {
		// Another writer may have rebuilt it under a new inode.
		if fi, err := os.Lstat(path); err != nil || fileID(fi) != w.ino {
			l.idx, w = nil, nil
			l.idxF.Close()
			l.idxF = nil
		}
	}
	var size int64
	if w == nil {
		f, err := regfile.OpenFile(path, os.O_RDWR|regfile.NoFollow, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return l.rebuildIndex()
		} else if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		l.idxF, size = f, fi.Size()
		w = &idxWriter{f: f, ino: fileID(fi)}
		l.idx = w
	} else {
		fi, err := w.f.Stat()
		if err != nil {
			return err
		}
		size = fi.Size()
	}
	hb := make([]byte, idxHeaderSize)
	if _, err := w.f.ReadAt(hb, 0); err != nil {
		return l.rebuildIndex()
	}
	h, err := decodeHeader(hb)
	if err != nil || h.boot != bootID() || int64(h.entries) > prevN || int64(h.dataEnd) > prevEnd ||
		size < postingAt(int(h.buckets), int64(h.postings)) {
		return l.rebuildIndex()
	}
	if h.gen != w.h.gen {
		w.table, w.loaded = nil, nil
	}
	if int64(h.entries) != prevN || hex.EncodeToString(h.leaf[:]) != prevHead {
		// Not the index of the ledger this writer holds, as it was before
		// this append: check it against the files (and so rebuild it
		// unless it is only behind).
		x := &idxFile{f: w.f}
		if !l.checkIndex(x) || x.h != h {
			return l.rebuildIndex()
		}
	}
	var ps []posting
	var keys []uint64
	if int64(h.entries) < prevN {
		// Behind (a writer stopped between the ledger and the index):
		// index the lines it misses from the ledger.
		off := int64(h.dataEnd)
		err := l.linesIn(context.Background(), off, int64(h.entries), prevEnd, func(seq int64, line []byte) bool {
			keys = lineKeys(keys[:0], seq, line)
			for _, k := range keys {
				ps = append(ps, posting{key: k, seq: seq, off: off, len: uint32(len(line))})
			}
			off += int64(len(line)) + 1
			return true
		})
		if err != nil || off != prevEnd {
			return l.rebuildIndex()
		}
	}
	off := prevEnd
	ps = slices.Grow(ps, 4*len(entries))
	for i := range entries {
		e := &entries[i]
		var ch *Changed
		if c, ok := ChangedOf(e.Metadata); ok {
			ch = &c
		}
		keys = keysOf(keys[:0], e.Seq, e.ID, e.EventType, e.SubmissionID, func(k string) (string, bool) {
			v, ok := e.Metadata[k].(string)
			return v, ok
		}, ch)
		for _, k := range keys {
			ps = append(ps, posting{key: k, seq: e.Seq, off: off, len: uint32(ends[i] - off - 1)})
		}
		off = ends[i]
	}
	total := int64(h.postings) + int64(len(ps))
	if total > idxLoad*int64(h.buckets) && int64(h.buckets) < idxMaxBuckets {
		return l.regrowIndex(w, h, ps, entries[len(entries)-1].Seq+1, off, entries[len(entries)-1].EntryHash)
	}
	w.h = h
	return w.add(ps, int64(entries[len(entries)-1].Seq)+1, off, entries[len(entries)-1].EntryHash)
}

// add appends postings to the index and links them into their buckets:
// the header marked dirty first, the postings, the bucket heads, then the
// header that covers them. A writer stopped in between leaves it dirty.
func (w *idxWriter) add(ps []posting, n, end int64, head string) error {
	h := w.h
	b := int(h.buckets)
	h.dirty, h.gen = 1, h.gen+1
	if _, err := w.f.WriteAt(h.encode(), 0); err != nil {
		return err
	}
	if w.table == nil && len(ps) > 32 {
		// A batch: the table in memory (kept while no other writer
		// changes the file), read and written back by the pages it
		// touched.
		w.table = make([]byte, b*8)
		w.loaded = make([]bool, (len(w.table)+tablePage-1)/tablePage)
	}
	pbuf := make([]byte, len(ps)*idxPostingSize)
	le := binary.LittleEndian
	if w.table != nil {
		const page = tablePage
		dirty := make([]bool, len(w.loaded))
		for i := range ps {
			slot := bucketOf(ps[i].key, b)
			if err := w.slotPage(slot); err != nil {
				w.table, w.loaded = nil, nil
				return err
			}
			ps[i].prev = le.Uint64(w.table[slot*8:])
			ps[i].put(pbuf[i*idxPostingSize:])
			le.PutUint64(w.table[slot*8:], h.postings+uint64(i)+1)
			dirty[slot*8/page] = true
		}
		if _, err := w.f.WriteAt(pbuf, postingAt(b, int64(h.postings))); err != nil {
			return err
		}
		for i := 0; i < len(dirty); {
			if !dirty[i] {
				i++
				continue
			}
			j := i
			for j < len(dirty) && dirty[j] {
				j++
			}
			lo, hi := i*page, min(j*page, len(w.table))
			if _, err := w.f.WriteAt(w.table[lo:hi], slotAt(0)+int64(lo)); err != nil {
				return err
			}
			i = j
		}
	} else {
		changed := map[int]uint64{}
		var sb [8]byte
		for i := range ps {
			slot := bucketOf(ps[i].key, b)
			prev, ok := changed[slot]
			if !ok {
				if _, err := w.f.ReadAt(sb[:], slotAt(slot)); err != nil {
					return err
				}
				prev = le.Uint64(sb[:])
			}
			ps[i].prev = prev
			ps[i].put(pbuf[i*idxPostingSize:])
			changed[slot] = h.postings + uint64(i) + 1
		}
		if _, err := w.f.WriteAt(pbuf, postingAt(b, int64(h.postings))); err != nil {
			return err
		}
		for slot, v := range changed {
			le.PutUint64(sb[:], v)
			if _, err := w.f.WriteAt(sb[:], slotAt(slot)); err != nil {
				return err
			}
		}
	}
	h.postings += uint64(len(ps))
	h.entries, h.dataEnd, h.dirty = uint64(n), uint64(end), 0
	if _, err := hex.Decode(h.leaf[:], []byte(head)); err != nil {
		return err
	}
	if _, err := w.f.WriteAt(h.encode(), 0); err != nil {
		return err
	}
	w.h = h
	return nil
}

// rebuildIndex builds the index of the whole ledger as it is (the caller
// holds the append lock) and puts it in place of X.idx atomically.
func (l *Ledger) rebuildIndex() error {
	l.idx = nil
	if l.idxF != nil {
		l.idxF.Close()
		l.idxF = nil
	}
	st, err := l.data.Stat()
	if err != nil {
		return err
	}
	b, h, err := buildIndex(context.Background(), l, st.Size(), 0)
	if err != nil {
		return err
	}
	return l.putIndex(b, h)
}

// putIndex puts the index image b (header h) in place of X.idx atomically
// and makes it the writer's.
func (l *Ledger) putIndex(b []byte, h idxHeader) error {
	l.idx = nil
	if l.idxF != nil {
		l.idxF.Close()
		l.idxF = nil
	}
	path := IndexPath(l.path)
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.idxF = f
	l.idx = &idxWriter{f: f, ino: fileID(fi), h: h}
	return nil
}

// buildIndex returns the bytes of the index of the complete lines in the
// first size bytes of l's ledger, with the given bucket count (0: chosen
// by the number of postings). It is deterministic: Verify compares a
// rebuild with the file.
func buildIndex(ctx context.Context, l *Ledger, size int64, buckets int64) ([]byte, idxHeader, error) {
	var ps []posting
	var keys []uint64
	var off, n int64
	var last []byte
	err := l.linesIn(ctx, 0, 0, size, func(seq int64, line []byte) bool {
		keys = lineKeys(keys[:0], seq, line)
		for _, k := range keys {
			ps = append(ps, posting{key: k, seq: seq, off: off, len: uint32(len(line))})
		}
		off += int64(len(line)) + 1
		n = seq + 1
		last = append(last[:0], line...)
		return true
	})
	if err != nil {
		return nil, idxHeader{}, err
	}
	head := ""
	if n > 0 {
		e, err := ParseLine(last)
		if err != nil {
			return nil, idxHeader{}, err
		}
		head = e.EntryHash
	}
	return indexImage(ps, buckets, n, off, head)
}

// indexImage lays out the index of postings (in seq order) over n entries
// ending at offset end, the last with entry_hash head.
func indexImage(ps []posting, buckets, n, end int64, head string) ([]byte, idxHeader, error) {
	if buckets == 0 {
		buckets = bucketsFor(int64(len(ps)))
	}
	img, err := newImage(int64(len(ps)), buckets, n, end, head)
	if err != nil {
		return nil, img.h, err
	}
	for i := range ps {
		img.link(&ps[i])
	}
	return img.out, img.h, nil
}

// image is an index laid out in memory: its header, its table of bucket
// heads and room for its postings, linked in seq order (link).
type image struct {
	out     []byte
	h       idxHeader
	table   []byte
	buckets int
	i       int64 // the postings linked so far
}

// newImage makes the image of an index of postings postings in buckets
// buckets over n entries ending at offset end, the last with entry_hash
// head, its header written, its postings still zero.
func newImage(postings, buckets, n, end int64, head string) (*image, error) {
	h := idxHeader{keyset: idxKeyset, boot: bootID(), buckets: uint64(buckets), postings: uint64(postings), entries: uint64(n), dataEnd: uint64(end)}
	if n > 0 {
		if _, err := hex.Decode(h.leaf[:], []byte(head)); err != nil {
			return &image{h: h}, err
		}
	}
	out := make([]byte, postingAt(int(buckets), postings))
	copy(out, h.encode())
	return &image{out: out, h: h, table: out[idxHeaderSize:postingAt(int(buckets), 0)], buckets: int(buckets)}, nil
}

// at is where the image's posting i lies.
func (m *image) at(i int64) []byte { return m.out[postingAt(m.buckets, i):] }

// link puts p as the next posting, at the head of its bucket's chain.
func (m *image) link(p *posting) {
	slot := bucketOf(p.key, m.buckets)
	p.prev = binary.LittleEndian.Uint64(m.table[slot*8:])
	p.put(m.at(m.i))
	binary.LittleEndian.PutUint64(m.table[slot*8:], uint64(m.i)+1)
	m.i++
}

// regrowIndex rebuilds the index with more buckets from its own postings
// and the new ones (ps), without reading the ledger; from the ledger if a
// posting does not decode. The old postings are read straight into their
// places in the new image (a posting's place moves by the table's growth
// only) and relinked there: one buffer the size of the new index, where
// a buffer of the old postings, their decoding and the image took three
// (in a stream into a fresh plane, regrowing HO3's index was 37% of its
// page faults).
func (l *Ledger) regrowIndex(w *idxWriter, h idxHeader, ps []posting, n, end int64, head string) error {
	old := int64(h.postings)
	img, err := newImage(old+int64(len(ps)), bucketsFor(old+int64(len(ps))), n, end, head)
	if err != nil {
		return err
	}
	if _, err := w.f.ReadAt(img.out[postingAt(img.buckets, 0):postingAt(img.buckets, old)], postingAt(int(h.buckets), 0)); err != nil {
		return l.rebuildIndex()
	}
	for i := range old {
		p, err := decodePosting(img.at(i))
		if err != nil {
			return l.rebuildIndex()
		}
		img.link(&p) // posting i, in its own place
	}
	for i := range ps {
		img.link(&ps[i])
	}
	return l.putIndex(img.out, img.h)
}

// compareIndex is Verify's check of the index, on its own: an index a
// reader would use must be exactly the rebuild of the entries it covers
// (INDEX_MISMATCH otherwise). One a reader would not use (missing, dirty,
// stale, of another boot) is no finding: it is never trusted. (Verify
// itself compares the keys its own pass over the lines collects.)
func (l *Ledger) compareIndex(ctx context.Context) []Issue {
	c := l.newIndexComparer()
	if c == nil {
		return nil
	}
	var keys []uint64
	err := l.linesIn(ctx, 0, 0, int64(c.h.dataEnd), func(seq int64, line []byte) bool {
		keys = lineKeys(keys[:0], seq, line)
		return c.line(seq, uint32(len(line)), keys)
	})
	if err != nil {
		c.close()
		return []Issue{{Seq: 0, Code: IndexMismatch, Message: "the index could not be compared with the ledger: " + err.Error()}}
	}
	return c.finish()
}

// indexComparer compares an index with the rebuild of the lines it covers,
// streamed: each line's postings (line) are compared with the file's in
// order, the bucket chains replayed in a table of heads compared with the
// file's (as read when the comparer was made) at the end (finish).
type indexComparer struct {
	x       *idxFile
	h       idxHeader
	path    string
	fileTab []byte
	table   []uint64
	r       *bufio.Reader
	pb      []byte
	i       uint64
	off, n  int64
	bad     int64
}

// newIndexComparer opens the index of l if it is fit to use (nil
// otherwise) and reads its table of heads. Called under the shared lock,
// it sees the index as of the same moment as the ledger.
func (l *Ledger) newIndexComparer() *indexComparer {
	x := l.openIndex()
	if x == nil {
		return nil
	}
	b := int(x.h.buckets)
	c := &indexComparer{x: x, h: x.h, path: IndexPath(l.path), table: make([]uint64, b), fileTab: make([]byte, b*8), bad: -1,
		r:  bufio.NewReaderSize(io.NewSectionReader(x.f, postingAt(b, 0), int64(x.h.postings)*idxPostingSize), 1<<20),
		pb: make([]byte, idxPostingSize)}
	if _, err := x.f.ReadAt(c.fileTab, slotAt(0)); err != nil {
		c.bad = 0
	}
	return c
}

func (c *indexComparer) close() { c.x.close() }

// line takes the next line's index keys; false once a difference is found
// or the lines the index covers are done.
func (c *indexComparer) line(seq int64, n uint32, keys []uint64) bool {
	if c.bad >= 0 || uint64(seq) >= c.h.entries {
		return false
	}
	b := int(c.h.buckets)
	for _, k := range keys {
		if _, err := io.ReadFull(c.r, c.pb); err != nil {
			c.bad = seq
			return false
		}
		p, err := decodePosting(c.pb)
		slot := bucketOf(k, b)
		if err != nil || p.key != k || p.seq != seq || p.off != c.off || p.len != n || p.prev != c.table[slot] {
			c.bad = seq
			return false
		}
		c.table[slot] = c.i + 1
		c.i++
	}
	c.off += int64(n) + 1
	c.n = seq + 1
	return true
}

// finish returns INDEX_MISMATCH if the index differs from the rebuild.
func (c *indexComparer) finish() []Issue {
	defer c.close()
	if c.bad < 0 && (c.i != c.h.postings || uint64(c.n) != c.h.entries || uint64(c.off) != c.h.dataEnd) {
		c.bad = c.n
	}
	if c.bad < 0 {
		for s, v := range c.table {
			if binary.LittleEndian.Uint64(c.fileTab[s*8:]) != v {
				c.bad = max(c.n-1, 0)
				break
			}
		}
	}
	if c.bad < 0 {
		return nil
	}
	return []Issue{{Seq: c.bad, Code: IndexMismatch, Message: fmt.Sprintf("the index %s differs from its rebuild from the ledger (first at seq %d): an edited or damaged index can hide entries from lookups by event type, subject, id, changed path or metadata; remove it and the next append rebuilds it", filepath.Base(c.path), c.bad)}}
}

// lineAt returns the byte offset of a line at or before entry seq and the
// seq of the entry there, for a read of the lines from seq: through the
// index when one fit to use covers an entry at or before it and its
// posting of that entry is right (entryAt: the line there is that entry,
// with its stored leaf), else the start of the file. Never a line after
// seq, nor one whose seq is not the one returned.
func (l *Ledger) lineAt(seq int64) (off, at int64) {
	if seq <= 0 {
		return 0, 0
	}
	x := l.openIndex()
	if x == nil {
		return 0, 0
	}
	defer x.close()
	if x.h.entries == 0 {
		return 0, 0
	}
	p, err := x.atSeq(min(seq, int64(x.h.entries)-1))
	if err != nil {
		return 0, 0
	}
	var buf []byte
	if _, ok := l.entryAt(p, x.h.dataEnd, &buf); !ok {
		return 0, 0
	}
	if p.seq < seq {
		// The last entry the index covers: the next line is after it.
		return p.off + int64(p.len) + 1, p.seq + 1
	}
	return p.off, p.seq
}
