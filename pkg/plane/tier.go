// Package plane knows the layout of a Control Plane on disk (DESIGN.md §4):
// the HO3 root with its tier.json, and the lower tiers under planes/.
package plane

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Tier is a plane's tier.json.
type Tier struct {
	Tier    string `json:"tier"`
	PlaneID string `json:"plane_id"`
	// PlaneName is unique per plane (the same on its three tiers): the
	// tokens' audience, the name of its key directory outside the plane
	// (KeyDir) and the origin prefix of its checkpoints. A tier that has
	// one signs a checkpoint with every append to its ledger. "" in a
	// plane made by hand without it.
	PlaneName    string  `json:"plane_name,omitempty"`
	LedgerPath   string  `json:"ledger_path"`
	ParentLedger *string `json:"parent_ledger"`
	CreatedAt    string  `json:"created_at"`
}

// Tiers are the three tier names, highest first.
var Tiers = []string{"HO3", "HO2", "HO1"}

// ReadTier reads and checks dir/tier.json. Unknown fields and relative-path
// violations are errors: tier.json decides where ledgers are written.
func ReadTier(dir string) (Tier, error) {
	var t Tier
	b, err := os.ReadFile(filepath.Join(dir, "tier.json"))
	if err != nil {
		return t, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, fmt.Errorf("%s: %w", filepath.Join(dir, "tier.json"), err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return t, fmt.Errorf("%s: %w", filepath.Join(dir, "tier.json"), err)
	}
	switch t.Tier {
	case "HO3", "HO2", "HO1":
	default:
		return t, fmt.Errorf("%s: unknown tier %q", filepath.Join(dir, "tier.json"), t.Tier)
	}
	if _, ok := raw["plane_name"]; ok && !ValidPlaneName(t.PlaneName) {
		return t, fmt.Errorf("%s: plane_name %q: want lower-case letters, digits and hyphens", filepath.Join(dir, "tier.json"), t.PlaneName)
	}
	if !filepath.IsLocal(t.LedgerPath) {
		return t, fmt.Errorf("%s: ledger_path %q must be a relative path inside the plane", filepath.Join(dir, "tier.json"), t.LedgerPath)
	}
	return t, nil
}

// Dir returns the directory of the plane with the given id ("ho3", "ho2",
// "ho1") under the HO3 root.
func Dir(root, planeID string) (string, error) {
	switch planeID {
	case "ho3":
		return root, nil
	case "ho2", "ho1":
		return filepath.Join(root, "planes", planeID), nil
	}
	return "", fmt.Errorf("unknown plane %q (want ho3, ho2 or ho1)", planeID)
}
