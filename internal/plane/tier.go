// Package plane knows the layout of a Control Plane on disk (DESIGN.md §4):
// the HO3 root with its tier.json, and the lower tiers under planes/.
package plane

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/pkg/jcs"
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
	// LedgerStore, when set, says where the tier's own ledger lives if
	// not in the file at LedgerPath (DESIGN.md §11): absent, the file
	// store.
	LedgerStore *LedgerStore `json:"ledger_store,omitempty"`
}

// LedgerStore is tier.json's ledger_store: a tier's ledger in PostgreSQL,
// {"kind":"postgres","dsn_env":"CONTROL_PLANE_LEDGER_DSN","name":"governance"}.
// The DSN (which holds the database's password) is never in tier.json:
// only the name of the environment variable that holds it.
type LedgerStore struct {
	Kind   string `json:"kind"`
	DSNEnv string `json:"dsn_env"`
	Name   string `json:"name"`
}

// Store kinds of tier.json's ledger_store.
const (
	StoreFile     = "file"
	StorePostgres = "postgres"
)

// validEnvName: tier.schema.json's dsn_env pattern, ^[A-Z_][A-Z0-9_]{0,127}$
// (no regexp: see ValidPlaneName).
func validEnvName(s string) bool {
	if len(s) == 0 || len(s) > 128 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validLedgerName: tier.schema.json's ledger_store.name pattern,
// ^[a-z0-9][a-z0-9_-]{0,62}$.
func validLedgerName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[0] == '_' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Postgres reports whether the tier's own ledger is in PostgreSQL.
func (t Tier) Postgres() bool { return t.LedgerStore != nil && t.LedgerStore.Kind == StorePostgres }

// check refuses a ledger_store this tool cannot honour: an unknown kind
// must not fall back to the file store (the tier's entries would go
// where its other writers do not look).
func (s *LedgerStore) check(name string) error {
	switch s.Kind {
	case StoreFile:
		if s.DSNEnv != "" || s.Name != "" {
			return refuse("TIER_INVALID", "%s: ledger_store of kind file takes no dsn_env or name", name)
		}
	case StorePostgres:
		if !validEnvName(s.DSNEnv) {
			return refuse("TIER_INVALID", "%s: ledger_store.dsn_env %q: want the name of an environment variable (A-Z, 0-9, _): the DSN itself is never written in tier.json", name, s.DSNEnv)
		}
		if !validLedgerName(s.Name) {
			return refuse("TIER_INVALID", "%s: ledger_store.name %q: want lower-case letters, digits, - and _", name, s.Name)
		}
	default:
		return refuse("TIER_INVALID", "%s: ledger_store.kind %q: want \"file\" or \"postgres\"", name, s.Kind)
	}
	return nil
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
	t, raw, ok := decodeTierFast(b)
	if !ok {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return t, refuse("TIER_INVALID", "%s: %v", name, err)
		}
		if dec.More() {
			return t, refuse("TIER_INVALID", "%s: trailing data after the tier object", name)
		}
		var rawJSON map[string]json.RawMessage
		if err := json.Unmarshal(b, &rawJSON); err != nil {
			return t, refuse("TIER_INVALID", "%s: %v", name, err)
		}
		raw = map[string]bool{}
		for k := range rawJSON {
			raw[k] = true
		}
	}
	switch t.Tier {
	case "HO3", "HO2", "HO1":
	default:
		return t, refuse("TIER_INVALID", "%s: unknown tier %q", name, t.Tier)
	}
	if raw["plane_name"] && !ValidPlaneName(t.PlaneName) {
		return t, refuse("TIER_INVALID", "%s: plane_name %q: want lower-case letters, digits and hyphens", name, t.PlaneName)
	}
	if !filepath.IsLocal(t.LedgerPath) || !strings.HasSuffix(t.LedgerPath, ".jsonl") {
		return t, refuse("TIER_INVALID", "%s: ledger_path %q must be a relative path inside the plane, to a .jsonl file", name, t.LedgerPath)
	}
	if raw["ledger_store"] && t.LedgerStore == nil {
		return t, refuse("TIER_INVALID", "%s: ledger_store is null: leave it out for the file store", name)
	}
	if t.LedgerStore != nil {
		if err := t.LedgerStore.check(name); err != nil {
			return t, err
		}
	}
	return t, nil
}

// decodeTierFast decodes a tier.json in the one shape a plane writes (an
// object of the known members, each of its type: strings, parent_ledger a
// string or null, ledger_store an object of strings) with pkg/jcs's strict
// decoder, which every request already pages in, rather than
// encoding/json's reflection (~0.05 ms of a process's first ReadTier).
// jcs refuses what encoding/json would read differently (duplicate keys,
// invalid UTF-8, trailing data), and any other member, case or type is
// left to encoding/json (ok false), whose decoding and errors stay the
// reference: for what it accepts, both give the same Tier.
// raw holds the members present.
func decodeTierFast(b []byte) (t Tier, raw map[string]bool, ok bool) {
	v, err := jcs.Decode(b)
	m, isObj := v.(map[string]any)
	if err != nil || !isObj {
		return Tier{}, nil, false
	}
	str := func(x any, to *string) bool {
		s, ok := x.(string)
		*to = s
		return ok
	}
	raw = make(map[string]bool, len(m))
	for k, x := range m {
		raw[k] = true
		switch k {
		case "tier":
			ok = str(x, &t.Tier)
		case "plane_id":
			ok = str(x, &t.PlaneID)
		case "plane_name":
			ok = str(x, &t.PlaneName)
		case "ledger_path":
			ok = str(x, &t.LedgerPath)
		case "created_at":
			ok = str(x, &t.CreatedAt)
		case "parent_ledger":
			var p string
			if ok = x == nil || str(x, &p); ok && x != nil {
				t.ParentLedger = &p
			}
		case "ledger_store":
			sm, isObj := x.(map[string]any)
			ok = isObj
			t.LedgerStore = &LedgerStore{}
			for sk, sx := range sm {
				switch sk {
				case "kind":
					ok = ok && str(sx, &t.LedgerStore.Kind)
				case "dsn_env":
					ok = ok && str(sx, &t.LedgerStore.DSNEnv)
				case "name":
					ok = ok && str(sx, &t.LedgerStore.Name)
				default:
					ok = false
				}
			}
		default:
			ok = false
		}
		if !ok {
			return Tier{}, nil, false
		}
	}
	return t, raw, true
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

// ValidSessionID reports whether id is an HO1 session id (DESIGN.md §13):
// SES-YYYYMMDD-<8 lowercase hex>. Check it before a path is built from one
// (planes/ho1/sessions/<id>/...), and before a token is bound to one. No
// regexp (FuzzValidSessionID holds this to ^SES-[0-9]{8}-[0-9a-f]{8}$):
// its compilation was a measurable part of every turn.
func ValidSessionID(id string) bool {
	if len(id) != len("SES-YYYYMMDD-01234567") || id[:4] != "SES-" || id[12] != '-' {
		return false
	}
	for i := 4; i < len(id); i++ {
		c := id[i]
		switch {
		case i == 12:
		case '0' <= c && c <= '9':
		case i > 12 && 'a' <= c && c <= 'f':
		default:
			return false
		}
	}
	return true
}
