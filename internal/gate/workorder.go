package gate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/manifest"
)

// Codes of G2 and G3 besides the work-order refusals (WO_NOT_APPROVED,
// WO_PAYLOAD_CHANGED, WO_EXPIRED, WO_CLOSED, ...) that G2 passes through.
const (
	CodeScopeViolation   = "SCOPE_VIOLATION"                // a path the action touches is outside scope.paths
	CodeWORequired       = "WO_REQUIRED"                    // governance requires a work order and none was given
	CodeDependencyChange = "DEPENDENCY_CHANGE_UNAUTHORIZED" // dependencies change without a dependency_add work order
	CodeWeakenedControl  = "WEAKENED_CONTROL"               // a warning: dependencies changed with no work order to judge them
)

// WOAction is one action G2 and G3 judge: what it touches and under which
// work order.
type WOAction struct {
	WorkOrder string   // the --wo id, or ""
	Required  bool     // config/governance.json says work_orders: required
	Paths     []string // every plane-relative path the action adds, replaces or removes
	// Replay: the action is a no-op already recorded under WorkOrder (the
	// same version and hash installed under it): after WO_COMPLETED, only
	// such a replay passes G2, and only when ReplayOf names an entry of
	// HO3's ledger that recorded it under that work order.
	Replay   bool
	ReplayOf ReplayRecord
	// G3: the package's dependencies, and the installed version's
	// (Upgrade false: nothing of the package is installed).
	Deps, PrevDeps []string
	Upgrade        bool
}

// ReplayRecord is the entry that recorded an action under a work order,
// as G2 finds it in HO3's ledger (its work_order_id added): the event
// type, its submission id and metadata values.
type ReplayRecord struct {
	EventType string
	Subject   string
	Metadata  map[string]string
}

// recorded reports whether HO3's ledger of the plane at root holds the
// entry rr under work order wo, and its seq.
func (rr ReplayRecord) recorded(ctx context.Context, root, wo string) (int64, bool, error) {
	if rr.EventType == "" {
		return 0, false, nil
	}
	l, _, err := plane.OpenLedger(root, plane.ForReading, plane.Actor{})
	if err != nil {
		return 0, false, err
	}
	defer l.Close()
	md := map[string]string{"work_order_id": wo}
	for k, v := range rr.Metadata {
		md[k] = v
	}
	var seq int64
	found := false
	err = l.Find(ctx, ledger.Query{EventTypes: []string{rr.EventType}, Subject: rr.Subject, Metadata: md}, func(e *ledger.Entry) bool {
		seq, found = e.Seq, true
		return false
	})
	return seq, found, err
}

// InstallAction is what installing m into the HO3 plane at root under
// work order wo ("" for none) is for G2 and G3: the governance in force
// (work_orders required or not), every asset path of m and every file of
// the installed version that m drops, m's dependencies and the installed
// version's, and Replay when m's version and manifest hash are installed
// already under wo (the caller clears it when the install would write
// anyway, as a forced reinstall does).
func InstallAction(root string, m *manifest.Manifest, wo string) (WOAction, error) {
	gov, _, err := config.Governance(root)
	if err != nil {
		return WOAction{}, err
	}
	a := WOAction{WorkOrder: wo, Required: gov.WorkOrdersRequired(), Deps: m.Dependencies, Paths: []string{}}
	declared := make(map[string]bool, len(m.Assets))
	for _, as := range m.Assets {
		declared[as.Path] = true
		a.Paths = append(a.Paths, as.Path)
	}
	rows, err := registry.Read(root, registry.Packages)
	if err != nil {
		return a, err
	}
	var installed registry.Row
	for _, r := range rows {
		if r["package_id"] == m.PackageID && r["status"] == registry.StatusInstalled {
			installed = r
		}
	}
	if installed == nil {
		return a, nil
	}
	owners, err := registry.Read(root, registry.Ownership)
	if err != nil {
		return a, err
	}
	for _, o := range owners {
		if o["package_id"] == m.PackageID && !declared[o["path"]] {
			a.Paths = append(a.Paths, o["path"])
		}
	}
	b, err := regfile.ReadNoFollow(filepath.Join(root, filepath.FromSlash(plane.ManifestPath(m.PackageID))))
	if err != nil {
		return a, err
	}
	prev, err := manifest.Parse(b)
	if err != nil {
		return a, err
	}
	a.PrevDeps, a.Upgrade = prev.Dependencies, true
	mhash, err := m.Hash()
	if err != nil {
		return a, err
	}
	a.Replay = wo != "" && installed["version"] == m.Version && installed["manifest_hash"] == mhash && installed["work_order_id"] == wo
	a.ReplayOf = ReplayRecord{EventType: "INSTALLED", Subject: m.PackageID,
		Metadata: map[string]string{"package_id": m.PackageID, "version": m.Version, "manifest_hash": mhash}}
	return a, nil
}

