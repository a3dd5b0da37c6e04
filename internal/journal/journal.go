// Package journal applies a set of file changes under a plane root so that a
// crash at any instant leaves the plane wholly before or wholly after the
// change set (DESIGN.md §6, "atomic apply").
//
// # On-disk format
//
// While an Apply is in flight the journal lives at <root>/_journal/, beside
// the governed roots and never under one:
//
//	_journal/meta.json  the caller's description of the change (Options.Meta),
//	                    written first by rename, so whole or absent; handed back
//	                    to Recover's finish function
//	_journal/new/<n>    the new bytes of change n (a write, or a file moved in
//	                    from Change.Src), with its final mode, fsynced
//	_journal/old/<n>    the bytes the target of change n had before, when it
//	                    existed: a hard link to the target (a copy where links
//	                    fail), fsynced
//	_journal/plan.json  the plan, written to plan.json.tmp, fsynced and renamed:
//	                    it is never seen half written
//
// plan.json is a JSON object:
//
//	{"version": 1, "changes": [
//	  {"n": 0, "path": "frameworks/a.md", "op": "write", "mode": "0444",
//	   "existed": true, "old_mode": "0644", "old_sha256": "<hex>", "new_sha256": "<hex>"},
//	  {"n": 1, "path": "specs/old.json", "op": "remove", "existed": false}
//	]}
//
// n indexes new/ and old/; paths are slash-separated, clean and relative to
// the root; old_* are present only when existed, new_sha256 and mode only for
// writes. A reader refuses any other version.
//
// Apply writes meta.json, new/, then old/, then plan.json, then renames each
// new/<n> over its target (creating parent directories) or removes the
// target, fsyncs every directory it touched, calls Options.Committed, and
// retires the journal: _journal is renamed to _journal.done-<random> (root
// fsynced) and that is removed.
//
// # Recovery rule
//
// The durable rename of plan.json is the commit point. Recover, given a root:
//
//   - no _journal: nothing was in flight; stray _journal.done-* directories
//     (a retired journal whose removal was cut short) are deleted.
//   - _journal without plan.json: Apply stopped before committing and no
//     target was touched; finish is called and the journal deleted
//     (RolledBack).
//   - plan.json unparsable or invalid: an *Error with code JOURNAL_CORRUPT;
//     nothing is touched (fail closed).
//   - plan.json valid: Recover rolls forward (RolledForward). Each write whose
//     target does not already hold new_sha256 is re-done from new/<n>, whose
//     hash is checked first; each remove is re-done; then every target is
//     verified by SHA-256 (and mode) against the plan. A crash after the plan
//     is durable therefore always ends wholly after.
//   - Only if rolling forward is impossible (a new/<n> is missing or altered
//     while its target does not hold the new bytes) does Recover roll back from
//     old/<n> (RolledBack), each old file's hash checked first; if neither
//     direction can be completed nothing is touched and the error is
//     JOURNAL_CORRUPT. Directories created for new files are left in place.
//
// Recover then calls its finish function with what it did and the journal's
// meta.json (so the caller can record the outcome), and retires the journal
// only if finish succeeds. Every step of Recover is idempotent, so a crash
// during Recover followed by another Recover still ends wholly before or
// wholly after; finish may therefore be called more than once for one
// journal and must be idempotent too.
//
// Callers serialize mutations of a root (the plane's lock); Apply refuses to
// start while a journal exists (JOURNAL_PENDING), so callers run Recover first,
// as every mutating command does.
package journal

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/control-plane/cp/internal/atomicfile"
)

// Dir is the journal directory's name under the root.
const Dir = "_journal"

const (
	newDir    = Dir + "/new"
	oldDir    = Dir + "/old"
	planFile  = Dir + "/plan.json"
	planTmp   = Dir + "/plan.json.tmp"
	metaFile  = Dir + "/meta.json"
	metaTmp   = Dir + "/meta.json.tmp"
	donePref  = Dir + ".done-"
	opWrite   = "write"
	opRemove  = "remove"
	planVer   = 1
	dirPerm   = 0o755
	journPerm = 0o700
)

