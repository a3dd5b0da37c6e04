package trace

import (
	"context"
	"encoding/hex"
	"slices"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/ledger"
)

// FrameworkRow is one framework as compliance frameworks lists it.
type FrameworkRow struct {
	FrameworkID string `json:"framework_id"`
	Title       string `json:"title"`
	Version     string `json:"version"`
	Status      string `json:"status"`
	SHA256      string `json:"sha256"`
	Specs       int    `json:"specs"`
	Packages    int    `json:"packages"`
}

// SpecRow is one spec as compliance specs lists it.
type SpecRow struct {
	SpecID      string `json:"spec_id"`
	FrameworkID string `json:"framework_id"`
	Title       string `json:"title"`
	Version     string `json:"version"`
	Status      string `json:"status"`
	SHA256      string `json:"sha256"`
	Packages    int    `json:"packages"`
	// FrameworkActive is false when the spec's framework is not
	// registered and active (G1 refuses its packages).
	FrameworkActive bool `json:"framework_active"`
}

// installedAll is every tier's installed packages, flattened.
func installedAll(ctx context.Context, root string) ([]Package, error) {
	inv, err := Installed(ctx, root, "")
	if err != nil {
		return nil, err
	}
	var out []Package
	for _, t := range inv.Tiers {
		out = append(out, t.Packages...)
	}
	return out, nil
}

// lawAndPackages reads the framework and spec registries and the installed
// packages of every tier: what Frameworks and Specs count.
func lawAndPackages(ctx context.Context, root string) (fws, specs []registry.Row, pkgs []Package, err error) {
	if fws, err = registry.Read(root, registry.Frameworks); err != nil {
		return nil, nil, nil, err
	}
	if specs, err = registry.Read(root, registry.Specs); err != nil {
		return nil, nil, nil, err
	}
	if pkgs, err = installedAll(ctx, root); err != nil {
		return nil, nil, nil, err
	}
	return fws, specs, pkgs, nil
}

