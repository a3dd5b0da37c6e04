package trace

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/snapshot"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/ledger"
)

// File states (Provenance.State).
const (
	StateIntact     = "intact"      // the bytes and mode its owner installed
	StateModified   = "modified"    // other bytes than the recorded ones
	StateModeChange = "mode_change" // the recorded bytes with another mode
	StateMissing    = "missing"     // owned, but not on disk
	StateNotRegular = "not_regular" // a link, directory or device where the file should be
)

// Provenance is a file's answer: who owns it, what was recorded and what is
// on disk, every ledger entry that touched it, and the evidence that makes
// the answer checkable offline (Evidence; VerifyProvenance).
type Provenance struct {
	// Path is the file's path relative to the plane root.
	Path string `json:"path"`
	// Tier is the plane the file is in (ho3, ho2, ho1).
	Tier string `json:"tier"`
	// Owner is the installed package that owns the file.
	Owner Owner `json:"owner"`
	// RecordedSHA256 and RecordedMode are what the owner installed.
	RecordedSHA256 string `json:"recorded_sha256"`
	RecordedMode   string `json:"recorded_mode"`
	// DiskSHA256 and DiskMode are what is on disk now, read without
	// following a link ("" when there is no regular file).
	DiskSHA256 string `json:"disk_sha256"`
	DiskMode   string `json:"disk_mode"`
	// State is StateIntact or what is wrong with the file.
	State string `json:"state"`
	// History lists the entries of the tier's ledger that touched the file,
	// oldest first: the installs, upgrades and rollbacks that added,
	// modified or removed it (whichever package they installed: an earlier
	// owner's too), and the install of the owner's version in force.
	History []Touch `json:"history"`
	// Latest is the seq of the last entry of History.
	Latest int64 `json:"latest_seq"`
	// Evidence is what VerifyProvenance checks.
	Evidence Evidence `json:"provenance"`
}

// Owner is the package that owns a file.
type Owner struct {
	PackageID    string `json:"package_id"`
	Version      string `json:"version"`
	ManifestHash string `json:"manifest_hash"`
}

// Touch is one ledger entry that touched a file.
type Touch struct {
	Seq       int64  `json:"seq"`
	ID        string `json:"id"`
	EventType string `json:"event_type"`
	Timestamp string `json:"timestamp"`
	Actor     string `json:"actor"`
	// Action is install, upgrade, reinstall or rollback.
	Action string `json:"action"`
	// PackageID is the package an install put in place (another than the
	// owner's for an earlier owner of the path).
	PackageID string `json:"package_id,omitempty"`
	// Change is what the entry did to the file: ChangeAdded,
	// ChangeModified, ChangeRemoved, ChangeKept; "" for an install of the
	// owner written before changed sets were recorded whose states around
	// it cannot be read.
	Change string `json:"change"`
	// Version is the package version an install put in place; VersionID
	// the checkpoint a rollback restored.
	Version   string `json:"version,omitempty"`
	VersionID string `json:"version_id,omitempty"`
	EntryHash string `json:"entry_hash"`
	// Removed is Change == ChangeRemoved (kept for readers of the first
	// format).
	Removed bool `json:"removed,omitempty"`
}

// Evidence is a provenance's proof material: the entries (whole, as the
// ledger holds them), their inclusion proofs against the ledger's latest
// signed checkpoint, the installed manifest and the receipt.
type Evidence struct {
	// Ledger is the checkpoint origin of the ledger that holds the entries.
	Ledger string `json:"ledger"`
	// Install is the entry that installed the owner's version (INSTALLED
	// with its manifest hash); Latest the last entry that touched the file
	// (the same entry, or a later ROLLED_BACK).
	Install        ledger.Entry     `json:"install_entry"`
	InstallProof   ledger.Inclusion `json:"install_inclusion"`
	Latest         ledger.Entry     `json:"latest_entry"`
	LatestProof    ledger.Inclusion `json:"latest_inclusion"`
	Manifest       json.RawMessage  `json:"manifest"`
	Receipt        json.RawMessage  `json:"receipt"`
	CheckpointSize int64            `json:"checkpoint_size"`
}

// PlanePath resolves a user's path argument to the tier it is in and the
// path inside that tier: a path relative to the plane root (lib/x.py,
// planes/ho1/config/x.json), or an absolute path inside the plane. It
// refuses what is not a clean path inside the plane (FILE_NOT_OWNED can
// then not be told apart from an escape).
func PlanePath(root, p string) (tierID, inTier, full string, err error) {
	if filepath.IsAbs(p) {
		absRoot, aerr := filepath.Abs(root)
		if aerr != nil {
			return "", "", "", aerr
		}
		r, rerr := filepath.Rel(absRoot, p)
		if rerr != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
			return "", "", "", badArg("USAGE", "%s is not inside the plane %s", p, root)
		}
		p = r
	}
	p = filepath.ToSlash(p)
	if p == "" || path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == ".." || strings.HasPrefix(p, "/") {
		return "", "", "", badArg("USAGE", "%q: give a clean path relative to the plane root (lib/x.py)", p)
	}
	tierID, inTier = "ho3", p
	for _, l := range plane.Layout[1:] {
		if rest, ok := strings.CutPrefix(p, l.Dir+"/"); ok {
			tierID, inTier = l.PlaneID, rest
		}
	}
	return tierID, inTier, p, nil
}

