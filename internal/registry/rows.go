package registry

import (
	"strconv"
	"time"
)

// Framework is a row of frameworks_registry.csv.
type Framework struct {
	ID           string // framework_id
	Title        string
	Version      string
	Status       string // StatusActive, StatusDeprecated or StatusRetired
	Path         string // plane-relative
	SHA256       string // "sha256:<hex>"
	RegisteredAt time.Time
	RegisteredBy string
}

// Spec is a row of specs_registry.csv.
type Spec struct {
	ID           string // spec_id
	FrameworkID  string
	Title        string
	Version      string
	Status       string // StatusActive, StatusDeprecated or StatusRetired
	Path         string // plane-relative
	SHA256       string // "sha256:<hex>"
	RegisteredAt time.Time
	RegisteredBy string
}

// Prompt is a row of prompts_registry.csv: a registered prompt pack.
type Prompt struct {
	ID           string // prompt_pack_id
	PackageID    string // the package that installed it
	Path         string // plane-relative
	SHA256       string // "sha256:<hex>"
	Version      string
	Status       string // StatusActive, StatusDeprecated or StatusRetired
	RegisteredAt time.Time
}

// Owner is a row of file_ownership.csv: the one package that owns a file.
type Owner struct {
	Path           string // plane-relative
	PackageID      string
	SHA256         string // "sha256:<hex>" of the installed bytes
	Size           int64
	Classification string
	InstalledAt    time.Time
}

// Package is a row of packages_state.csv.
type Package struct {
	ID            string // package_id
	Version       string
	ManifestHash  string // "sha256:<hex>" (DESIGN.md §6)
	ArchiveSHA256 string // "sha256:<hex>"
	Status        string // StatusInstalled or StatusFailed
	Signature     string // "signed:<key name>" or SignatureWaived
	InstalledAt   time.Time
	Actor         string
	WorkOrderID   string // may be empty
}

// ParseFramework checks r as a row of Frameworks and converts it.
func ParseFramework(r Row) (Framework, error) {
	if err := checkOne(Frameworks, r); err != nil {
		return Framework{}, err
	}
	return Framework{ID: r["framework_id"], Title: r["title"], Version: r["version"], Status: r["status"],
		Path: r["path"], SHA256: r["sha256"], RegisteredAt: mustTime(r["registered_at"]), RegisteredBy: r["registered_by"]}, nil
}

// Row returns f as a row of Frameworks.
func (f Framework) Row() Row {
	return Row{"framework_id": f.ID, "title": f.Title, "version": f.Version, "status": f.Status,
		"path": f.Path, "sha256": f.SHA256, "registered_at": formatTime(f.RegisteredAt), "registered_by": f.RegisteredBy}
}

// ParseSpec checks r as a row of Specs and converts it.
func ParseSpec(r Row) (Spec, error) {
	if err := checkOne(Specs, r); err != nil {
		return Spec{}, err
	}
	return Spec{ID: r["spec_id"], FrameworkID: r["framework_id"], Title: r["title"], Version: r["version"], Status: r["status"],
		Path: r["path"], SHA256: r["sha256"], RegisteredAt: mustTime(r["registered_at"]), RegisteredBy: r["registered_by"]}, nil
}

// Row returns s as a row of Specs.
func (s Spec) Row() Row {
	return Row{"spec_id": s.ID, "framework_id": s.FrameworkID, "title": s.Title, "version": s.Version, "status": s.Status,
		"path": s.Path, "sha256": s.SHA256, "registered_at": formatTime(s.RegisteredAt), "registered_by": s.RegisteredBy}
}

// ParsePrompt checks r as a row of Prompts and converts it.
func ParsePrompt(r Row) (Prompt, error) {
	if err := checkOne(Prompts, r); err != nil {
		return Prompt{}, err
	}
	return Prompt{ID: r["prompt_pack_id"], PackageID: r["package_id"], Path: r["path"], SHA256: r["sha256"],
		Version: r["version"], Status: r["status"], RegisteredAt: mustTime(r["registered_at"])}, nil
}

// Row returns p as a row of Prompts.
func (p Prompt) Row() Row {
	return Row{"prompt_pack_id": p.ID, "package_id": p.PackageID, "path": p.Path, "sha256": p.SHA256,
		"version": p.Version, "status": p.Status, "registered_at": formatTime(p.RegisteredAt)}
}

// ParseOwner checks r as a row of Ownership and converts it.
func ParseOwner(r Row) (Owner, error) {
	if err := checkOne(Ownership, r); err != nil {
		return Owner{}, err
	}
	n, _ := strconv.ParseInt(r["size"], 10, 64) // checked
	return Owner{Path: r["path"], PackageID: r["package_id"], SHA256: r["sha256"], Size: n,
		Classification: r["classification"], InstalledAt: mustTime(r["installed_at"])}, nil
}

// Row returns o as a row of Ownership.
func (o Owner) Row() Row {
	return Row{"path": o.Path, "package_id": o.PackageID, "sha256": o.SHA256, "size": strconv.FormatInt(o.Size, 10),
		"classification": o.Classification, "installed_at": formatTime(o.InstalledAt)}
}

// ParsePackage checks r as a row of Packages and converts it.
func ParsePackage(r Row) (Package, error) {
	if err := checkOne(Packages, r); err != nil {
		return Package{}, err
	}
	return Package{ID: r["package_id"], Version: r["version"], ManifestHash: r["manifest_hash"], ArchiveSHA256: r["archive_sha256"],
		Status: r["status"], Signature: r["signature"], InstalledAt: mustTime(r["installed_at"]), Actor: r["actor"],
		WorkOrderID: r["work_order_id"]}, nil
}

// Row returns p as a row of Packages.
func (p Package) Row() Row {
	return Row{"package_id": p.ID, "version": p.Version, "manifest_hash": p.ManifestHash, "archive_sha256": p.ArchiveSHA256,
		"status": p.Status, "signature": p.Signature, "installed_at": formatTime(p.InstalledAt), "actor": p.Actor,
		"work_order_id": p.WorkOrderID}
}

func checkOne(t Table, r Row) error {
	if p := checkShape(t, r); p != "" {
		return invalidf(t.name(), 0, "%s", p)
	}
	return nil
}

// formatTime is the one way times are written: RFC 3339, UTC, as short as
// the value allows.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// mustTime parses a time already checked by timestamp.
func mustTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t.UTC()
}
