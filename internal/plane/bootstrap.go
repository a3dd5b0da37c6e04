package plane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/manifest"
	"github.com/control-plane/cp/pkg/pkgsig"
)

// Error is a plane-level refusal with a stable code.
type Error struct {
	code string
	exit int
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Code returns the stable code (PLANE_EXISTS, PLANE_DIR_NOT_EMPTY, ...).
func (e *Error) Code() string { return e.code }

// ExitCode returns the exit class.
func (e *Error) ExitCode() int { return e.exit }

func refuse(code string, exit int, format string, args ...any) *Error {
	return &Error{code: code, exit: exit, msg: fmt.Sprintf(format, args...)}
}

// TierLayout is where one tier lives, relative to the HO3 root.
type TierLayout struct {
	PlaneID string // ho3, ho2, ho1
	Tier    string // HO3, HO2, HO1
	Dir     string // "" for HO3, planes/ho2, planes/ho1
	Ledger  string // relative to the tier's Dir
	Parent  string // the parent tier's ledger, relative to the HO3 root; "" for HO3
}

// Layout lists the three tiers, highest first.
var Layout = []TierLayout{
	{PlaneID: "ho3", Tier: "HO3", Dir: "", Ledger: "ledger/governance.jsonl"},
	{PlaneID: "ho2", Tier: "HO2", Dir: "planes/ho2", Ledger: "ledger/workorder.jsonl", Parent: "ledger/governance.jsonl"},
	{PlaneID: "ho1", Tier: "HO1", Dir: "planes/ho1", Ledger: "ledger/worker.jsonl", Parent: "planes/ho2/ledger/workorder.jsonl"},
}

// FrameworkPath is where a registered framework version's document is kept,
// relative to the HO3 root: outside the governed roots (registration makes
// no package-owned file) and one file per version (history is kept).
func FrameworkPath(id, version string) string {
	return "registries/frameworks/" + id + "/" + version + ".md"
}

// SpecPath is where a registered spec version's manifest is kept.
func SpecPath(id, version string, yaml bool) string {
	name := "manifest.json"
	if yaml {
		name = "manifest.yaml"
	}
	return "registries/specs/" + id + "/" + version + "/" + name
}

// BootstrapOptions configure Bootstrap.
type BootstrapOptions struct {
	TrustKeys []string // verifier keys (or paths to them) trusted for packages and checkpoints
	// PlaneName is the plane's unique name (tier.json plane_name); ""
	// draws a random one. Its checkpoint key is made in KeyDir(PlaneName).
	PlaneName string
	Actor     string
	Now       func() time.Time
}

// TierResult describes one created tier.
type TierResult struct {
	PlaneID     string `json:"plane_id"`
	Tier        string `json:"tier"`
	Dir         string `json:"dir"`
	Ledger      string `json:"ledger"`
	GenesisHash string `json:"genesis_hash"`
	ParentHash  string `json:"parent_hash"`
	Head        string `json:"head"`
	Entries     int64  `json:"entries"`
}

// BootstrapResult is what Bootstrap made.
type BootstrapResult struct {
	Tiers         []TierResult `json:"tiers"`
	KernelID      string       `json:"kernel_id"`
	KernelVersion string       `json:"kernel_version"`
	ManifestHash  string       `json:"manifest_hash"`
	ArchiveSHA256 string       `json:"archive_sha256"`
	TrustedKeys   []string     `json:"trusted_keys"`
	PlaneName     string       `json:"plane_name"`
	// CheckpointKey is the verifier key of the plane's checkpoint key, and
	// CheckpointKeyFile where its signer key was made (outside the plane).
	CheckpointKey     string `json:"checkpoint_key"`
	CheckpointKeyFile string `json:"checkpoint_key_file"`
}

// Bootstrap creates a plane at dir: the three tiers with their tier.json,
// ledgers opened by GENESIS entries (each lower tier's recording its parent
// ledger's head), empty registries, default config and the kernel package
// installed on every tier. It builds the plane in a sibling temporary
// directory and renames it into place, so dir either does not hold a plane
// or holds a whole one. It refuses a dir that already holds a plane
// (PLANE_EXISTS) or anything else (PLANE_DIR_NOT_EMPTY): running it twice
// never damages a plane. No absolute path is written anywhere.
func Bootstrap(ctx context.Context, dir string, opts BootstrapOptions) (*BootstrapResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := checkTarget(dir); err != nil {
		return nil, err
	}
	if opts.PlaneName == "" {
		opts.PlaneName = NewPlaneName()
	}
	if !ValidPlaneName(opts.PlaneName) {
		return nil, refuse("PLANE_NAME_INVALID", 2, "--plane-name %q: want 1-63 lower-case letters, digits and hyphens, starting with a letter or digit", opts.PlaneName)
	}
	vkey, keyFile, undo, err := makeCheckpointKey(opts.PlaneName, dir)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			undo() // a plane that was not made leaves no key behind
		}
	}()
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".bootstrap-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	res, err := build(ctx, tmp, opts, vkey)
	if err != nil {
		return nil, err
	}
	res.CheckpointKeyFile = keyFile
	if err := checkTarget(dir); err != nil { // nobody made a plane meanwhile
		return nil, err
	}
	// rename(2) replaces an empty directory atomically; os.Rename refuses
	// any existing directory, so call the system call itself.
	if err := syscall.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("moving the new plane into place: %w", err)
	}
	committed = true
	return res, atomicfile.SyncDir(parent)
}

