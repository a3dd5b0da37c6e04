// Package plane knows the layout of a Control Plane on disk (DESIGN.md §4):
// the HO3 root with its tier.json, and the lower tiers under planes/.
package plane

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/control-plane/cp/internal/regfile"
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
// violations are errors: tier.json decides where ledgers are written. A
// tier.json that is not valid is TIER_INVALID (invalid input); one
// that cannot be read is the file error.
func ReadTier(dir string) (Tier, error) {
	var t Tier
	name := filepath.Join(dir, "tier.json")
	b, err := regfile.ReadNoFollow(name)
	var re *regfile.Error
	if errors.As(err, &re) {
		return t, refuse("TIER_INVALID", "%v", re)
	} else if err != nil {
		return t, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, refuse("TIER_INVALID", "%s: %v", name, err)
	}
	if dec.More() {
		return t, refuse("TIER_INVALID", "%s: trailing data after the tier object", name)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return t, refuse("TIER_INVALID", "%s: %v", name, err)
	}
	switch t.Tier {
	case "HO3", "HO2", "HO1":
	default:
		return t, refuse("TIER_INVALID", "%s: unknown tier %q", name, t.Tier)
	}
	if _, ok := raw["plane_name"]; ok && !ValidPlaneName(t.PlaneName) {
		return t, refuse("TIER_INVALID", "%s: plane_name %q: want lower-case letters, digits and hyphens", name, t.PlaneName)
	}
	if !filepath.IsLocal(t.LedgerPath) || !strings.HasSuffix(t.LedgerPath, ".jsonl") {
		return t, refuse("TIER_INVALID", "%s: ledger_path %q must be a relative path inside the plane, to a .jsonl file", name, t.LedgerPath)
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

// sessionID is an HO1 session id (DESIGN.md §13): SES-YYYYMMDD-<8 hex>.
var sessionID = regexp.MustCompile(`^SES-[0-9]{8}-[0-9a-f]{8}$`)

// ValidSessionID reports whether id is an HO1 session id. Check it before
// a path is built from one (planes/ho1/sessions/<id>/...), and before a
// token is bound to one.
func ValidSessionID(id string) bool { return sessionID.MatchString(id) }