// Change is one file to write or remove at Path, a slash path relative to
// the root. A write takes its bytes from Data (non-nil; empty for an empty
// file) or moves in the regular file at Src (a slash path relative to the
// root, so on the same filesystem: the caller's staged copy, which Apply
// consumes) and gets Mode (permission bits, e.g. 0444). A removal sets
// Remove.
type Change struct {
	Path   string
	Data   []byte
	Src    string
	Mode   fs.FileMode
	Remove bool
}

// Options configure Apply.
type Options struct {
	// Meta is kept in the journal as meta.json and handed back to Recover's
	// finish function, so that whoever recovers can tell what the change was
	// (cp-install records its outcome in the ledger from it). Nil: none.
	Meta []byte
	// Committed, if set, is called once every change is durable in place,
	// before the journal is retired. If it fails, the journal stays (so the
	// next Recover calls its finish function) and Apply returns the error.
	Committed func() error
}

// Outcome reports what Recover did.
type Outcome struct {
	Found         bool   `json:"found"`          // a journal was present
	RolledForward bool   `json:"rolled_forward"` // the committed changes were finished
	RolledBack    bool   `json:"rolled_back"`    // the changes were undone (or had not begun)
	Paths         int    `json:"paths"`          // paths in the plan (0 when there was none)
	Meta          []byte `json:"-"`              // the journal's meta.json; nil if it had none
}

// Error is a journal failure that callers act on. Its Code is one of
// INVALID_INPUT (a bad change set), JOURNAL_PENDING (a journal must be
// recovered first) or JOURNAL_CORRUPT (a journal that can be neither
// finished nor undone; nothing was touched).
type Error struct {
	code string
	Path string // the offending path, if any
	msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "journal: " + e.msg
	}
	return "journal: " + e.Path + ": " + e.msg
}

// Code returns the stable error code.
func (e *Error) Code() string { return e.code }

func invalid(p, format string, args ...any) *Error {
	return &Error{code: "INVALID_INPUT", Path: p, msg: fmt.Sprintf(format, args...)}
}

func corrupt(p, format string, args ...any) *Error {
	return &Error{code: "JOURNAL_CORRUPT", Path: p, msg: fmt.Sprintf(format, args...)}
}

// crashAt, set by tests, is asked at every step boundary; true makes Apply or
// Recover stop there as if the process had died (no cleanup runs).
var crashAt func(step string) bool

var errCrash = errors.New("journal: simulated crash")

func crash(step string) error {
	if crashAt != nil && crashAt(step) {
		return errCrash
	}
	return nil
}

type plan struct {
	Version int     `json:"version"`
	Changes []entry `json:"changes"`
}

type entry struct {
	N         int    `json:"n"`
	Path      string `json:"path"`
	Op        string `json:"op"`
	Mode      string `json:"mode,omitempty"`
	Existed   bool   `json:"existed"`
	OldMode   string `json:"old_mode,omitempty"`
	OldSHA256 string `json:"old_sha256,omitempty"`
	NewSHA256 string `json:"new_sha256,omitempty"`
}

func (e entry) newName() string { return newDir + "/" + strconv.Itoa(e.N) }
func (e entry) oldName() string { return oldDir + "/" + strconv.Itoa(e.N) }