// WorkOrderGates runs G2, then G3 with G2's approval, for action a.
func WorkOrderGates(ctx context.Context, root string, a WOAction) (g2, g3 *Result, err error) {
	g2, ap, err := G2(ctx, root, a)
	if err != nil {
		return nil, nil, err
	}
	return g2, G3(a, ap), nil
}

// G2 judges a work order for an action: approved (workorder.Approved:
// signed by a key trusted for work_order now, payload unchanged, not
// expired, a state that allows work) and every path of a.Paths inside its
// scope (SCOPE_VIOLATION names each path outside). Without a work order it
// does not apply, unless one is required (WO_REQUIRED). It returns the
// approval when it passed with one. The error is for a plane that cannot
// be read (a ledger that does not open); refusals are in the result.
func G2(ctx context.Context, root string, a WOAction) (*Result, *workorder.Approval, error) {
	r := newResult("G2")
	if a.WorkOrder == "" {
		if a.Required {
			r.fail(CodeWORequired, "config/governance.json", "work_orders is required on this plane: the action needs --wo WO-ID")
			return r.done(""), nil, nil
		}
		r.Details["applicable"] = false
		r.Message = "not applicable: no work order given (--wo WO-ID); G2 judges a work order's approval, payload and scope"
		return r.done(""), nil, nil
	}
	r.Details["work_order_id"] = a.WorkOrder
	ap, err := workorder.Approved(ctx, root, a.WorkOrder)
	if err != nil {
		var we *workorder.Error
		if !errors.As(err, &we) {
			var coded interface{ Code() string }
			if errors.As(err, &coded) { // NOT_REGULAR and the like: a finding, fail closed
				r.fail(coded.Code(), workorder.FilePath(a.WorkOrder), "%v", err)
				return r.done(""), nil, nil
			}
			return nil, nil, err
		}
		if we.Code() == workorder.CodeClosed && we.ErrorDetails()["state"] == workorder.StateCompleted && a.Replay {
			// A no-op is a replay only of what HO3's ledger recorded under
			// this work order, not of what a registry row says.
			seq, ok, err := a.ReplayOf.recorded(ctx, root, a.WorkOrder)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				r.Details["replay"], r.Details["replay_seq"] = true, seq
				r.Message = fmt.Sprintf("work order %s is completed; the action is a no-op replay of what was done under it (%s, HO3 seq %d)", a.WorkOrder, a.ReplayOf.EventType, seq)
				return r.done(""), nil, nil
			}
			r.fail(workorder.CodeClosed, a.WorkOrder, "%v; the action would change nothing, but no %s under it in HO3's ledger records it, so it is no replay", we, cmp.Or(a.ReplayOf.EventType, "entry"))
			return r.done(""), nil, nil
		}
		r.fail(we.Code(), a.WorkOrder, "%v", err)
		return r.done(""), nil, nil
	}
	r.Details["state"], r.Details["payload_hash"], r.Details["approval_seq"] = ap.State, ap.PayloadHash, ap.Seq
	scope := ap.WorkOrder.Scope.Matcher()
	for _, p := range a.Paths {
		if !cleanRel(p) { // "lib/x/../../etc" would match "lib/x/**"
			r.fail(CodeScopeViolation, p, "%q is not a clean plane-relative path, so no scope covers it", p)
		} else if !scope.Covers(p) {
			r.fail(CodeScopeViolation, p, "%s is outside work order %s's scope.paths", p, a.WorkOrder)
		}
	}
	r.Details["paths"] = len(a.Paths)
	return r.done(fmt.Sprintf("work order %s approved (HO3 seq %d); %d path(s) in scope", a.WorkOrder, ap.Seq, len(a.Paths))), ap, nil
}

