// Package register holds the rules of the plane's framework and spec
// registries (cp-pkg register-framework, register-spec, check-framework):
// the same document again changes nothing, a changed one needs a higher
// version, a framework must keep every MUST invariant of the version it
// replaces (else BREAKING_CHANGE), a spec's framework must be registered
// and active, a registered version's document never changes. Every
// outcome, refusals included, is recorded in HO3's governance ledger.
//
// It lives beside internal/registry, not in it: the registry is the CSV
// tables' storage (format, lock, journal-aware updates) that gate,
// install and bootstrap share; these rules also need the framework and
// spec parsers and the plane's ledger, which that storage must not
// depend on.
package register

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/framework"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/spec"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/manifest"
)

// Outcome is what a registration answers: its result, and the HO3 ledger
// entry that recorded it (LedgerEntryID "" when nothing was recorded: the
// same document again). A refusal is an *Error whose ErrorResult is the
// result, returned beside an Outcome that names the entry recording it.
type Outcome struct {
	Result        any
	LedgerEntryID string
	Seq           int64
}

// Guard, when not nil, is asked before a registration writes anything,
// with the plane-relative paths it would write (the registered document
// and the registry): an error refuses the registration, recorded as its
// refusal (cp-pkg register-* --wo: G2).
type Guard func(ctx context.Context, paths []string) error

// guarded asks guard about paths; a refusal comes back as an *Error with
// the guard's code (GUARD_REFUSED when it has none) and details.
func guarded(ctx context.Context, guard Guard, paths []string) (*Error, error) {
	if guard == nil {
		return nil, nil
	}
	err := guard(ctx, paths)
	if err == nil {
		return nil, nil
	}
	var coded interface {
		Code() string
		ErrorDetails() map[string]any
	}
	if !errors.As(err, &coded) {
		return nil, err // not a judgement: the plane could not be read
	}
	return errorf(coded.Code(), "%s", err.Error()).WithDetails(coded.ErrorDetails()), nil
}

// recorded answers with result and the ledger entry that recorded it. The
// registry was written first: if recording fails, the registration stands
// without its entry and the error says so (install's journal, next, is
// what makes such pairs atomic).
func recorded(ctx context.Context, root string, actor plane.Actor, result any, err error, d ledger.Draft) (Outcome, error) {
	e, lerr := plane.Record(ctx, root, actor, d)
	if lerr != nil {
		return Outcome{}, errors.Join(err, lerr)
	}
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) && ce.result == nil {
			ce.result = result
		}
		return Outcome{LedgerEntryID: e.ID, Seq: e.Seq}, err
	}
	return Outcome{Result: result, LedgerEntryID: e.ID, Seq: e.Seq}, nil
}

// Framework registers the framework document at src, which must be
// framework id, in the HO3 plane at root on behalf of actor: a new id, or
// a newer version of one whose MUST invariants are all kept. The same
// document again changes nothing and records nothing. Refusals
// (VERSION_NOT_NEWER, BREAKING_CHANGE, VERSION_EXISTS, HASH_MISMATCH) are
// recorded as FRAMEWORK_REGISTRATION_REFUSED, a registration as
// FRAMEWORK_REGISTERED; nothing is written when the plane cannot record.
func Framework(ctx context.Context, root string, actor plane.Actor, id, src string, guard Guard) (Outcome, error) {
	if err := plane.CheckRecord(ctx, root, actor); err != nil {
		return Outcome{}, err // the registry is written first: refuse before it
	}
	fw, doc, err := readFramework(src, id)
	if err != nil {
		return Outcome{}, err
	}
	path := plane.FrameworkPath(id, fw.Version)
	sha := plane.SHA256(doc)
	result := map[string]any{"framework_id": id, "version": fw.Version, "path": path, "sha256": sha, "invariants": len(fw.Invariants), "changed": false,
		"metadata_from": fw.Sources}
	if len(fw.Notes) > 0 {
		result["notes"] = fw.Notes
	}
	refusal, err := guarded(ctx, guard, []string{path, registry.Dir + "/" + registry.Frameworks.File})
	if err != nil {
		return Outcome{}, err
	}
	if refusal == nil {
		err = registry.Update(ctx, root, registry.Frameworks, func(rows []registry.Row) ([]registry.Row, error) {
			old := find(rows, "framework_id", id)
			if old != nil {
				result["previous_version"] = old["version"]
				if old["sha256"] == sha {
					return rows, nil // the same document: nothing to do
				}
				if manifest.CompareVersions(fw.Version, old["version"]) <= 0 {
					refusal = errorf("VERSION_NOT_NEWER", "framework %s %s is registered; a changed document needs a higher version than %s (got %s)", id, old["version"], old["version"], fw.Version)
					return nil, refusal
				}
				prev, err := registeredFramework(root, old)
				if err != nil {
					return nil, err
				}
				if removed := framework.Removed(prev, fw); len(removed) > 0 {
					result["removed"] = removed
					refusal = errorf("BREAKING_CHANGE", "%s %s removes %d MUST invariant(s) of %s, e.g. %q: register it under a new framework id", id, fw.Version, len(removed), old["version"], removed[0])
					return nil, refusal
				}
			}
			if err := writeRegistered(root, path, doc); err != nil {
				return nil, err
			}
			row := registry.Framework{ID: id, Title: fw.Title, Version: fw.Version, Status: fw.Status, Path: path, SHA256: sha,
				RegisteredAt: time.Now().UTC(), RegisteredBy: actor.Name}.Row()
			result["changed"] = true
			return replace(rows, "framework_id", id, row), nil
		})
	}
	if refusal != nil {
		return recorded(ctx, root, actor, result, refusal, ledger.Draft{EventType: "FRAMEWORK_REGISTRATION_REFUSED", SubmissionID: id,
			Decision: "DENIED", Reason: refusal.reason(), Metadata: map[string]any{"framework_id": id, "version": fw.Version, "sha256": sha}})
	}
	if err != nil {
		return Outcome{}, err
	}
	if result["changed"] == false {
		return Outcome{Result: result}, nil
	}
	return recorded(ctx, root, actor, result, nil, ledger.Draft{EventType: "FRAMEWORK_REGISTERED", SubmissionID: id, Decision: "REGISTERED",
		Reason: "framework registered", Metadata: map[string]any{"framework_id": id, "version": fw.Version, "sha256": sha, "path": path}})
}