// File answers the provenance of the file at p (PlanePath's forms) in the
// plane at root. A file whose disk state is not what its owner installed
// is a FILE_TAMPERED *Error whose Result is the provenance: never an
// answer that reads as fine.
func File(ctx context.Context, root, p string) (*Provenance, error) {
	tierID, inTier, full, err := PlanePath(root, p)
	if err != nil {
		return nil, err
	}
	ts, err := tiers(root, tierID)
	if err != nil {
		return nil, err
	}
	t := ts[0]
	owner, ok, err := ownerRow(t.dir, inTier)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, badArg(CodeNotOwned, "%s is not owned by any installed package", full).
			withHint("cp-trace inventory lists the packages; only files under governed roots are owned")
	}
	pkgID := owner.PackageID
	rb, err := regfile.ReadNoFollow(filepath.Join(t.dir, filepath.FromSlash(plane.ReceiptPath(pkgID))))
	if err != nil {
		return nil, err
	}
	rc, err := plane.ParseReceipt(rb)
	if err != nil {
		return nil, err
	}
	mb, err := regfile.ReadNoFollow(filepath.Join(t.dir, filepath.FromSlash(plane.ManifestPath(pkgID))))
	if err != nil {
		return nil, err
	}
	fi := slices.IndexFunc(rc.Files, func(f plane.ReceiptFile) bool { return f.Path == inTier })
	if fi < 0 {
		return nil, refuse(CodeProvenanceInvalid, "%s: file_ownership.csv names %s, whose receipt does not list it", full, pkgID).
			withHint("run cp-gate integrity")
	}
	rf := rc.Files[fi]
	pv := &Provenance{Path: full, Tier: tierID,
		Owner:          Owner{PackageID: rc.PackageID, Version: rc.Version, ManifestHash: rc.ManifestHash},
		RecordedSHA256: rf.SHA256, RecordedMode: modeOf(rf)}
	pv.DiskSHA256, pv.DiskMode, pv.State, err = onDisk(root, full, pv.RecordedSHA256, pv.RecordedMode)
	if err != nil {
		return nil, err
	}
	if err := history(ctx, root, t, pv, full, inTier, mb, rb); err != nil {
		return nil, err
	}
	if pv.State != StateIntact {
		e := refuse(CodeTampered, "%s is %s: on disk %s (mode %s), %s %s installed %s (mode %s)", full, strings.ReplaceAll(pv.State, "_", " "),
			orNone(pv.DiskSHA256), orNone(pv.DiskMode), pv.Owner.PackageID, pv.Owner.Version, pv.RecordedSHA256, pv.RecordedMode).
			withHint("cp-gate integrity shows every drifted file; cp-install rollback or install --force restores it")
		e.Result = pv
		return nil, e
	}
	return pv, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func modeOf(f plane.ReceiptFile) string {
	if f.Mode == "" {
		return "0444"
	}
	return f.Mode
}

// onDisk hashes the file at rel (slash-separated, below root) without
// following a link, in the file or in any directory on the way down from
// root, and says how it stands against the recorded hash and mode: a link
// anywhere on the path is StateNotRegular (what is read through it is not
// the plane's file, whatever its bytes).
func onDisk(root, rel, sha, mode string) (diskSHA, diskMode, state string, err error) {
	dir := root
	parts := strings.Split(rel, "/")
	for _, part := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, part)
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", "", StateMissing, nil
		case err != nil:
			return "", "", "", err
		case !fi.IsDir():
			return "", "", StateNotRegular, nil
		}
	}
	p := filepath.Join(dir, parts[len(parts)-1])
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", StateMissing, nil
	case errors.Is(err, syscall.ELOOP):
		return "", "", StateNotRegular, nil
	case err != nil:
		return "", "", "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", "", "", err
	}
	if !st.Mode().IsRegular() {
		return "", "", StateNotRegular, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", "", err
	}
	diskSHA = "sha256:" + hex.EncodeToString(h.Sum(nil))
	diskMode = snapshot.FormatMode(st.Mode())
	switch {
	case diskSHA != sha:
		state = StateModified
	case diskMode != mode:
		state = StateModeChange
	default:
		state = StateIntact
	}
	return diskSHA, diskMode, state, nil
}