// G3 judges an install's dependency change: when a work order is given or
// required, dependencies that differ from the installed version's need a
// work order of type dependency_add (DEPENDENCY_CHANGE_UNAUTHORIZED). With
// no work order and none required the change passes with a
// WEAKENED_CONTROL warning, which the install records. ap is G2's
// approval (nil when G2 did not pass with one: G3 then fails too, as the
// work order's type is not known to be trusted).
func G3(a WOAction, ap *workorder.Approval) *Result {
	r := newResult("G3")
	added, removed := diffDeps(a.PrevDeps, a.Deps)
	changed := a.Upgrade && (len(added) > 0 || len(removed) > 0)
	if changed {
		r.Details["dependencies_added"], r.Details["dependencies_removed"] = added, removed
	}
	if a.WorkOrder == "" && !a.Required {
		if changed {
			r.warn(CodeWeakenedControl, "dependencies", "dependencies change (+%v -%v) with no work order to authorise them", added, removed)
		}
		r.Details["applicable"] = false
		r.Message = "no work order given or required: dependency changes are recorded, not judged"
		return r.done("")
	}
	if !changed {
		return r.done("dependencies unchanged")
	}
	switch {
	case ap == nil:
		r.fail(CodeDependencyChange, "dependencies", "dependencies change (+%v -%v) and no approved work order authorises it", added, removed)
	case ap.WorkOrder.Type != "dependency_add":
		r.fail(CodeDependencyChange, "dependencies", "dependencies change (+%v -%v): work order %s is %s, not dependency_add", added, removed, ap.ID, ap.WorkOrder.Type)
	}
	return r.done(fmt.Sprintf("dependency change authorised by dependency_add work order %s", a.WorkOrder))
}

// cleanRel reports whether p is a clean slash path relative to the plane
// root: not empty, not absolute, no ".", ".." or empty segment, no
// backslash.
func cleanRel(p string) bool {
	return p != "" && path.Clean(p) == p && !path.IsAbs(p) && p != ".." && !strings.HasPrefix(p, "../") && !strings.Contains(p, `\`)
}

// diffDeps returns what next adds to prev and what it drops, sorted.
func diffDeps(prev, next []string) (added, removed []string) {
	added, removed = []string{}, []string{}
	for _, d := range next {
		if !slices.Contains(prev, d) {
			added = append(added, d)
		}
	}
	for _, d := range prev {
		if !slices.Contains(next, d) {
			removed = append(removed, d)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

// Refusal is a failed G2 or G3 as an error, for an action that refuses
// when its gate fails: the code and path of the first error, and the
// gate's result. Its kind is "refusal" (exit 1), whatever the code.
type Refusal struct{ Result *Result }

func (e *Refusal) Error() string {
	f := e.Result.Errors[0]
	return fmt.Sprintf("%s: %s %s: %s", e.Result.Gate, f.Code, f.Path, f.Message)
}

// Code returns the code of the gate's first error.
func (e *Refusal) Code() string { return e.Result.Errors[0].Code }

// Kind says the error is a refusal by a judgement (internal/cli's kinds).
func (e *Refusal) Kind() string { return kindRefusal }

// kindRefusal is internal/cli's kind of an error that a judgement refused.
const kindRefusal = "refusal"

// ErrorDetails names the gate and the path of its first error.
func (e *Refusal) ErrorDetails() map[string]any {
	return map[string]any{"gate": e.Result.Gate, "path": e.Result.Errors[0].Path}
}

// ErrorResult returns the gate's result.
func (e *Refusal) ErrorResult() any { return e.Result }

// RequireG2 runs G2 for a and returns a *Refusal when it fails.
func RequireG2(ctx context.Context, root string, a WOAction) (*Result, error) {
	r, _, err := G2(ctx, root, a)
	if err != nil {
		return nil, err
	}
	if !r.Passed {
		return r, &Refusal{Result: r}
	}
	return r, nil
}