// Spec registers the spec manifest in directory src (manifest.json or
// manifest.yaml), which must be spec id, whose framework is registered and
// active; as Framework, a changed manifest needs a higher version.
// Refusals (FRAMEWORK_NOT_FOUND, FRAMEWORK_INACTIVE, VERSION_NOT_NEWER,
// VERSION_EXISTS) are recorded as SPEC_REGISTRATION_REFUSED, a
// registration as SPEC_REGISTERED.
func Spec(ctx context.Context, root string, actor plane.Actor, id, src string, guard Guard) (Outcome, error) {
	if err := plane.CheckRecord(ctx, root, actor); err != nil {
		return Outcome{}, err // the registry is written first: refuse before it
	}
	b, isYAML, err := readSpec(src)
	if err != nil {
		return Outcome{}, err
	}
	s, err := spec.Parse(b, isYAML)
	if err != nil {
		return Outcome{}, err
	}
	if s.SpecID != id {
		return Outcome{}, invalidf("SPEC_INVALID", "the manifest is spec %s, not %s", s.SpecID, id)
	}
	path := plane.SpecPath(id, s.Version, isYAML)
	sha := plane.SHA256(b)
	result := map[string]any{"spec_id": id, "framework_id": s.FrameworkID, "version": s.Version, "path": path, "sha256": sha, "assets": s.Assets, "changed": false,
		"status": s.Status}
	refs, err := s.Refs()
	if err != nil {
		return Outcome{}, err
	}
	if s.PlaneID != "" {
		result["plane_id"] = s.PlaneID
	}
	if s.Tier != "" {
		result["tier"] = s.Tier
	}
	refusal, err := guarded(ctx, guard, []string{path, registry.Dir + "/" + registry.Specs.File})
	if err != nil {
		return Outcome{}, err
	}
	if refusal == nil && s.PlaneID != "" {
		if refusal, err = checkPlaneID(root, id, s.PlaneID); err != nil {
			return Outcome{}, err
		}
	}
	if refusal == nil {
		err = registry.UpdateMany(ctx, root, []registry.Table{registry.Specs, registry.Frameworks}, func(t map[string][]registry.Row) (map[string][]registry.Row, error) {
			fw := find(t[registry.Frameworks.File], "framework_id", s.FrameworkID)
			switch {
			case fw == nil:
				refusal = errorf("FRAMEWORK_NOT_FOUND", "spec %s answers to framework %s, which is not registered", id, s.FrameworkID)
			case fw["status"] == registry.StatusDraft && s.Status == registry.StatusDraft:
				// a draft spec may answer to a draft framework: neither is law yet
			case fw["status"] != registry.StatusActive:
				refusal = errorf("FRAMEWORK_INACTIVE", "framework %s is %s", s.FrameworkID, fw["status"])
				if fw["status"] == registry.StatusDraft {
					refusal.WithHint("register the spec as status: draft, or a version of the framework that is active")
				}
			}
			if refusal == nil {
				checked, unchecked, r := checkRefs(id, refs, t[registry.Specs.File], t[registry.Frameworks.File])
				result["dependencies_checked"], result["dependencies_unchecked"], refusal = checked, unchecked, r
			}
			rows := t[registry.Specs.File]
			if old := find(rows, "spec_id", id); refusal == nil && old != nil {
				result["previous_version"] = old["version"]
				if old["sha256"] == sha {
					return map[string][]registry.Row{}, nil
				}
				if manifest.CompareVersions(s.Version, old["version"]) <= 0 {
					refusal = errorf("VERSION_NOT_NEWER", "spec %s %s is registered; a changed manifest needs a higher version than %s (got %s)", id, old["version"], old["version"], s.Version)
				}
			}
			if refusal != nil {
				return nil, refusal
			}
			if err := writeRegistered(root, path, b); err != nil {
				return nil, err
			}
			row := registry.Spec{ID: id, FrameworkID: s.FrameworkID, Title: s.Title, Version: s.Version, Status: s.Status, Path: path,
				SHA256: sha, RegisteredAt: time.Now().UTC(), RegisteredBy: actor.Name}.Row()
			result["changed"] = true
			return map[string][]registry.Row{registry.Specs.File: replace(rows, "spec_id", id, row)}, nil
		})
	}
	if refusal != nil {
		return recorded(ctx, root, actor, result, refusal, ledger.Draft{EventType: "SPEC_REGISTRATION_REFUSED", SubmissionID: id,
			Decision: "DENIED", Reason: refusal.reason(), Metadata: map[string]any{"spec_id": id, "framework_id": s.FrameworkID, "version": s.Version}})
	}
	if err != nil {
		return Outcome{}, err
	}
	if result["changed"] == false {
		return Outcome{Result: result}, nil
	}
	return recorded(ctx, root, actor, result, nil, ledger.Draft{EventType: "SPEC_REGISTERED", SubmissionID: id, Decision: "REGISTERED",
		Reason: "spec registered", Metadata: map[string]any{"spec_id": id, "framework_id": s.FrameworkID, "version": s.Version, "sha256": sha, "path": path}})
}

