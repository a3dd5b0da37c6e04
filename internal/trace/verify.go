package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/manifest"
)

// Verdict is what VerifyProvenance checked.
type Verdict struct {
	Valid     bool   `json:"valid"`
	ProofType string `json:"proof_type"` // "file_provenance"
	Path      string `json:"path"`
	PackageID string `json:"package_id"`
	Version   string `json:"version"`
	SHA256    string `json:"sha256"`
	// InstallSeq and LatestSeq are the entries proved; TreeSize the
	// checkpoint the latest one is proved against.
	InstallSeq int64 `json:"install_seq"`
	LatestSeq  int64 `json:"latest_seq"`
	TreeSize   int64 `json:"tree_size"`
}

// provenanceDoc is a Provenance as it arrives on a verifier's stdin: the
// entries are kept as the bytes they came in, to be hashed again.
type provenanceDoc struct {
	Path           string `json:"path"`
	Owner          Owner  `json:"owner"`
	RecordedSHA256 string `json:"recorded_sha256"`
	RecordedMode   string `json:"recorded_mode"`
	DiskSHA256     string `json:"disk_sha256"`
	DiskMode       string `json:"disk_mode"`
	State          string `json:"state"`
	Latest         *int64 `json:"latest_seq"`
	Evidence       struct {
		Install      json.RawMessage  `json:"install_entry"`
		InstallProof ledger.Inclusion `json:"install_inclusion"`
		Latest       json.RawMessage  `json:"latest_entry"`
		LatestProof  ledger.Inclusion `json:"latest_inclusion"`
		Manifest     json.RawMessage  `json:"manifest"`
		Receipt      json.RawMessage  `json:"receipt"`
	} `json:"provenance"`
}

// VerifyProvenance checks a file's provenance (File's answer, as JSON)
// offline, link by link, and fails closed on the first that does not hold
// (PROVENANCE_INVALID, or FILE_TAMPERED when the provenance itself says the
// disk differs):
//
//   - each entry hashes to its entry_hash, which is its proof's leaf, at
//     its proof's seq; each proof leads to the root of a checkpoint
//     signed by one of verifiers (an unsigned checkpoint is refused);
//   - the install entry is the INSTALLED of the owner's package, version
//     and manifest hash; the latest entry is that one or a later
//     ROLLED_BACK or INSTALLED of the same package, and when it records
//     what it changed (metadata.changed), it added or modified the file;
//   - the manifest hashes to that manifest hash and lists the file with
//     the recorded hash and mode; the receipt names the same package,
//     version and manifest hash and lists the file likewise;
//   - the file on disk had the recorded hash and mode.
func VerifyProvenance(doc []byte, verifiers note.Verifiers) (*Verdict, error) {
	var p provenanceDoc
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return nil, invalid("not a file provenance: %v", err)
	}
	v := &Verdict{ProofType: "file_provenance", Path: p.Path, PackageID: p.Owner.PackageID, Version: p.Owner.Version, SHA256: p.RecordedSHA256}
	_, inTier, _, err := PlanePath("", p.Path)
	if err != nil {
		return v, invalid("path: %v", err)
	}
	ev := p.Evidence
	install, err := provedEntry("install", ev.Install, ev.InstallProof, verifiers)
	if err != nil {
		return v, err
	}
	latest, err := provedEntry("latest", ev.Latest, ev.LatestProof, verifiers)
	if err != nil {
		return v, err
	}
	v.InstallSeq, v.LatestSeq, v.TreeSize = install.Seq, latest.Seq, ev.LatestProof.TreeSize
	o := p.Owner
	if install.EventType != "INSTALLED" || install.SubmissionID != o.PackageID || str(install.Metadata, "version") != o.Version ||
		str(install.Metadata, "manifest_hash") != o.ManifestHash {
		return v, invalid("install entry seq %d is %s of %s %s (manifest %s), not INSTALLED of %s %s (manifest %s)", install.Seq,
			install.EventType, install.SubmissionID, str(install.Metadata, "version"), str(install.Metadata, "manifest_hash"), o.PackageID, o.Version, o.ManifestHash)
	}
	switch {
	case latest.Seq < install.Seq:
		return v, invalid("latest entry seq %d is older than the install entry seq %d", latest.Seq, install.Seq)
	case latest.EventType == "ROLLED_BACK":
	case latest.EventType == "INSTALLED" && latest.SubmissionID == o.PackageID:
	default:
		return v, invalid("latest entry seq %d is %s of %s: not an install of %s or a rollback", latest.Seq, latest.EventType, latest.SubmissionID, o.PackageID)
	}
	if c, ok := ledger.ChangedOf(latest.Metadata); ok && latest.Seq != install.Seq {
		// An entry that records what it changed vouches for the file
		// only if it put these bytes there.
		if ch := c.Change(inTier); ch != ChangeAdded && ch != ChangeModified {
			return v, invalid("latest entry seq %d does not record adding or modifying %s (its changed set: %q)", latest.Seq, inTier, ch)
		}
	}
	if p.Latest == nil || *p.Latest != latest.Seq {
		return v, invalid("latest_seq does not name the latest entry proved (seq %d)", latest.Seq)
	}
	m, err := manifest.Parse(ev.Manifest)
	if err != nil {
		return v, invalid("manifest: %v", err)
	}
	if h, err := m.Hash(); err != nil || h != o.ManifestHash {
		return v, invalid("manifest hashes to %s, the install entry records %s", h, o.ManifestHash)
	}
	if m.PackageID != o.PackageID || m.Version != o.Version {
		return v, invalid("manifest is %s %s, not %s %s", m.PackageID, m.Version, o.PackageID, o.Version)
	}
	ai := slices.IndexFunc(m.Assets, func(a manifest.Asset) bool { return a.Path == inTier })
	if ai < 0 || m.Assets[ai].SHA256 != p.RecordedSHA256 || m.Assets[ai].InstalledMode() != p.RecordedMode {
		return v, invalid("manifest of %s %s does not list %s with sha256 %s and mode %s", o.PackageID, o.Version, inTier, p.RecordedSHA256, p.RecordedMode)
	}
	rc, err := plane.ParseReceipt(ev.Receipt)
	if err != nil {
		return v, invalid("%v", err)
	}
	if rc.PackageID != o.PackageID || rc.Version != o.Version || rc.ManifestHash != o.ManifestHash {
		return v, invalid("receipt is of %s %s (manifest %s), not %s %s (manifest %s)", rc.PackageID, rc.Version, rc.ManifestHash, o.PackageID, o.Version, o.ManifestHash)
	}
	ri := slices.IndexFunc(rc.Files, func(f plane.ReceiptFile) bool { return f.Path == inTier })
	if ri < 0 || rc.Files[ri].SHA256 != p.RecordedSHA256 || modeOf(rc.Files[ri]) != p.RecordedMode {
		return v, invalid("receipt of %s %s does not list %s with sha256 %s and mode %s", o.PackageID, o.Version, inTier, p.RecordedSHA256, p.RecordedMode)
	}
	if p.State != StateIntact || p.DiskSHA256 != p.RecordedSHA256 || p.DiskMode != p.RecordedMode {
		e := refuse(CodeTampered, "%s is %s on disk: %s (mode %s), recorded %s (mode %s)", p.Path, p.State, orNone(p.DiskSHA256), orNone(p.DiskMode), p.RecordedSHA256, p.RecordedMode)
		return v, e
	}
	v.Valid = true
	return v, nil
}