// checkTarget refuses a directory that holds a plane or anything else, or
// that lies inside a plane (planes do not nest).
func checkTarget(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "tier.json")); err == nil {
			return refuse("PLANE_NESTED", 1, "%s is inside the plane at %s; planes do not nest", dir, d)
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "tier.json")); err == nil {
		return refuse("PLANE_EXISTS", 1, "%s already holds a plane; bootstrap leaves it as it is", dir)
	}
	if len(entries) > 0 {
		return refuse("PLANE_DIR_NOT_EMPTY", 1, "%s is not empty; bootstrap creates a plane only in a new or empty directory", dir)
	}
	return nil
}

func build(ctx context.Context, root string, opts BootstrapOptions, checkpointKey string) (*BootstrapResult, error) {
	now := opts.Now().UTC()
	stamp := now.Format(time.RFC3339Nano)
	trusted, names, err := trustedKeys(opts.TrustKeys, stamp, checkpointKey)
	if err != nil {
		return nil, err
	}
	roots, err := DefaultGovernedRootsJSON()
	if err != nil {
		return nil, err
	}
	files, err := KernelFiles(roots, trusted)
	if err != nil {
		return nil, err
	}
	rel, err := BuildRelease(KernelVersion, files)
	if err != nil {
		return nil, err
	}
	m, mhash, mbytes, archiveBytes, ahash := rel.Manifest, rel.ManifestHash, rel.ManifestBytes, rel.Archive, rel.ArchiveSHA256
	res := &BootstrapResult{KernelID: KernelID, KernelVersion: KernelVersion, ManifestHash: mhash, ArchiveSHA256: ahash, TrustedKeys: names,
		PlaneName: opts.PlaneName, CheckpointKey: checkpointKey}

	for _, d := range []string{"packages_store", "versions", "work_orders", "_staging", "planes/ho1/sessions"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	fwPath := FrameworkPath(KernelFramework, "1.0.0")
	specPath := SpecPath(KernelSpec, "1.0.0", false)
	if err := writeFile(filepath.Join(root, fwPath), []byte(kernelFramework), 0o444); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(root, specPath), []byte(kernelSpec), 0o444); err != nil {
		return nil, err
	}

	receipt := Receipt{PackageID: KernelID, Version: KernelVersion, ManifestHash: mhash, ArchiveSHA256: ahash,
		PlaneID: "", InstalledAt: stamp, Actor: opts.Actor, Signature: registry.SignatureWaived}
	for _, a := range m.Assets {
		receipt.Files = append(receipt.Files, ReceiptFile{Path: a.Path, SHA256: a.SHA256, Size: a.Size})
	}
	parentHash, parentSize := "", int64(0)
	for _, t := range Layout {
		tdir := filepath.Join(root, filepath.FromSlash(t.Dir))
		if err := os.MkdirAll(tdir, 0o755); err != nil {
			return nil, err
		}
		var parentLedger *string
		if t.Parent != "" {
			p := t.Parent
			parentLedger = &p
		}
		tier := Tier{Tier: t.Tier, PlaneID: t.PlaneID, PlaneName: opts.PlaneName, LedgerPath: t.Ledger, ParentLedger: parentLedger, CreatedAt: stamp}
		tj, err := json.MarshalIndent(tier, "", "  ")
		if err != nil {
			return nil, err
		}
		tj = append(tj, '\n')
		if err := writeFile(filepath.Join(tdir, "tier.json"), tj, 0o644); err != nil {
			return nil, err
		}
		if err := registry.Create(tdir); err != nil {
			return nil, err
		}
		for p, b := range files {
			if err := writeFile(filepath.Join(tdir, filepath.FromSlash(p)), b, 0o444); err != nil {
				return nil, err
			}
		}
		// Every tier keeps the archive of what it installed: G0B re-hashes it.
		if err := writeFile(filepath.Join(tdir, filepath.FromSlash(StorePath(KernelID, KernelVersion))), archiveBytes, 0o444); err != nil {
			return nil, err
		}
		if _, err := pkgsig.LoadTrusted(tdir); err != nil {
			return nil, err // what we wrote must be what the gates will read
		}
		inst := filepath.Join(tdir, "installed", KernelID)
		if err := os.MkdirAll(inst, 0o755); err != nil {
			return nil, err
		}
		receipt.PlaneID = t.PlaneID
		rb, err := receipt.Marshal()
		if err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(inst, "manifest.json"), mbytes, 0o444); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(inst, "receipt.json"), rb, 0o444); err != nil {
			return nil, err
		}
		if err := registerKernel(ctx, tdir, t, m, mhash, ahash, now, opts.Actor, fwPath, specPath); err != nil {
			return nil, err
		}
		tr, err := openLedgers(ctx, tdir, t, tier, SHA256(tj), parentHash, parentSize, mhash, ahash, opts.Actor)
		if err != nil {
			return nil, err
		}
		tr.Dir = t.Dir
		res.Tiers = append(res.Tiers, tr)
		parentHash, parentSize = tr.Head, tr.Entries
	}
	return res, nil
}