// checkPlaneID refuses a spec whose CPv2 plane_id is not the plane at root:
// its plane_id (the tier name, in any case) or its plane_name.
func checkPlaneID(root, id, planeID string) (*Error, error) {
	t, err := plane.ReadTier(root)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(planeID, t.PlaneID) || (t.PlaneName != "" && planeID == t.PlaneName) {
		return nil, nil
	}
	name := ""
	if t.PlaneName != "" {
		name = " (" + t.PlaneName + ")"
	}
	return errorf("PLANE_MISMATCH", "spec %s is for plane %q; this is plane %s%s", id, planeID, t.PlaneID, name).
		WithHint("set plane_id to %s, or register the spec in the plane it names", t.PlaneID), nil
}

// checkRefs checks a spec's dependencies that name our specs and
// frameworks against the registries: each must be registered, at a
// version its constraint allows. Package dependencies and others are
// returned unchecked (a package comes after its spec; G1 checks a
// package's own dependencies when it is installed).
func checkRefs(id string, refs []spec.Ref, specs, fws []registry.Row) (checked, unchecked []string, refusal *Error) {
	checked, unchecked = []string{}, []string{}
	for _, r := range refs {
		var row registry.Row
		switch r.Kind {
		case spec.RefSpec:
			if row = find(specs, "spec_id", r.ID); row == nil {
				return nil, nil, errorf("SPEC_NOT_FOUND", "spec %s depends on spec %s, which is not registered", id, r.ID).
					WithHint("register %s first", r.ID)
			}
		case spec.RefFramework:
			if row = find(fws, "framework_id", r.ID); row == nil {
				return nil, nil, errorf("FRAMEWORK_NOT_FOUND", "spec %s depends on framework %s, which is not registered", id, r.ID).
					WithHint("register %s first", r.ID)
			}
		default:
			unchecked = append(unchecked, r.Text)
			continue
		}
		if !r.Allows(row["version"]) {
			return nil, nil, errorf("DEPENDENCY_VERSION", "spec %s depends on %s@%s; %s is registered", id, r.ID, r.Constraint, row["version"])
		}
		checked = append(checked, r.Text)
	}
	return checked, unchecked, nil
}