// Apply makes all changes under root atomically with respect to crashes:
// after a crash at any instant, Recover(root) leaves every path either wholly
// as before Apply or wholly as after. Apply returns only when the changes are
// durable and the journal is gone.
//
// Targets must be regular files or absent; removing an absent path is a no-op.
// An error before the commit point removes the journal and leaves the root as
// it was; an error after it leaves the journal for Recover, which finishes it.
func Apply(root string, changes []Change, opts Options) (err error) {
	if len(changes) == 0 {
		return nil
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := checkChanges(r, changes); err != nil {
		return err
	}
	if _, err := r.Lstat(Dir); err == nil {
		return &Error{code: "JOURNAL_PENDING", msg: "an interrupted apply must be recovered first"}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := r.Mkdir(Dir, journPerm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &Error{code: "JOURNAL_PENDING", msg: "another apply is in progress"}
		}
		return err
	}
	// The journal's own name must survive a power cut once a target moves.
	if err := atomicfile.SyncIn(r, "."); err != nil {
		r.RemoveAll(Dir)
		return err
	}
	committed := false
	defer func() {
		if err != nil && !committed && !errors.Is(err, errCrash) {
			r.RemoveAll(Dir) // nothing was touched: undo
		}
	}()
	if err := crash("begin"); err != nil {
		return err
	}
	if opts.Meta != nil {
		if err := writeSynced(r, metaTmp, opts.Meta, 0o600); err != nil {
			return err
		}
		if err := r.Rename(metaTmp, metaFile); err != nil {
			return err
		}
	}
	p, err := prepare(r, changes)
	if err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := writeSynced(r, planTmp, b, 0o600); err != nil {
		return err
	}
	if err := crash("plan-tmp"); err != nil {
		return err
	}
	if err := r.Rename(planTmp, planFile); err != nil {
		return err
	}
	if err := atomicfile.SyncIn(r, Dir); err != nil {
		return err
	}
	committed = true
	if err := crash("plan"); err != nil {
		return err
	}
	if err := forward(r, p, "apply"); err != nil {
		return err
	}
	if opts.Committed != nil {
		if err := opts.Committed(); err != nil {
			return err
		}
	}
	return retire(r, "")
}

// Recover finishes (if the journal was committed) or undoes (if not) an
// interrupted Apply; it is a no-op when there is no journal. When there was
// one, it calls finish (if not nil) with what it did and the journal's Meta
// before retiring the journal; an error from finish leaves the journal for
// the next Recover. It reports what it did. See the package documentation
// for the rule.
func Recover(root string, finish func(Outcome) error) (Outcome, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return Outcome{}, err
	}
	defer r.Close()
	if _, err := r.Lstat(Dir); errors.Is(err, fs.ErrNotExist) {
		return Outcome{}, removeRetired(r)
	} else if err != nil {
		return Outcome{}, err
	}
	out := Outcome{Found: true}
	if m, err := r.ReadFile(metaFile); err == nil {
		out.Meta = m
	} else if !errors.Is(err, fs.ErrNotExist) {
		return out, err
	}
	done := func() error {
		if finish != nil {
			if err := finish(out); err != nil {
				return err
			}
		}
		return retire(r, "recover:")
	}
	b, err := r.ReadFile(planFile)
	if errors.Is(err, fs.ErrNotExist) {
		out.RolledBack = true
		return out, done()
	} else if err != nil {
		return out, err
	}
	p, err := parsePlan(b)
	if err != nil {
		return out, err
	}
	out.Paths = len(p.Changes)
	fwd, back := true, true
	for _, e := range p.Changes {
		t, err := inspect(r, e.Path)
		if err != nil {
			return out, err
		}
		if !t.canForward(r, e) {
			fwd = false
		}
		if back && !t.canBack(r, e) {
			back = false
		}
	}
	switch {
	case fwd:
		if err := forward(r, p, "recover"); err != nil {
			return out, err
		}
		out.RolledForward = true
	case back:
		if err := backward(r, p); err != nil {
			return out, err
		}
		out.RolledBack = true
	default:
		return out, corrupt(Dir, "the plan can be neither finished nor undone: new and old copies are missing or altered")
	}
	return out, done()
}