func invalid(format string, args ...any) *Error {
	return refuse(CodeProvenanceInvalid, format, args...)
}

// provedEntry checks that raw is a whole ledger entry whose hash is the
// leaf that proof proves, and returns it.
func provedEntry(which string, raw json.RawMessage, proof ledger.Inclusion, verifiers note.Verifiers) (*ledger.Entry, error) {
	line, err := jcs.Canonicalize(raw)
	if err != nil {
		return nil, invalid("%s entry: %v", which, err)
	}
	e, err := ledger.ParseLine(line)
	if err != nil {
		return nil, invalid("%s entry: %v", which, err)
	}
	leaf, err := ledger.LeafOf(line, e.Seq)
	if err != nil {
		return nil, invalid("%s entry seq %d: its entry_hash does not match its content", which, e.Seq)
	}
	if h := fmt.Sprintf("%x", leaf[:]); h != proof.LeafHash || proof.Seq != e.Seq {
		return nil, invalid("%s entry seq %d (leaf %s) is not the leaf its proof proves (seq %d, leaf %s)", which, e.Seq, h, proof.Seq, proof.LeafHash)
	}
	if err := ledger.VerifyInclusion(proof, verifiers); err != nil {
		return nil, invalid("%s entry seq %d: %v", which, e.Seq, err)
	}
	// A provenance is a claim about the plane: only a checkpoint signed by
	// a key the verifier holds makes it one (an unsigned tree is anyone's).
	if _, signed, err := ledger.OpenCheckpoint([]byte(proof.Checkpoint), verifiers); err != nil || !signed {
		return nil, invalid("%s entry seq %d: its checkpoint is not signed by a key the verifier holds: nothing vouches for it", which, e.Seq)
	}
	return e, nil
}