// CheckFramework compares a candidate framework document with the
// registered one and records FRAMEWORK_CHECKED: a MUST invariant removed
// is a breaking change (BREAKING_CHANGE, carrying the result), a new id
// FRAMEWORK_NOT_FOUND.
func CheckFramework(ctx context.Context, root string, actor plane.Actor, id, src string) (Outcome, error) {
	next, _, err := readFramework(src, id)
	if err != nil {
		return Outcome{}, err
	}
	rows, err := registry.Read(root, registry.Frameworks)
	if err != nil {
		return Outcome{}, err
	}
	old := find(rows, "framework_id", id)
	if old == nil {
		return Outcome{}, errorf("FRAMEWORK_NOT_FOUND", "framework %s is not registered", id)
	}
	prev, err := registeredFramework(root, old)
	if err != nil {
		return Outcome{}, err
	}
	removed := framework.Removed(prev, next)
	added := framework.Removed(next, prev)
	result := map[string]any{"framework_id": id, "registered_version": old["version"], "candidate_version": next.Version,
		"breaking": len(removed) > 0, "removed": nonNil(removed), "added": nonNil(added)}
	decision, reason := "COMPATIBLE", "every MUST invariant is kept"
	var verdict error
	if len(removed) > 0 {
		decision, reason = "BREAKING", "MUST invariants removed"
		verdict = errorf("BREAKING_CHANGE", "%s %s removes %d MUST invariant(s) of %s, e.g. %q", id, next.Version, len(removed), old["version"], removed[0])
	}
	return recorded(ctx, root, actor, result, verdict, ledger.Draft{EventType: "FRAMEWORK_CHECKED", SubmissionID: id, Decision: decision,
		Reason: reason, Metadata: map[string]any{"framework_id": id, "registered_version": old["version"], "candidate_version": next.Version, "removed": anySlice(removed)}})
}

// readFramework reads and parses a framework document, which must be the
// framework named id.
func readFramework(src, id string) (*framework.Framework, []byte, error) {
	doc, err := regfile.ReadFile(src)
	if err != nil {
		return nil, nil, err
	}
	fw, err := framework.ParseNamed(src, doc)
	if err != nil {
		return nil, nil, err
	}
	if fw.ID != id {
		return nil, nil, invalidf("FRAMEWORK_INVALID", "the document is framework %s, not %s", fw.ID, id)
	}
	return fw, doc, nil
}

// registeredFramework reads a registered framework, checking its bytes are
// the registered ones.
func registeredFramework(root string, row registry.Row) (*framework.Framework, error) {
	b, err := regfile.ReadFile(filepath.Join(root, filepath.FromSlash(row["path"])))
	if err != nil {
		return nil, err
	}
	if got := plane.SHA256(b); got != row["sha256"] {
		return nil, errorf("HASH_MISMATCH", "%s changed since it was registered (%s, registered %s)", row["path"], got, row["sha256"])
	}
	// Stored as ID/VERSION.md: the registry's id stands in for the file name
	// a CPv2 document may have taken its id from.
	return framework.ParseNamed(row["framework_id"]+".md", b)
}

// readSpec reads DIR/manifest.json or DIR/manifest.yaml (exactly one).
func readSpec(dir string) ([]byte, bool, error) {
	j, jerr := regfile.ReadFile(filepath.Join(dir, "manifest.json"))
	y, yerr := regfile.ReadFile(filepath.Join(dir, "manifest.yaml"))
	switch {
	case jerr == nil && yerr == nil:
		return nil, false, invalidf("SPEC_INVALID", "%s holds both manifest.json and manifest.yaml", dir)
	case jerr == nil:
		return j, false, nil
	case yerr == nil:
		return y, true, nil
	case errors.Is(jerr, fs.ErrNotExist) && errors.Is(yerr, fs.ErrNotExist):
		return nil, false, invalidf("SPEC_INVALID", "%s holds no manifest.json or manifest.yaml", dir)
	}
	return nil, false, errors.Join(jerr, yerr)
}

// writeRegistered stores a registered document, read-only. An existing file
// must hold the same bytes: registered versions never change.
func writeRegistered(root, rel string, b []byte) error {
	path := filepath.Join(root, filepath.FromSlash(rel))
	if old, err := regfile.ReadFile(path); err == nil {
		if string(old) != string(b) {
			return errorf("VERSION_EXISTS", "%s already holds a different document of this version", rel)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o444)
}

func find(rows []registry.Row, key, val string) registry.Row {
	for _, r := range rows {
		if r[key] == val {
			return r
		}
	}
	return nil
}

func replace(rows []registry.Row, key, val string, row registry.Row) []registry.Row {
	out := make([]registry.Row, 0, len(rows)+1)
	for _, r := range rows {
		if r[key] != val {
			out = append(out, r)
		}
	}
	return append(out, row)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