// history fills pv's History and Evidence from the ledger of the file's
// tier t, found through its index: the INSTALLED and ROLLED_BACK entries
// whose changed set (metadata.changed) lists the path, whichever package
// they installed (an earlier owner's too); entries written before changed
// sets were recorded are judged by the checkpoints around them (legacy);
// and the install of the owner's version in force, which vouches for the
// file now (change "kept" when it left the file as it was).
func history(ctx context.Context, root string, t tier, pv *Provenance, full, inTier string, mb, rb []byte) error {
	s, err := t.open()
	if err != nil {
		return err
	}
	defer s.Close()
	installs, err := find(ctx, s, ledger.Query{EventTypes: []string{"INSTALLED"}, Subject: pv.Owner.PackageID})
	if err != nil {
		return err
	}
	var install *ledger.Entry
	for i := range installs {
		e := &installs[i]
		if str(e.Metadata, "manifest_hash") == pv.Owner.ManifestHash && str(e.Metadata, "version") == pv.Owner.Version {
			install = e
		}
	}
	if install == nil {
		return refuse(CodeUnrecorded, "%s: no INSTALLED entry in %s's ledger records %s %s with manifest %s", full, t.info.Tier,
			pv.Owner.PackageID, pv.Owner.Version, pv.Owner.ManifestHash).withHint("run cp-gate integrity and cp-ledger verify")
	}
	// Only the tools write these event types (cp-ledger append refuses
	// them): a changed set in any other entry says nothing.
	changes := []string{"INSTALLED", "ROLLED_BACK"}
	touched, err := find(ctx, s, ledger.Query{EventTypes: changes, Changed: inTier})
	if err != nil {
		return err
	}
	byseq := map[int64]bool{}
	var entries []ledger.Entry
	for i := range touched {
		c, _ := ledger.ChangedOf(touched[i].Metadata)
		byseq[touched[i].Seq] = true
		entries = append(entries, touched[i])
		pv.History = append(pv.History, touchOf(&touched[i], c.Change(inTier)))
	}
	st := &states{root: root, loaded: map[string]*snapshot.Version{}}
	legacy, err := legacyTouches(ctx, s, st, pv, full)
	if err != nil {
		return err
	}
	for i := range legacy {
		if !byseq[legacy[i].e.Seq] {
			byseq[legacy[i].e.Seq] = true
			entries = append(entries, legacy[i].e)
			pv.History = append(pv.History, touchOf(&legacy[i].e, legacy[i].change))
		}
	}
	if !byseq[install.Seq] {
		entries = append(entries, *install)
		pv.History = append(pv.History, touchOf(install, ChangeKept))
	}
	slices.SortFunc(pv.History, func(a, b Touch) int { return cmp.Compare(a.Seq, b.Seq) })
	// The latest entry proved is the last rollback or install of the
	// owner that put the file there: another package's install is
	// history, never what vouches for the owner's bytes, and neither is
	// an entry that removed the file.
	change := map[int64]string{}
	for _, h := range pv.History {
		change[h.Seq] = h.Change
	}
	latest := install
	for i := range entries {
		e := &entries[i]
		if e.Seq > latest.Seq && change[e.Seq] != ChangeRemoved && (e.EventType == "ROLLED_BACK" || e.SubmissionID == pv.Owner.PackageID) {
			latest = e
		}
	}
	pv.Latest = latest.Seq
	ip, err := ledger.ProveInclusion(ctx, s, install.Seq, 0, t.origin())
	if err != nil {
		return err
	}
	lp, err := ledger.ProveInclusion(ctx, s, latest.Seq, 0, t.origin())
	if err != nil {
		return err
	}
	// The index re-checks what it returns, a scan does not: an entry
	// edited in the ledger is not the leaf the Merkle tree holds.
	for _, c := range []struct {
		e *ledger.Entry
		p ledger.Inclusion
	}{{install, ip}, {latest, lp}} {
		if h, err := entryLeaf(c.e); err != nil || h != c.p.LeafHash {
			return refuse(CodeProvenanceInvalid, "%s: %s's ledger entry seq %d is not the entry its Merkle tree holds (leaf %s)", full, t.info.Tier, c.e.Seq, c.p.LeafHash).
				withHint("run cp-ledger verify --plane %s", t.layout.PlaneID)
		}
	}
	pv.Evidence = Evidence{Ledger: t.origin(), Install: *install, InstallProof: ip, Latest: *latest, LatestProof: lp,
		Manifest: compact(mb), Receipt: compact(rb), CheckpointSize: ip.TreeSize}
	return nil
}

// What an entry of a file's history did to it (Touch.Change).
const (
	ChangeAdded    = "added"    // the file was not there before
	ChangeModified = "modified" // other bytes or mode, or another owner (a rollback)
	ChangeRemoved  = "removed"  // the file was there and is no more
	ChangeKept     = "kept"     // the install of the owner's version, which left the file as it was
)

