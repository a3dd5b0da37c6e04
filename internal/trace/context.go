package trace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/workorder"
)

// ContextFormat names the agent-context document's format.
const ContextFormat = "control-plane/agent-context/v1"

// AgentContext is the document an agent reads before its next turn
// (DESIGN.md §14). It is a pure function of the plane's state and the
// caller's identity: no clock reading appears in it, every list is sorted
// and maps encode with sorted keys, so the same state gives the same bytes.
// Every item carries what a turn header declares: {path, sha256} for files,
// {ledger, seq, entry_hash} for ledgers, {artifact, version} (with its
// hash) for frameworks, specs, packages and prompt packs.
type AgentContext struct {
	Format      string         `json:"format"`
	Plane       PlaneIdentity  `json:"plane"`
	Identity    CallerIdentity `json:"identity"`
	Config      []ConfigFile   `json:"config"`
	WorkOrder   *WorkOrderView `json:"work_order"`
	Session     *LedgerHead    `json:"session"`
	Ledgers     []LedgerHead   `json:"ledgers"`
	Frameworks  []Artifact     `json:"frameworks"`
	Specs       []Artifact     `json:"specs"`
	Packages    []Artifact     `json:"packages"`
	PromptPacks []Artifact     `json:"prompt_packs"`
	Notes       []string       `json:"notes"`
}

// PlaneIdentity names the plane and the tier the context is for.
type PlaneIdentity struct {
	PlaneName string `json:"plane_name"`
	Tier      string `json:"tier"`
}

// CallerIdentity is the token's subject and what it allows.
type CallerIdentity struct {
	Subject   string           `json:"subject"`
	Auth      string           `json:"auth"` // token or off
	Role      string           `json:"role,omitempty"`
	Tiers     []string         `json:"tiers"`
	WorkOrder string           `json:"work_order,omitempty"`
	Session   string           `json:"session,omitempty"`
	Allowed   []auth.Allowance `json:"allowed_actions"`
}

// ConfigFile is one operator configuration file in force: the installed
// file, or the built-in default (Package "").
type ConfigFile struct {
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
	Package string `json:"package"`
	Default bool   `json:"default"`
}

// WorkOrderView is the work order an agent works under.
type WorkOrderView struct {
	ID        string           `json:"wo_id"`
	State     string           `json:"state"`
	Path      string           `json:"path"`
	SHA256    string           `json:"sha256"` // the payload hash: what {path, sha256} declares
	Type      string           `json:"type"`
	Title     string           `json:"title"`
	Tier      string           `json:"tier"`
	ExpiresAt string           `json:"expires_at"`
	Scope     workorder.Scope  `json:"scope"`
	Budget    workorder.Budget `json:"budget"`
	TurnsUsed int              `json:"turns_used"`
	TurnsLeft int64            `json:"turns_left"`
	LLMCalls  int              `json:"llm_calls_used"`
	Sessions  []string         `json:"sessions"`
}

// Artifact is a registered or installed artifact as a turn header declares
// it: {artifact, version}, with its hash.
type Artifact struct {
	Artifact string `json:"artifact"`
	Version  string `json:"version"`
	SHA256   string `json:"sha256"`
	Status   string `json:"status,omitempty"`
	Path     string `json:"path,omitempty"`
	Tier     string `json:"tier,omitempty"`
}

// ContextOptions are the caller and the work order and session asked for.
type ContextOptions struct {
	Identity  auth.Identity
	WorkOrder string
	Session   string
	// Now decides only whether a work order has expired; it never
	// appears in the document.
	Now time.Time
}