// registerKernel fills one tier's registries: the kernel's files and state,
// and on HO3 the kernel framework and spec.
func registerKernel(ctx context.Context, tdir string, t TierLayout, m *manifest.Manifest, mhash, ahash string, now time.Time, actor, fwPath, specPath string) error {
	tables := []registry.Table{registry.Ownership, registry.Packages}
	if t.PlaneID == "ho3" {
		tables = append(tables, registry.Frameworks, registry.Specs)
	}
	return registry.UpdateMany(ctx, tdir, tables, func(map[string][]registry.Row) (map[string][]registry.Row, error) {
		out := map[string][]registry.Row{}
		for _, a := range m.Assets {
			out[registry.Ownership.File] = append(out[registry.Ownership.File], registry.Owner{Path: a.Path, PackageID: KernelID,
				SHA256: a.SHA256, Size: a.Size, Classification: a.Classification, InstalledAt: now}.Row())
		}
		out[registry.Packages.File] = []registry.Row{registry.Package{ID: KernelID, Version: KernelVersion, ManifestHash: mhash,
			ArchiveSHA256: ahash, Status: registry.StatusInstalled, Signature: registry.SignatureWaived, InstalledAt: now, Actor: actor}.Row()}
		if t.PlaneID == "ho3" {
			out[registry.Frameworks.File] = []registry.Row{registry.Framework{ID: KernelFramework, Title: "Control Plane kernel",
				Version: "1.0.0", Status: registry.StatusActive, Path: fwPath, SHA256: SHA256([]byte(kernelFramework)),
				RegisteredAt: now, RegisteredBy: actor}.Row()}
			out[registry.Specs.File] = []registry.Row{registry.Spec{ID: KernelSpec, FrameworkID: KernelFramework,
				Title: "Control Plane kernel: core config and schemas", Version: "1.0.0", Status: registry.StatusActive,
				Path: specPath, SHA256: SHA256([]byte(kernelSpec)), RegisteredAt: now, RegisteredBy: actor}.Row()}
		}
		return out, nil
	})
}

// openLedgers writes the tier's GENESIS (recording its parent's head and
// the hash of its tier.json, which G6 holds tier.json to) and the events
// of its creation, and returns the tier's ledger state.
func openLedgers(ctx context.Context, tdir string, t TierLayout, tier Tier, tierHash, parentHash string, parentSize int64, mhash, ahash, actor string) (TierResult, error) {
	l, err := openLedger(tdir, tier, ForAppend, actor) // every append leaves the plane's checkpoint
	if err != nil {
		return TierResult{}, err
	}
	defer l.Close()
	meta := map[string]any{"plane_id": t.PlaneID, "_tier": t.Tier, "parent_hash": parentHash, "tier_sha256": tierHash}
	if t.Parent != "" {
		meta["parent_ledger"] = t.Parent
		meta["parent_size"] = json.Number(fmt.Sprint(parentSize))
	}
	g, err := ledger.Genesis(ctx, l, ledger.Draft{SubmissionID: t.PlaneID, Decision: "CREATED", Reason: "plane bootstrap", Metadata: meta})
	if err != nil {
		return TierResult{}, err
	}
	var drafts []ledger.Draft
	if t.PlaneID == "ho3" {
		drafts = append(drafts,
			ledger.Draft{EventType: "FRAMEWORK_REGISTERED", SubmissionID: KernelFramework, Decision: "REGISTERED", Reason: "plane bootstrap",
				Metadata: map[string]any{"_tier": t.Tier, "framework_id": KernelFramework, "version": "1.0.0", "sha256": SHA256([]byte(kernelFramework))}},
			ledger.Draft{EventType: "SPEC_REGISTERED", SubmissionID: KernelSpec, Decision: "REGISTERED", Reason: "plane bootstrap",
				Metadata: map[string]any{"_tier": t.Tier, "spec_id": KernelSpec, "framework_id": KernelFramework, "version": "1.0.0", "sha256": SHA256([]byte(kernelSpec))}})
	}
	// The kernel's install is an operation like any other: INSTALL_STARTED
	// then INSTALLED under one op_id, so that G5 finds its waiver beside
	// the operation it waives.
	opID := "OP-" + randHex()
	op := func() map[string]any {
		return map[string]any{"_tier": t.Tier, "op_id": opID, "actor": actor, "package_id": KernelID, "version": KernelVersion,
			"manifest_hash": mhash, "archive_sha256": ahash}
	}
	done := op()
	done["action"], done["signature"] = "install", registry.SignatureWaived
	done["weakened_control"] = "G5 waived: the bootstrap kernel is built by cp-install itself, not signed"
	drafts = append(drafts,
		ledger.Draft{EventType: "INSTALL_STARTED", SubmissionID: KernelID, Decision: "STARTED",
			Reason: "install " + KernelID + " " + KernelVersion, Metadata: op()},
		ledger.Draft{EventType: "INSTALLED", SubmissionID: KernelID, Decision: "INSTALLED",
			Reason: "kernel installed by plane bootstrap", Metadata: done})
	if _, err := l.Append(ctx, drafts); err != nil {
		return TierResult{}, err
	}
	st, err := l.State(ctx)
	if err != nil {
		return TierResult{}, err
	}
	return TierResult{PlaneID: t.PlaneID, Tier: t.Tier, Ledger: t.Ledger, GenesisHash: g.EntryHash, ParentHash: parentHash,
		Head: st.Head, Entries: st.Size}, nil
}

func randHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// trustedKeys builds config/trusted_keys.json from key specs
// "[PURPOSE,...=]PUB" (no purpose given: package and checkpoint) and the
// plane's own checkpoint key (a verifier key, trusted for checkpoints only:
// a normal entry, so it survives every kernel release that keeps trust).
func trustedKeys(specs []string, stamp, checkpointKey string) ([]byte, []string, error) {
	var list []pkgsig.TrustedKey
	var names []string
	for _, s := range specs {
		purposes, pub, err := pkgsig.ParseKeySpec(s)
		if err != nil {
			return nil, nil, refuse("TRUSTED_KEYS_INVALID", 2, "--trust-key: %v", err)
		}
		if purposes == nil {
			purposes = pkgsig.DefaultPurposes
		}
		v, err := keys.Verifier(pub)
		if err != nil {
			return nil, nil, err
		}
		text, err := VerifierText(pub)
		if err != nil {
			return nil, nil, err
		}
		if slices.Contains(names, v.Name()) {
			return nil, nil, refuse("TRUSTED_KEYS_INVALID", 2, "--trust-key: two keys named %s", v.Name())
		}
		names = append(names, v.Name())
		list = append(list, pkgsig.TrustedKey{Name: v.Name(), Key: text, Purposes: purposes, AddedAt: stamp})
	}
	if checkpointKey != "" {
		v, err := keys.Verifier(checkpointKey)
		if err != nil {
			return nil, nil, err
		}
		if slices.Contains(names, v.Name()) {
			return nil, nil, refuse("TRUSTED_KEYS_INVALID", 2, "--trust-key: a key named %s is the plane's own checkpoint key's name", v.Name())
		}
		list = append(list, pkgsig.TrustedKey{Name: v.Name(), Key: checkpointKey, Purposes: []string{pkgsig.PurposeCheckpoint}, AddedAt: stamp})
	}
	b, err := pkgsig.MarshalTrusted(list)
	if err != nil {
		return nil, nil, err
	}
	return b, names, nil
}

// VerifierText returns the verifier key text of a key spec: the key
// itself, or the trimmed contents of the file it names.
func VerifierText(spec string) (string, error) {
	if _, err := keys.Verifier(spec); err != nil {
		return "", err
	}
	b, err := regfile.ReadFile(spec)
	if err != nil {
		return spec, nil // the spec is the key itself
	}
	return string(bytes.TrimSpace(b)), nil
}

// kernelArchive is the kernel as a deterministic package archive.
func kernelArchive(files map[string][]byte, manifestBytes []byte) ([]byte, error) {
	src, err := os.MkdirTemp("", "cp-kernel-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(src)
	paths := []string{"manifest.json"}
	if err := writeFile(filepath.Join(src, "manifest.json"), manifestBytes, 0o644); err != nil {
		return nil, err
	}
	for p, b := range files {
		if err := writeFile(filepath.Join(src, filepath.FromSlash(p)), b, 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	var buf bytes.Buffer
	if err := archive.Write(&buf, src, paths); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeFile creates path (and its directory) with mode perm, fsynced.
func writeFile(path string, b []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Create(path, b, perm)
}