func touchOf(e *ledger.Entry, change string) Touch {
	t := Touch{Seq: e.Seq, ID: e.ID, EventType: e.EventType, Timestamp: e.Timestamp, Actor: e.Actor, EntryHash: e.EntryHash,
		Change: change, Removed: change == ChangeRemoved}
	switch e.EventType {
	case "ROLLED_BACK":
		t.Action, t.VersionID = "rollback", str(e.Metadata, "version_id")
	default:
		t.Action, t.PackageID, t.Version = str(e.Metadata, "action"), e.SubmissionID, str(e.Metadata, "version")
		if t.Action == "" {
			t.Action = "install"
		}
	}
	return t
}

type legacyTouch struct {
	e      ledger.Entry
	change string
}

// legacyTouches returns the INSTALLED and ROLLED_BACK entries of s written
// before changed sets were recorded that touched the file at full (its
// path from the plane root, as checkpoints hold it): those whose state
// before (their "checkpoint") and after differ for it. The state after a
// rollback is the checkpoint it restored; after an install, the checkpoint
// the next change took first or, for the tier's last change, the file as
// its owner holds it now. An install whose states cannot be read (a
// change that took no checkpoint, one pruned) is kept when it is the
// owner's, unjudged (change ""). The entries are read in seq order and
// the read stops at the first one that records its changed set: every
// tool since writes one.
func legacyTouches(ctx context.Context, s ledger.Store, st *states, pv *Provenance, full string) ([]legacyTouch, error) {
	var old []ledger.Entry
	next := "" // the checkpoint of the first change that records its changed set
	nextSeen := false
	err := s.Find(ctx, ledger.Query{EventTypes: []string{"INSTALLED", "ROLLED_BACK"}}, func(e *ledger.Entry) bool {
		if _, ok := ledger.ChangedOf(e.Metadata); ok {
			next, nextSeen = str(e.Metadata, "checkpoint"), true
			return false
		}
		old = append(old, *e)
		return true
	})
	if err != nil {
		return nil, err
	}
	now := &snapshot.File{Path: full, SHA256: pv.RecordedSHA256, Mode: pv.RecordedMode}
	var out []legacyTouch
	for i := range old {
		e := &old[i]
		before, bknown := st.file(str(e.Metadata, "checkpoint"), full)
		var after *snapshot.File
		aknown := true
		switch {
		case e.EventType == "ROLLED_BACK":
			after, aknown = st.file(str(e.Metadata, "version_id"), full)
		case i+1 < len(old):
			after, aknown = st.file(str(old[i+1].Metadata, "checkpoint"), full)
		case nextSeen:
			after, aknown = st.file(next, full)
		default:
			after = now
		}
		if !bknown || !aknown {
			if e.EventType == "INSTALLED" && e.SubmissionID == pv.Owner.PackageID {
				out = append(out, legacyTouch{e: *e})
			}
			continue
		}
		if c := changeOf(before, after); c != "" {
			out = append(out, legacyTouch{e: *e, change: c})
		}
	}
	return out, nil
}

// changeOf says what became of a file between two states (nil: absent).
func changeOf(before, after *snapshot.File) string {
	switch {
	case before == nil && after == nil:
		return ""
	case before == nil:
		return ChangeAdded
	case after == nil:
		return ChangeRemoved
	case before.SHA256 != after.SHA256 || before.Mode != after.Mode:
		return ChangeModified
	}
	return ""
}

// compact is JSON bytes without insignificant white space (they were read
// from a file the install wrote and checked).
func compact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return json.RawMessage(b)
	}
	return json.RawMessage(buf.Bytes())
}

// states reads checkpoints once each.
type states struct {
	root   string
	loaded map[string]*snapshot.Version
}

// file returns path's entry in checkpoint vid (nil: not there); known is
// false when there is no such checkpoint to read.
func (st *states) file(vid, path string) (f *snapshot.File, known bool) {
	v, ok := st.loaded[vid]
	if !ok {
		if snapshot.ValidID(vid) {
			v, _ = snapshot.Load(st.root, vid)
		}
		st.loaded[vid] = v
	}
	if v == nil {
		return nil, false
	}
	i := slices.IndexFunc(v.Files, func(f snapshot.File) bool { return f.Path == path })
	if i < 0 {
		return nil, true
	}
	return &v.Files[i], true
}

// str is m[k] when it is a string.
func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// entryLeaf is the leaf hash of e recomputed from its content (never its
// entry_hash field): what the Merkle tree must hold at its seq.
func entryLeaf(e *ledger.Entry) (string, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	line, err := jcs.Canonicalize(b)
	if err != nil {
		return "", err
	}
	leaf, err := ledger.LeafOf(line, e.Seq)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(leaf[:]), nil
}