// Context builds the agent-context document of the plane at root.
func Context(ctx context.Context, root string, o ContextOptions) (*AgentContext, error) {
	ts, err := tiers(root, "ho3")
	if err != nil {
		return nil, err
	}
	ac := &AgentContext{Format: ContextFormat, Plane: PlaneIdentity{PlaneName: ts[0].info.PlaneName, Tier: ts[0].info.Tier},
		Notes: []string{}}
	ac.Identity = caller(o)
	wo, ses := o.WorkOrder, o.Session
	if wo == "" {
		wo = ac.Identity.WorkOrder
	}
	if ses == "" {
		ses = ac.Identity.Session
	}
	var notes []string
	if ac.Config, notes, err = configFiles(root); err != nil {
		return nil, err
	}
	ac.Notes = append(ac.Notes, notes...)
	if ac.Ledgers, err = Heads(ctx, root); err != nil {
		return nil, err
	}
	if ac.Frameworks, err = registered(root, registry.Frameworks, "framework_id"); err != nil {
		return nil, err
	}
	if ac.Specs, err = registered(root, registry.Specs, "spec_id"); err != nil {
		return nil, err
	}
	if ac.PromptPacks, err = registered(root, registry.Prompts, "prompt_pack_id"); err != nil {
		return nil, err
	}
	if len(ac.PromptPacks) == 0 {
		ac.Notes = append(ac.Notes, "no prompt packs registered: LLM calls have no governed prompt to use")
	}
	// A pack is usable when the gateway would load it now: re-hashed
	// against its registered digest, not retired.
	for _, pp := range ac.PromptPacks {
		if _, err := prompt.Load(root, pp.Artifact); err != nil {
			var pe *prompt.Error
			if !errors.As(err, &pe) {
				return nil, err
			}
			ac.Notes = append(ac.Notes, fmt.Sprintf("prompt pack %s is not usable (%s): %s", pp.Artifact, pe.Code(), pe.Error()))
		}
	}
	// Packages per tier from each tier's packages_state.csv: the manifest
	// hash is all a turn header declares of one (inventory reads the
	// manifests; the context need not).
	ts3, err := tiers(root, "")
	if err != nil {
		return nil, err
	}
	ac.Packages = []Artifact{}
	for _, t := range ts3 {
		rows, err := registry.Read(t.dir, registry.Packages)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if r["status"] == registry.StatusInstalled {
				ac.Packages = append(ac.Packages, Artifact{Artifact: r["package_id"], Version: r["version"], SHA256: r["manifest_hash"], Tier: t.layout.PlaneID})
			}
		}
	}
	slices.SortFunc(ac.Packages, func(a, b Artifact) int {
		if a.Artifact != b.Artifact {
			return compare(a.Artifact, b.Artifact)
		}
		return compare(a.Tier, b.Tier)
	})
	if wo != "" {
		if ac.WorkOrder, err = workOrderView(ctx, root, wo, o.Now); err != nil {
			return nil, err
		}
	}
	if ses != "" {
		if ac.Session, err = sessionHead(ctx, root, ses); err != nil {
			return nil, err
		}
	}
	return ac, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func caller(o ContextOptions) CallerIdentity {
	id := CallerIdentity{Subject: o.Identity.Subject, Auth: o.Identity.Auth}
	if c := o.Identity.Claims; c != nil {
		id.Role, id.Tiers, id.WorkOrder, id.Session = c.Role, slices.Clone(c.Tiers), c.WorkOrder, c.Session
		id.Allowed = auth.Allows(c)
	} else {
		// Auth off: no token, no table; the plane's owner may do all.
		id.Auth = auth.AuthOff
		id.Tiers = slices.Clone(auth.TierNames)
		for _, a := range auth.Actions {
			id.Allowed = append(id.Allowed, auth.Allowance{Action: a, Tiers: slices.Clone(auth.TierNames)})
		}
	}
	if id.Tiers == nil {
		id.Tiers = []string{}
	}
	return id
}

