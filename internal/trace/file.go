package trace

import (
	"bytes"
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
	// History lists the entries of the tier's ledger that touched the file, oldest
	// first: the installs and upgrades of its owning package, and the
	// rollbacks that restored a checkpoint holding it.
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
	// Version is the package version an install put in place; VersionID
	// the checkpoint a rollback restored.
	Version   string `json:"version,omitempty"`
	VersionID string `json:"version_id,omitempty"`
	EntryHash string `json:"entry_hash"`
	// Removed marks an install of the owner (an upgrade) that removed the
	// file: it was in the state before and not in the state after.
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
	if err := history(ctx, root, t, pv, full, mb, rb); err != nil {
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
// tier t, found through its index: the INSTALLED entries of the owning
// package and the ROLLED_BACK entries after its first install whose
// checkpoint holds the file.
func history(ctx context.Context, root string, t tier, pv *Provenance, full string, mb, rb []byte) error {
	s, err := t.open()
	if err != nil {
		return err
	}
	defer s.Close()
	installs, err := find(ctx, s, ledger.Query{EventTypes: []string{"INSTALLED"}, Subject: pv.Owner.PackageID})
	if err != nil {
		return err
	}
	// An install of the owner touched the file only if the state before it
	// (its checkpoint) or the state after it holds the file: the after is
	// the checkpoint the next change of the tier took first or, for the
	// tier's last change, the state on disk, where the owner holds it. An
	// install whose states both lack the file (0.1.0 of a file 0.2.0 added)
	// is not its history; one with the file only before removed it.
	after, err := statesAfter(ctx, s)
	if err != nil {
		return err
	}
	st := &states{root: root, loaded: map[string]*snapshot.Version{}}
	var install *ledger.Entry
	shipped := installs[:0:0]
	for i := range installs {
		e := &installs[i]
		current := str(e.Metadata, "manifest_hash") == pv.Owner.ManifestHash && str(e.Metadata, "version") == pv.Owner.Version
		if current {
			install = e
		}
		// The install of the owner's version shipped the file (its receipt
		// lists it): no checkpoint is read for it, only for older ones.
		inAfter := true
		if vid, ok := after[e.Seq]; ok && !current {
			inAfter = st.has(vid, full)
		}
		if !inAfter && !st.has(str(e.Metadata, "checkpoint"), full) {
			continue
		}
		if inAfter {
			shipped = append(shipped, *e)
		}
		act := str(e.Metadata, "action")
		if act == "" {
			act = "install"
		}
		pv.History = append(pv.History, Touch{Seq: e.Seq, ID: e.ID, EventType: e.EventType, Timestamp: e.Timestamp, Actor: e.Actor,
			Action: act, Version: str(e.Metadata, "version"), EntryHash: e.EntryHash, Removed: !inAfter})
	}
	if install == nil {
		return refuse(CodeUnrecorded, "%s: no INSTALLED entry in %s's ledger records %s %s with manifest %s", full, t.info.Tier,
			pv.Owner.PackageID, pv.Owner.Version, pv.Owner.ManifestHash).withHint("run cp-gate integrity and cp-ledger verify")
	}
	latest := install
	if len(installs) > 0 {
		rbs, err := find(ctx, s, ledger.Query{EventTypes: []string{"ROLLED_BACK"}, From: installs[0].Seq})
		if err != nil {
			return err
		}
		for i := range rbs {
			e := &rbs[i]
			vid := str(e.Metadata, "version_id")
			if !st.has(vid, full) {
				continue
			}
			pv.History = append(pv.History, Touch{Seq: e.Seq, ID: e.ID, EventType: e.EventType, Timestamp: e.Timestamp, Actor: e.Actor,
				Action: "rollback", VersionID: vid, EntryHash: e.EntryHash})
			if e.Seq > latest.Seq {
				latest = e
			}
		}
		for i := range shipped {
			if shipped[i].Seq > latest.Seq {
				latest = &shipped[i]
			}
		}
	}
	slices.SortFunc(pv.History, func(a, b Touch) int { return int(a.Seq - b.Seq) })
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

// compact is JSON bytes without insignificant white space (they were read
// from a file the install wrote and checked).
func compact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return json.RawMessage(b)
	}
	return json.RawMessage(buf.Bytes())
}

// holds reports whether checkpoint vid holds the file at p (HO3-relative).
// statesAfter maps the seq of each INSTALLED and ROLLED_BACK entry of s
// (found through its index) to the checkpoint of the state right after it:
// the "checkpoint" (the state before) of the next one. The last has none:
// the state after it is the plane as it is.
func statesAfter(ctx context.Context, s ledger.Store) (map[int64]string, error) {
	changes, err := find(ctx, s, ledger.Query{EventTypes: []string{"INSTALLED", "ROLLED_BACK"}})
	if err != nil {
		return nil, err
	}
	after := map[int64]string{}
	for i := 0; i+1 < len(changes); i++ {
		// A change that took no checkpoint first (a kernel release of a
		// trust change) leaves the state after the one before it unknown:
		// not judged, so kept in the history.
		if vid := str(changes[i+1].Metadata, "checkpoint"); vid != "" {
			after[changes[i].Seq] = vid
		}
	}
	return after, nil
}

// states reads checkpoints once each.
type states struct {
	root   string
	loaded map[string]*snapshot.Version
}

// file returns path's entry in checkpoint vid (false: not there, or no
// such checkpoint).
func (st *states) file(vid, path string) (snapshot.File, bool) {
	v, ok := st.loaded[vid]
	if !ok {
		if snapshot.ValidID(vid) {
			v, _ = snapshot.Load(st.root, vid)
		}
		st.loaded[vid] = v
	}
	if v == nil {
		return snapshot.File{}, false
	}
	i := slices.IndexFunc(v.Files, func(f snapshot.File) bool { return f.Path == path })
	if i < 0 {
		return snapshot.File{}, false
	}
	return v.Files[i], true
}

func (st *states) has(vid, path string) bool {
	_, ok := st.file(vid, path)
	return ok
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