// Pending says whether root holds a journal, without touching it: nil when
// there is none; JOURNAL_CORRUPT when its plan does not parse (Recover would
// refuse it); else JOURNAL_PENDING, an interrupted change that the next
// cp-install recover (or mutating command) finishes or undoes. The gates
// report either as a finding: the plane is mid-change.
func Pending(root string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := r.Lstat(Dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if fi, err := r.Lstat(planFile); err == nil && !fi.Mode().IsRegular() {
		return corrupt(planFile, "not a regular file") // never opened: a FIFO would block
	}
	if b, err := r.ReadFile(planFile); err == nil {
		if _, err := parsePlan(b); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return corrupt(planFile, "unreadable: %v", err)
	}
	return &Error{code: "JOURNAL_PENDING", Path: Dir, msg: "an interrupted change is pending; cp-install recover finishes or undoes it"}
}

// checkChanges refuses a change set that could fail half way: bad or
// duplicate paths, a path under another, targets that are not regular files,
// parents that are not directories.
func checkChanges(r *os.Root, changes []Change) error {
	seen := make(map[string]bool, len(changes))
	for _, c := range changes {
		if err := checkPath(c.Path); err != nil {
			return err
		}
		if seen[c.Path] {
			return invalid(c.Path, "duplicate path")
		}
		seen[c.Path] = true
		kinds := 0
		for _, set := range []bool{c.Remove, c.Data != nil, c.Src != ""} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds != 1:
			return invalid(c.Path, "a change either writes Data, moves in Src or removes: exactly one (empty Data, not nil, for an empty file)")
		case !c.Remove && (c.Mode == 0 || c.Mode&^fs.ModePerm != 0):
			return invalid(c.Path, "mode %v: want permission bits only, not zero", c.Mode)
		}
		if c.Src != "" {
			if err := checkPath(c.Src); err != nil {
				return err
			}
			fi, err := r.Lstat(c.Src)
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return invalid(c.Src, "source is a %v, not a regular file", fi.Mode().Type())
			}
		}
	}
	// What each parent directory is, looked up once however many changes
	// share it.
	const (
		isDir = iota + 1
		absent
		notDir
	)
	parentOf := map[string]int{}
	for _, c := range changes {
		for d := path.Dir(c.Path); d != "."; d = path.Dir(d) {
			if seen[d] {
				return invalid(c.Path, "under %s, which is also changed", d)
			}
		}
		parents := true
		for d := path.Dir(c.Path); d != "."; d = path.Dir(d) {
			state, ok := parentOf[d]
			if !ok {
				fi, err := r.Stat(d)
				switch {
				case errors.Is(err, fs.ErrNotExist):
					state = absent
				case err != nil:
					return err
				case fi.IsDir():
					state = isDir
				default:
					state = notDir
				}
				parentOf[d] = state
			}
			switch state {
			case absent:
				parents = false
			case notDir:
				return invalid(c.Path, "parent %s is not a directory", d)
			}
		}
		if !parents {
			continue // the target is absent
		}
		fi, err := r.Lstat(c.Path)
		if err == nil && !fi.Mode().IsRegular() {
			return invalid(c.Path, "target is a %v, not a regular file", fi.Mode().Type())
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func checkPath(p string) error {
	if !fs.ValidPath(p) || p == "." || strings.Contains(p, `\`) {
		return invalid(p, "not a clean relative slash path inside the root")
	}
	first, _, _ := strings.Cut(p, "/")
	if first == Dir || strings.HasPrefix(first, donePref) {
		return invalid(p, "inside the journal")
	}
	return nil
}

// prepare writes new/ and old/ and returns the plan.
func prepare(r *os.Root, changes []Change) (*plan, error) {
	for _, d := range []string{newDir, oldDir} {
		if err := r.Mkdir(d, journPerm); err != nil {
			return nil, err
		}
	}
	p := &plan{Version: planVer, Changes: make([]entry, len(changes))}
	var written []int
	for i, c := range changes {
		e := entry{N: i, Path: c.Path, Op: opRemove}
		if !c.Remove {
			e.Op, e.Mode = opWrite, fmtMode(c.Mode)
			written = append(written, i)
		}
		p.Changes[i] = e
	}
	// New bytes land in new/ on every core: written from Data, or moved in
	// from Src and hashed from the bytes the journal now holds; each fsynced.
	err := parallel(len(written), func(k int) error {
		e, c := &p.Changes[written[k]], changes[written[k]]
		if c.Src == "" {
			e.NewSHA256 = sum(c.Data)
			if err := writeFile(r, e.newName(), c.Data, c.Mode); err != nil {
				return err
			}
			return atomicfile.SyncIn(r, e.newName())
		}
		if err := r.Rename(c.Src, e.newName()); err != nil {
			return err
		}
		if err := r.Chmod(e.newName(), c.Mode); err != nil {
			return err
		}
		h, err := hashSync(r, e.newName())
		e.NewSHA256 = h
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := atomicfile.SyncIn(r, newDir); err != nil {
		return nil, err
	}
	if err := crash("new"); err != nil {
		return nil, err
	}
	// The bytes each target holds now are kept in old/ (a hard link, else a
	// copy) and fsynced: a kept target's data may never have been fsynced
	// by its writer. On every core.
	err = parallel(len(p.Changes), func(i int) error {
		e := &p.Changes[i]
		h, mode, err := hashFile(r, e.Path)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		} else if err != nil {
			return err
		}
		e.Existed, e.OldSHA256, e.OldMode = true, h, fmtMode(mode)
		if err := keepOld(r, e.Path, e.oldName(), mode); err != nil {
			return err
		}
		return atomicfile.SyncIn(r, e.oldName())
	})
	if err != nil {
		return nil, err
	}
	if err := atomicfile.SyncIn(r, oldDir); err != nil {
		return nil, err
	}
	return p, crash("old")
}

// keepOld preserves the current bytes of target at name: a hard link (the
// target is only ever replaced by rename, never written in place), or a copy.
func keepOld(r *os.Root, target, name string, mode fs.FileMode) error {
	if err := r.Link(target, name); err == nil {
		return nil
	}
	b, err := r.ReadFile(target)
	if err != nil {
		return err
	}
	return writeFile(r, name, b, mode)
}

// syncParallel bounds the fsyncs in flight: concurrent fsyncs share journal
// commits on most filesystems, several times faster than one after another.
const syncParallel = 64

// parallel calls fn(0) ... fn(n-1) from at most syncParallel goroutines and
// returns the first error; after one, the remaining calls are skipped.
func parallel(n int, fn func(i int) error) error {
	work := make(chan int)
	errs := make(chan error, syncParallel)
	workers := min(syncParallel, n)
	for range workers {
		go func() {
			var first error
			for i := range work {
				if first == nil {
					first = fn(i)
				}
			}
			errs <- first
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	var first error
	for range workers {
		if err := <-errs; first == nil {
			first = err
		}
	}
	return first
}

// hashSync returns the hex SHA-256 of name and fsyncs it.
func hashSync(r *os.Root, name string) (string, error) {
	f, err := r.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := atomicfile.Copy(h, f); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("fsync %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// forward brings every target to its planned new state, idempotently, and
// fsyncs the directories it touched. Under "recover" it verifies the result.
func forward(r *os.Root, p *plan, step string) error {
	dirs := newDirSet()
	for i, e := range p.Changes {
		mode, _ := parseMode(e.Mode)
		if e.Op == opRemove {
			if err := r.Remove(e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			dirs.changed[path.Dir(e.Path)] = true
		} else {
			done := false
			if step == "recover" {
				h, m, err := hashFile(r, e.Path)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				if err == nil && h == e.NewSHA256 {
					if _, nerr := r.Lstat(e.newName()); errors.Is(nerr, fs.ErrNotExist) || m == mode {
						// Renamed already (or identical bytes and mode before).
						if m != mode {
							if err := r.Chmod(e.Path, mode); err != nil {
								return err
							}
						}
						done = true
					}
				}
			}
			if !done {
				if err := makeParents(r, path.Dir(e.Path), dirs); err != nil {
					return err
				}
				if step == "recover" {
					if err := r.Chmod(e.newName(), mode); err != nil {
						return err
					}
				}
				if err := r.Rename(e.newName(), e.Path); err != nil {
					return err
				}
				dirs.changed[path.Dir(e.Path)] = true
			}
		}
		if err := crash(step + ":" + strconv.Itoa(i)); err != nil {
			return err
		}
	}
	if err := syncDirs(r, dirs); err != nil {
		return err
	}
	if step == "recover" {
		for _, e := range p.Changes {
			h, m, err := hashFile(r, e.Path)
			switch {
			case e.Op == opRemove && errors.Is(err, fs.ErrNotExist):
			case e.Op == opRemove:
				return corrupt(e.Path, "still present after roll forward")
			case err != nil:
				return err
			case h != e.NewSHA256 || fmtMode(m) != e.Mode:
				return corrupt(e.Path, "holds sha256 %s mode %s after roll forward, want %s %s", h, fmtMode(m), e.NewSHA256, e.Mode)
			}
		}
	}
	return crash(step + ":synced")
}

// backward restores every target to its state before the plan.
func backward(r *os.Root, p *plan) error {
	dirs := newDirSet()
	for i, e := range p.Changes {
		if !e.Existed {
			if err := r.Remove(e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		} else {
			h, m, err := hashFile(r, e.Path)
			mode, _ := parseMode(e.OldMode)
			if err != nil || h != e.OldSHA256 {
				if err := makeParents(r, path.Dir(e.Path), dirs); err != nil {
					return err
				}
				if err := r.Chmod(e.oldName(), mode); err != nil {
					return err
				}
				if err := r.Rename(e.oldName(), e.Path); err != nil {
					return err
				}
			} else if m != mode {
				if err := r.Chmod(e.Path, mode); err != nil {
					return err
				}
			}
		}
		dirs.changed[path.Dir(e.Path)] = true
		if err := crash("rollback:" + strconv.Itoa(i)); err != nil {
			return err
		}
	}
	return syncDirs(r, dirs)
}

// target is what Recover found at a planned path.
type target struct {
	exists bool
	sha    string
	mode   fs.FileMode
}

func inspect(r *os.Root, p string) (target, error) {
	fi, err := r.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return target{}, nil
	} else if err != nil {
		return target{}, err
	}
	if !fi.Mode().IsRegular() {
		return target{exists: true}, nil // never matches a hash: neither direction is assumed done
	}
	h, m, err := hashFile(r, p)
	return target{exists: true, sha: h, mode: m}, err
}

func (t target) canForward(r *os.Root, e entry) bool {
	if e.Op == opRemove {
		return !t.exists || t.sha != ""
	}
	if t.sha == e.NewSHA256 {
		return true
	}
	h, _, err := hashFile(r, e.newName())
	return err == nil && h == e.NewSHA256 && (!t.exists || t.sha != "")
}

func (t target) canBack(r *os.Root, e entry) bool {
	if !e.Existed {
		return !t.exists || t.sha != ""
	}
	if t.sha == e.OldSHA256 {
		return true
	}
	h, _, err := hashFile(r, e.oldName())
	return err == nil && h == e.OldSHA256 && (!t.exists || t.sha != "")
}

func parsePlan(b []byte) (*plan, error) {
	var p plan
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, corrupt(planFile, "unparsable: %v", err)
	}
	if dec.More() {
		return nil, corrupt(planFile, "trailing data")
	}
	if p.Version != planVer {
		return nil, corrupt(planFile, "version %d, want %d", p.Version, planVer)
	}
	seen := map[string]bool{}
	for i, e := range p.Changes {
		if e.N != i {
			return nil, corrupt(planFile, "change %d has n %d", i, e.N)
		}
		if err := checkPath(e.Path); err != nil || seen[e.Path] {
			return nil, corrupt(planFile, "change %d: bad or duplicate path %q", i, e.Path)
		}
		seen[e.Path] = true
		if e.Existed && (!isHash(e.OldSHA256) || !validMode(e.OldMode)) {
			return nil, corrupt(planFile, "change %d: bad old_sha256 or old_mode", i)
		}
		switch e.Op {
		case opWrite:
			if !isHash(e.NewSHA256) || !validMode(e.Mode) {
				return nil, corrupt(planFile, "change %d: bad new_sha256 or mode", i)
			}
		case opRemove:
		default:
			return nil, corrupt(planFile, "change %d: op %q", i, e.Op)
		}
	}
	return &p, nil
}

// retire removes the journal: renamed away first, so that a journal is either
// whole or absent, then deleted.
func retire(r *os.Root, step string) error {
	done := donePref + randHex()
	if err := r.Rename(Dir, done); err != nil {
		return err
	}
	if err := atomicfile.SyncIn(r, "."); err != nil {
		return err
	}
	if err := crash(step + "retired"); err != nil {
		return err
	}
	return r.RemoveAll(done)
}

func removeRetired(r *os.Root) error {
	f, err := r.Open(".")
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasPrefix(n, donePref) {
			if err := r.RemoveAll(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// dirSet tracks the directories of a forward or backward pass: those whose
// entries changed (fsynced at the end) and those known to exist (not
// looked up again).
type dirSet struct{ changed, exists map[string]bool }

func newDirSet() dirSet { return dirSet{changed: map[string]bool{}, exists: map[string]bool{}} }

// makeParents creates dir and its missing ancestors, marking the directories
// whose entries changed for fsync.
func makeParents(r *os.Root, dir string, dirs dirSet) error {
	if dir == "." || dirs.exists[dir] {
		return nil
	}
	if fi, err := r.Stat(dir); err == nil && fi.IsDir() {
		dirs.exists[dir] = true
		return nil
	}
	if err := makeParents(r, path.Dir(dir), dirs); err != nil {
		return err
	}
	if err := r.Mkdir(dir, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	dirs.changed[path.Dir(dir)] = true
	dirs.exists[dir] = true
	return nil
}

// syncDirs fsyncs the directories whose entries changed.
func syncDirs(r *os.Root, dirs dirSet) error {
	names := make([]string, 0, len(dirs.changed))
	for d := range dirs.changed {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		if err := atomicfile.SyncIn(r, d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeSynced writes name (mode exact, whatever the umask) and fsyncs it.
func writeSynced(r *os.Root, name string, b []byte, mode fs.FileMode) error {
	if err := writeFile(r, name, b, mode); err != nil {
		return err
	}
	return atomicfile.SyncIn(r, name)
}

// writeFile writes name, mode exact; the caller fsyncs it.
func writeFile(r *os.Root, name string, b []byte, mode fs.FileMode) error {
	f, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// hashFile returns the hex SHA-256 and permission bits of the regular file
// at name.
func hashFile(r *os.Root, name string) (string, fs.FileMode, error) {
	fi, err := r.Lstat(name)
	if err != nil {
		return "", 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s: not a regular file", name)
	}
	f, err := r.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := atomicfile.Copy(h, f); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), fi.Mode().Perm(), nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func isHash(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) == 64 && strings.ToLower(s) == s
}

func fmtMode(m fs.FileMode) string { return fmt.Sprintf("%04o", uint32(m.Perm())) }

func parseMode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v&^uint64(fs.ModePerm) != 0 {
		return 0, fmt.Errorf("bad mode %q", s)
	}
	return fs.FileMode(v), nil
}

func validMode(s string) bool { _, err := parseMode(s); return err == nil && len(s) == 4 }

func randHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