// configFiles lists the operator configuration in force, file by file:
// the installed file (its owner and the hash of its bytes on disk), or the
// built-in default (its bytes' hash). A file that is owned but drifted or
// missing, or present but owned by none, is listed with what is on disk
// and a note: the tools refuse to use it (CONFIG_INVALID), and the agent
// is told so rather than handed a hash that nothing honours.
func configFiles(root string) ([]ConfigFile, []string, error) {
	var out []ConfigFile
	var notes []string
	defaults := config.Defaults()
	owners, err := ownerRows(root, config.Paths)
	if err != nil {
		return nil, nil, err
	}
	for _, rel := range config.Paths {
		o, owned := owners[rel]
		b, err := regfile.ReadNoFollow(filepath.Join(root, filepath.FromSlash(rel)))
		switch {
		case errors.Is(err, fs.ErrNotExist) && !owned:
			out = append(out, ConfigFile{Path: rel, SHA256: sum(defaults[rel]), Default: true})
			notes = append(notes, rel+": no config package installed; the built-in default is in force")
			continue
		case errors.Is(err, fs.ErrNotExist):
			notes = append(notes, rel+": owned by "+o.PackageID+" but missing: the tools refuse it (CONFIG_INVALID)")
			continue
		case err != nil:
			return nil, nil, err
		}
		f := ConfigFile{Path: rel, SHA256: sum(b)}
		switch {
		case !owned:
			notes = append(notes, rel+": on disk but owned by no package: the tools refuse it (CONFIG_INVALID)")
		case o.SHA256 != f.SHA256:
			f.Package = o.PackageID
			notes = append(notes, rel+": not the bytes "+o.PackageID+" installed: the tools refuse it (CONFIG_INVALID)")
		default:
			f.Package = o.PackageID
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b ConfigFile) int { return compare(a.Path, b.Path) })
	return out, notes, nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// registered lists a registry's rows as artifacts, by id.
func registered(root string, t registry.Table, key string) ([]Artifact, error) {
	rows, err := registry.Read(root, t)
	if err != nil {
		return nil, err
	}
	out := []Artifact{}
	for _, r := range rows {
		out = append(out, Artifact{Artifact: r[key], Version: r["version"], SHA256: r["sha256"], Status: r["status"], Path: r["path"]})
	}
	slices.SortFunc(out, func(a, b Artifact) int { return compare(a.Artifact, b.Artifact) })
	return out, nil
}

func workOrderView(ctx context.Context, root, id string, now time.Time) (*WorkOrderView, error) {
	if !workorder.ValidID(id) {
		return nil, badArg("USAGE", "%q is not a work-order id (WO-YYYYMMDD-NNN)", id)
	}
	st, err := workorder.State(ctx, root, id, now)
	if err != nil {
		return nil, err
	}
	wo, hash, err := workorder.Read(root, id)
	if err != nil {
		return nil, err
	}
	v := &WorkOrderView{ID: id, State: st.State, Path: workorder.FilePath(id), SHA256: hash, Type: wo.Type, Title: wo.Title,
		Tier: wo.Tier, ExpiresAt: wo.ExpiresAt, Scope: wo.Scope, Budget: wo.Budget}
	sessions, turns, calls, err := woSessions(ctx, root, id)
	if err != nil {
		return nil, err
	}
	v.Sessions, v.TurnsUsed, v.LLMCalls = sessions, turns, calls
	v.TurnsLeft = max(wo.Budget.Turns-int64(turns), 0)
	return v, nil
}

func sessionHead(ctx context.Context, root, id string) (*LedgerHead, error) {
	if !plane.ValidSessionID(id) {
		return nil, badArg("USAGE", "%q is not a session id (SES-YYYYMMDD-<8 hex>)", id)
	}
	ho1, err := tiers(root, "ho1")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(ho1[0].dir, "sessions", id, "ledger", "session.jsonl")
	if _, err := os.Lstat(p); err != nil {
		return nil, badArg(CodeIDNotFound, "no session %s on this plane (its ledger does not exist)", id)
	}
	s, err := plane.OpenTierLedger(ho1[0].dir, ho1[0].info, p, plane.ForReading, plane.Actor{})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	h, err := head(ctx, s, "ho1", plane.Origin(ho1[0].info, p))
	return &h, err
}
