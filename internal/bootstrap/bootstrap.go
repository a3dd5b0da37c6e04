// Package bootstrap creates a plane (cp-install bootstrap): the three
// tiers, their ledgers opened by GENESIS, empty registries, and the kernel
// package (its config: governed roots and trusted keys) installed on every
// tier. It writes no operator configuration (DESIGN.md §4): until a config
// package is installed, internal/config's built-in defaults apply.
package bootstrap

import (
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
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/manifest"
)

// refuse and badArg are plane-level refusals (*plane.Error): bootstrap's
// codes are the plane's.
func refuse(code, format string, args ...any) *plane.Error {
	return plane.Refuse(code, format, args...)
}

func badArg(code, format string, args ...any) *plane.Error {
	return plane.BadArg(code, format, args...)
}

// Options configure Plane.
type Options struct {
	TrustKeys []string // verifier keys (or paths to them) trusted for packages and checkpoints
	// PlaneName is the plane's unique name (tier.json plane_name); ""
	// draws a random one. Its checkpoint key is made in KeyDir(PlaneName).
	PlaneName string
	Actor     plane.Actor
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

// Result is what Plane made.
type Result struct {
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

// Plane creates a plane at dir: the three tiers with their tier.json,
// ledgers opened by GENESIS entries (each lower tier's recording its parent
// ledger's head), empty registries and the kernel package (governed roots,
// trusted keys, schemas) installed on every tier; no operator configuration. It builds the plane in a sibling temporary
// directory and renames it into place, so dir either does not hold a plane
// or holds a whole one. It refuses a dir that already holds a plane
// (PLANE_EXISTS) or anything else (PLANE_DIR_NOT_EMPTY): running it twice
// never damages a plane. No absolute path is written anywhere.
func Plane(ctx context.Context, dir string, opts Options) (*Result, error) {
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
		opts.PlaneName = plane.NewPlaneName()
	}
	if !plane.ValidPlaneName(opts.PlaneName) {
		return nil, badArg("PLANE_NAME_INVALID", "--plane-name %q: want 1-63 lower-case letters, digits and hyphens, starting with a letter or digit", opts.PlaneName)
	}
	vkey, keyFile, undo, err := plane.MakeCheckpointKey(opts.PlaneName, dir)
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
	// From now on the plane's keys serve this directory and no other
	// (plane.KeyRoot). Should the binding fail, the plane's first use
	// binds it.
	if err := plane.BindRoot(opts.PlaneName, dir); err != nil {
		return res, fmt.Errorf("binding the key directory to the plane: %w", err)
	}
	return res, atomicfile.SyncDir(parent)
}

// checkTarget refuses a directory that holds a plane or anything else, or
// that lies inside a plane (planes do not nest).
func checkTarget(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "tier.json")); err == nil {
			return refuse("PLANE_NESTED", "%s is inside the plane at %s; planes do not nest", dir, d)
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
		return refuse("PLANE_EXISTS", "%s already holds a plane; bootstrap leaves it as it is", dir)
	}
	if len(entries) > 0 {
		return refuse("PLANE_DIR_NOT_EMPTY", "%s is not empty; bootstrap creates a plane only in a new or empty directory", dir)
	}
	return nil
}