// Frameworks lists the registered frameworks with how many specs and
// installed packages (over all tiers) stand on each.
func Frameworks(ctx context.Context, root string) ([]FrameworkRow, error) {
	fws, specs, pkgs, err := lawAndPackages(ctx, root)
	if err != nil {
		return nil, err
	}
	out := []FrameworkRow{}
	for _, r := range fws {
		f := FrameworkRow{FrameworkID: r["framework_id"], Title: r["title"], Version: r["version"], Status: r["status"], SHA256: r["sha256"]}
		for _, s := range specs {
			if s["framework_id"] == f.FrameworkID {
				f.Specs++
			}
		}
		for _, p := range pkgs {
			if p.FrameworkID == f.FrameworkID {
				f.Packages++
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// Specs lists the registered specs with their framework and how many
// installed packages stand on each.
func Specs(ctx context.Context, root string) ([]SpecRow, error) {
	fws, specs, pkgs, err := lawAndPackages(ctx, root)
	if err != nil {
		return nil, err
	}
	out := []SpecRow{}
	for _, r := range specs {
		s := SpecRow{SpecID: r["spec_id"], FrameworkID: r["framework_id"], Title: r["title"], Version: r["version"], Status: r["status"], SHA256: r["sha256"]}
		s.FrameworkActive = slices.ContainsFunc(fws, func(f registry.Row) bool {
			return f["framework_id"] == s.FrameworkID && f["status"] == registry.StatusActive
		})
		for _, p := range pkgs {
			if p.SpecID == s.SpecID {
				s.Packages++
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Gate is one gate with what it checks and its last recorded verdict.
type Gate struct {
	Gate   string `json:"gate"`
	Checks string `json:"checks"`
	// Last is the latest GATE_PASSED or GATE_FAILED entry (cp-gate
	// --record) whose run included the gate, in any tier; nil if none.
	Last *GateRun `json:"last_run"`
}

// GateRun is one recorded gate run.
type GateRun struct {
	Tier      string `json:"tier"`
	Seq       int64  `json:"seq"`
	ID        string `json:"id"`
	Passed    bool   `json:"passed"`
	Timestamp string `json:"timestamp"`
	Reason    string `json:"reason"`
}

// GateCatalogue is DESIGN.md §7's gates, in order.
var GateCatalogue = []Gate{
	{Gate: "G0A", Checks: "package declaration: every archive file declared, every declared file present, sizes and hashes match, paths safe"},
	{Gate: "G0B", Checks: "plane ownership: every governed file owned by exactly one installed package, on-disk hashes match; no orphans, no missing files"},
	{Gate: "G0K", Checks: "kernel parity: the kernel package's manifest hash is identical on HO3, HO2 and HO1"},
	{Gate: "G1", Checks: "framework/spec chain: spec and framework registered and active, dependencies installed at allowed versions"},
	{Gate: "G2", Checks: "work order: approved in HO3 by a trusted key, payload unchanged, scope covers the files touched"},
	{Gate: "G3", Checks: "constraints: dependency manifests change only under a dependency_add work order"},
	{Gate: "G5", Checks: "signature of the package by a trusted key (or a recorded waiver)"},
	{Gate: "G6", Checks: "ledgers: every ledger of every tier verifies, lower-tier GENESIS entries link to their parents"},
}

// Gates lists the gates with the last recorded verdict of each, found by
// event type through each tier's index.
func Gates(ctx context.Context, root string) ([]Gate, error) {
	out := slices.Clone(GateCatalogue)
	ts, err := tiers(root, "")
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		s, err := t.open()
		if err != nil {
			return nil, err
		}
		es, err := find(ctx, s, ledger.Query{EventTypes: []string{"GATE_PASSED", "GATE_FAILED"}})
		s.Close()
		if err != nil {
			return nil, err
		}
		for i := range es {
			e := &es[i]
			gates, _ := e.Metadata["gates"].([]any)
			failed, _ := e.Metadata["failed"].([]any)
			for g := range out {
				if !slices.Contains(gates, any(out[g].Gate)) {
					continue
				}
				if out[g].Last == nil || out[g].Last.Timestamp < e.Timestamp {
					out[g].Last = &GateRun{Tier: t.layout.PlaneID, Seq: e.Seq, ID: e.ID, Passed: !slices.Contains(failed, any(out[g].Gate)),
						Timestamp: e.Timestamp, Reason: e.Reason}
				}
			}
		}
	}
	return out, nil
}

// Summary is the plane's compliance at a glance.
type Summary struct {
	Frameworks   Count          `json:"frameworks"`
	Specs        Count          `json:"specs"`
	Packages     map[string]int `json:"packages"` // installed, per tier
	Files        map[string]int `json:"files"`    // owned, per tier
	WorkOrders   int            `json:"work_orders"`
	WorkOrderUse string         `json:"work_orders_policy"` // optional or required
	ConfigSource string         `json:"config_source"`      // the package that holds config/governance.json, or "built-in default"
	Ledgers      []LedgerHead   `json:"ledgers"`
	// Weakened lists the controls recorded as weakened (a G5 waiver, ...):
	// the seqs of HO3 entries that carry weakened_control.
	Weakened []Weakening `json:"weakened_controls"`
	Denials  int         `json:"authz_denied"`
	Gates    []Gate      `json:"gates"`
}

// Count is how many of a registry's rows are active, of all.
type Count struct {
	Active int `json:"active"`
	Total  int `json:"total"`
}

// Weakening is one entry that recorded a weakened control.
type Weakening struct {
	Tier      string `json:"tier"`
	Seq       int64  `json:"seq"`
	EventType string `json:"event_type"`
	Subject   string `json:"subject"`
	Control   string `json:"control"`
}

// Summarize answers compliance summary.
func Summarize(ctx context.Context, root string) (*Summary, error) {
	sm := &Summary{Packages: map[string]int{}, Files: map[string]int{}, Weakened: []Weakening{}}
	for _, c := range []struct {
		t   registry.Table
		dst *Count
	}{{registry.Frameworks, &sm.Frameworks}, {registry.Specs, &sm.Specs}} {
		rows, err := registry.Read(root, c.t)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			c.dst.Total++
			if r["status"] == registry.StatusActive {
				c.dst.Active++
			}
		}
	}
	inv, err := Installed(ctx, root, "")
	if err != nil {
		return nil, err
	}
	for _, t := range inv.Tiers {
		sm.Packages[t.Tier] = len(t.Packages)
		for _, p := range t.Packages {
			sm.Files[t.Tier] += p.Files
		}
	}
	gov, src, err := config.Governance(root)
	if err != nil {
		return nil, err
	}
	sm.WorkOrderUse, sm.ConfigSource = gov.WorkOrders, src.Package
	if src.Package == "" {
		sm.ConfigSource = "built-in default"
	}
	if sm.Ledgers, err = Heads(ctx, root); err != nil {
		return nil, err
	}
	ts, err := tiers(root, "")
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		s, err := t.open()
		if err != nil {
			return nil, err
		}
		err = s.Find(ctx, ledger.Query{EventTypes: []string{"INSTALLED", "AUTHZ_DENIED", "WO_CREATED"}}, func(e *ledger.Entry) bool {
			switch e.EventType {
			case "AUTHZ_DENIED":
				sm.Denials++
			case "WO_CREATED":
				sm.WorkOrders++
			default:
				if w := str(e.Metadata, "weakened_control"); w != "" {
					sm.Weakened = append(sm.Weakened, Weakening{Tier: t.layout.PlaneID, Seq: e.Seq, EventType: e.EventType, Subject: e.SubmissionID, Control: w})
				}
			}
			return true
		})
		s.Close()
		if err != nil {
			return nil, err
		}
	}
	if sm.Gates, err = Gates(ctx, root); err != nil {
		return nil, err
	}
	return sm, nil
}

// LedgerHead is a tier ledger's head and checkpoint: what a turn header
// declares as {ledger, seq, entry_hash}.
type LedgerHead struct {
	Tier      string `json:"tier"`
	Ledger    string `json:"ledger"` // the checkpoint origin
	Seq       int64  `json:"seq"`    // the head's seq (-1 for an empty ledger)
	EntryHash string `json:"entry_hash"`
	TreeSize  int64  `json:"tree_size"`
	RootHash  string `json:"root_hash"`
	// Checkpoint is the stored checkpoint's tree size ("" when none);
	// Signed says whether it carries a signature.
	CheckpointSize int64 `json:"checkpoint_size"`
	Signed         bool  `json:"checkpoint_signed"`
}

// Heads returns the head of every tier's own ledger.
func Heads(ctx context.Context, root string) ([]LedgerHead, error) {
	ts, err := tiers(root, "")
	if err != nil {
		return nil, err
	}
	out := []LedgerHead{}
	for _, t := range ts {
		s, err := t.open()
		if err != nil {
			return nil, err
		}
		h, err := head(ctx, s, t.layout.PlaneID, t.origin())
		s.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

func head(ctx context.Context, s ledger.Store, tierID, origin string) (LedgerHead, error) {
	st, err := s.State(ctx)
	if err != nil {
		return LedgerHead{}, err
	}
	h := LedgerHead{Tier: tierID, Ledger: origin, Seq: st.Size - 1, EntryHash: st.Head, TreeSize: st.Size, RootHash: hex.EncodeToString(st.Root[:])}
	if b, err := s.ReadCheckpoint(); err == nil && b != nil {
		if c, err := ledger.ParseCheckpoint(bodyOf(string(b))); err == nil {
			h.CheckpointSize, h.Signed = c.Size, len(b) > len(bodyOf(string(b)))+1
		}
	}
	return h, nil
}

// bodyOf is a checkpoint note's text, without its signatures.
func bodyOf(s string) string {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\n' && s[i+1] == '\n' {
			return s[:i+1]
		}
	}
	return s
}