func build(ctx context.Context, root string, opts Options, checkpointKey string) (*Result, error) {
	now := opts.Now().UTC()
	stamp := now.Format(time.RFC3339Nano)
	trusted, names, err := trustedKeys(opts.TrustKeys, stamp, checkpointKey)
	if err != nil {
		return nil, err
	}
	roots, err := plane.DefaultGovernedRootsJSON()
	if err != nil {
		return nil, err
	}
	files, err := plane.KernelFiles(roots, trusted)
	if err != nil {
		return nil, err
	}
	rel, err := plane.BuildRelease(plane.KernelVersion, files)
	if err != nil {
		return nil, err
	}
	m, mhash, mbytes, archiveBytes, ahash := rel.Manifest, rel.ManifestHash, rel.ManifestBytes, rel.Archive, rel.ArchiveSHA256
	res := &Result{KernelID: plane.KernelID, KernelVersion: plane.KernelVersion, ManifestHash: mhash, ArchiveSHA256: ahash, TrustedKeys: names,
		PlaneName: opts.PlaneName, CheckpointKey: checkpointKey}

	for _, d := range []string{"packages_store", "versions", "work_orders", "_staging", "planes/ho1/sessions"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	fwPath := plane.FrameworkPath(plane.KernelFramework, "1.0.0")
	specPath := plane.SpecPath(plane.KernelSpec, "1.0.0", false)
	if err := writeFile(filepath.Join(root, fwPath), []byte(plane.KernelFrameworkDocument), 0o444); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(root, specPath), []byte(plane.KernelSpecManifest), 0o444); err != nil {
		return nil, err
	}

	receipt := plane.Receipt{PackageID: plane.KernelID, Version: plane.KernelVersion, ManifestHash: mhash, ArchiveSHA256: ahash,
		PlaneID: "", InstalledAt: stamp, Actor: opts.Actor.Name, Signature: registry.SignatureWaived}
	for _, a := range m.Assets {
		receipt.Files = append(receipt.Files, plane.ReceiptFile{Path: a.Path, SHA256: a.SHA256, Size: a.Size})
	}
	parentHash, parentSize := "", int64(0)
	for _, t := range plane.Layout {
		tdir := filepath.Join(root, filepath.FromSlash(t.Dir))
		if err := os.MkdirAll(tdir, 0o755); err != nil {
			return nil, err
		}
		var parentLedger *string
		if t.Parent != "" {
			p := t.Parent
			parentLedger = &p
		}
		tier := plane.Tier{Tier: t.Tier, PlaneID: t.PlaneID, PlaneName: opts.PlaneName, LedgerPath: t.Ledger, ParentLedger: parentLedger, CreatedAt: stamp}
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
		if err := writeFile(filepath.Join(tdir, filepath.FromSlash(plane.StorePath(plane.KernelID, plane.KernelVersion))), archiveBytes, 0o444); err != nil {
			return nil, err
		}
		if _, err := trust.Load(tdir); err != nil {
			return nil, err // what we wrote must be what the gates will read
		}
		inst := filepath.Join(tdir, "installed", plane.KernelID)
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
		if err := registerKernel(ctx, tdir, t, m, mhash, ahash, now, opts.Actor.Name, fwPath, specPath); err != nil {
			return nil, err
		}
		tr, err := openLedgers(ctx, tdir, t, plane.SHA256(tj), parentHash, parentSize, mhash, ahash, opts.Actor, m.Assets)
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
func registerKernel(ctx context.Context, tdir string, t plane.TierLayout, m *manifest.Manifest, mhash, ahash string, now time.Time, actor, fwPath, specPath string) error {
	tables := []registry.Table{registry.Ownership, registry.Packages}
	if t.PlaneID == "ho3" {
		tables = append(tables, registry.Frameworks, registry.Specs)
	}
	return registry.UpdateMany(ctx, tdir, tables, func(map[string][]registry.Row) (map[string][]registry.Row, error) {
		out := map[string][]registry.Row{}
		for _, a := range m.Assets {
			out[registry.Ownership.File] = append(out[registry.Ownership.File], registry.Owner{Path: a.Path, PackageID: plane.KernelID,
				SHA256: a.SHA256, Size: a.Size, Classification: a.Classification, InstalledAt: now}.Row())
		}
		out[registry.Packages.File] = []registry.Row{registry.Package{ID: plane.KernelID, Version: plane.KernelVersion, ManifestHash: mhash,
			ArchiveSHA256: ahash, Status: registry.StatusInstalled, Signature: registry.SignatureWaived, InstalledAt: now, Actor: actor}.Row()}
		if t.PlaneID == "ho3" {
			out[registry.Frameworks.File] = []registry.Row{registry.Framework{ID: plane.KernelFramework, Title: "Control Plane kernel",
				Version: "1.0.0", Status: registry.StatusActive, Path: fwPath, SHA256: plane.SHA256([]byte(plane.KernelFrameworkDocument)),
				RegisteredAt: now, RegisteredBy: actor}.Row()}
			out[registry.Specs.File] = []registry.Row{registry.Spec{ID: plane.KernelSpec, FrameworkID: plane.KernelFramework,
				Title: "Control Plane kernel: core config and schemas", Version: "1.0.0", Status: registry.StatusActive,
				Path: specPath, SHA256: plane.SHA256([]byte(plane.KernelSpecManifest)), RegisteredAt: now, RegisteredBy: actor}.Row()}
		}
		return out, nil
	})
}

// openLedgers writes the tier's GENESIS (recording its parent's head and
// the hash of its tier.json, which G6 holds tier.json to) and the events
// of its creation, and returns the tier's ledger state.
func openLedgers(ctx context.Context, tdir string, t plane.TierLayout, tierHash, parentHash string, parentSize int64, mhash, ahash string, actor plane.Actor, assets []manifest.Asset) (TierResult, error) {
	l, _, err := plane.OpenLedger(tdir, plane.ForAppend, actor) // every append leaves the plane's checkpoint
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
			ledger.Draft{EventType: "FRAMEWORK_REGISTERED", SubmissionID: plane.KernelFramework, Decision: "REGISTERED", Reason: "plane bootstrap",
				Metadata: map[string]any{"_tier": t.Tier, "framework_id": plane.KernelFramework, "version": "1.0.0", "sha256": plane.SHA256([]byte(plane.KernelFrameworkDocument))}},
			ledger.Draft{EventType: "SPEC_REGISTERED", SubmissionID: plane.KernelSpec, Decision: "REGISTERED", Reason: "plane bootstrap",
				Metadata: map[string]any{"_tier": t.Tier, "spec_id": plane.KernelSpec, "framework_id": plane.KernelFramework, "version": "1.0.0", "sha256": plane.SHA256([]byte(plane.KernelSpecManifest))}})
	}
	// The kernel's install is an operation like any other: INSTALL_STARTED
	// then INSTALLED under one op_id, so that G5 finds its waiver beside
	// the operation it waives.
	opID := "OP-" + randHex()
	op := func() map[string]any {
		return map[string]any{"_tier": t.Tier, "op_id": opID, "actor": actor.Name, "package_id": plane.KernelID, "version": plane.KernelVersion,
			"manifest_hash": mhash, "archive_sha256": ahash}
	}
	done := op()
	done["action"], done["signature"] = "install", registry.SignatureWaived
	done["weakened_control"] = "G5 waived: the bootstrap kernel is built by cp-install itself, not signed"
	var added []string
	for _, a := range assets {
		added = append(added, a.Path)
	}
	slices.Sort(added)
	done[ledger.ChangedKey] = ledger.Changed{Added: added}.Metadata()
	drafts = append(drafts,
		ledger.Draft{EventType: "INSTALL_STARTED", SubmissionID: plane.KernelID, Decision: "STARTED",
			Reason: "install " + plane.KernelID + " " + plane.KernelVersion, Metadata: op()},
		ledger.Draft{EventType: "INSTALLED", SubmissionID: plane.KernelID, Decision: "INSTALLED",
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
	var list []trust.Key
	var names []string
	for _, s := range specs {
		purposes, pub, err := trust.ParseKeySpec(s)
		if err != nil {
			return nil, nil, badArg("TRUSTED_KEYS_INVALID", "--trust-key: %v", err)
		}
		if purposes == nil {
			purposes = trust.DefaultPurposes
		}
		v, err := keys.Verifier(pub)
		if err != nil {
			return nil, nil, err
		}
		text, err := trust.VerifierText(pub)
		if err != nil {
			return nil, nil, err
		}
		if slices.Contains(names, v.Name()) {
			return nil, nil, badArg("TRUSTED_KEYS_INVALID", "--trust-key: two keys named %s", v.Name())
		}
		names = append(names, v.Name())
		list = append(list, trust.Key{Name: v.Name(), Key: text, Purposes: purposes, AddedAt: stamp})
	}
	if checkpointKey != "" {
		v, err := keys.Verifier(checkpointKey)
		if err != nil {
			return nil, nil, err
		}
		if slices.Contains(names, v.Name()) {
			return nil, nil, badArg("TRUSTED_KEYS_INVALID", "--trust-key: a key named %s is the plane's own checkpoint key's name", v.Name())
		}
		list = append(list, trust.Key{Name: v.Name(), Key: checkpointKey, Purposes: []string{trust.PurposeCheckpoint}, AddedAt: stamp})
	}
	b, err := trust.Marshal(list)
	if err != nil {
		return nil, nil, err
	}
	return b, names, nil
}

// writeFile creates path (and its directory) with mode perm, fsynced.
func writeFile(path string, b []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Create(path, b, perm)
}
