package auth

import (
	"slices"
	"strings"
)

// tierRank orders tiers: a lower tier reads the higher ones.
func tierRank(t string) int {
	switch t {
	case "ho1":
		return 1
	case "ho2":
		return 2
	case "ho3":
		return 3
	}
	return 0
}

// Decide is DESIGN.md §8's built-in table: nil if the role, tiers and
// bindings of c allow the access a, else a FIREWALL_DENIED *Error whose
// message says why in words. It is a pure function; Cedar policies
// (Policy.Evaluate) may refuse what it allows, never the reverse.
//
// Tiers: an access at a tier is allowed only if the tier is in c.Tiers,
// except reads, which a token may make at its tiers and any higher one
// (ho1 < ho2 < ho3). An access at no tier (a.Tier "") is allowed for reads
// and author. An action Decide does not know is refused.
func Decide(c *Claims, a Access) error {
	if c == nil {
		return deny("no verified token")
	}
	role := c.Role
	has := func(t string) bool { return slices.Contains(c.Tiers, t) }
	inTier := func() error { // the access's tier, if any, must be one of the token's
		if a.Tier != "" && !has(a.Tier) {
			return deny("role %s may not %s at %s: the token's tiers are %s", role, a.Action, strings.ToUpper(a.Tier), tierList(c.Tiers))
		}
		return nil
	}
	adminOrMaintainer := func(what string) error {
		if role != RoleAdmin && role != RoleMaintainer {
			return deny("role %s may not %s (%s)", role, a.Action, what)
		}
		return nil
	}
	ho3 := func(what string) error { // admin or maintainer, HO3 in the tiers
		if err := adminOrMaintainer(what); err != nil {
			return err
		}
		if !has("ho3") {
			return deny("role %s may not %s without HO3 in its tiers (%s)", role, a.Action, what)
		}
		return inTier()
	}
	// A worker's token serves one work order (and one session): a request
	// that names another acts outside it, whatever the action (DESIGN.md
	// §3: --wo and --session must match the token's claims).
	if role == RoleWorker && a.WorkOrder != "" && a.WorkOrder != c.WorkOrder {
		return deny("role worker may act only for its work order %s, not %s", c.WorkOrder, a.WorkOrder)
	}
	switch a.Action {
	case ActionRead:
		if a.Tier == "" {
			return nil
		}
		for _, t := range c.Tiers {
			if tierRank(t) <= tierRank(a.Tier) {
				return nil
			}
		}
		return deny("role %s may not read %s: a token reads its tiers (%s) and higher ones", role, strings.ToUpper(a.Tier), tierList(c.Tiers))
	case ActionAuthor:
		if a.Tier == "" {
			return nil
		}
		return ho3("staging into the plane is HO3 only, for admin and maintainer")
	case ActionAppend:
		switch role {
		case RoleAdmin, RoleMaintainer:
			return inTier()
		case RoleWorker:
			if a.Tier != "ho1" {
				return deny("role worker may append only to its own HO1 session ledger, not %s", tierName(a.Tier))
			}
			if err := inTier(); err != nil {
				return err
			}
			if c.Session == "" || a.Session != c.Session {
				return deny("role worker may append only to its own session %q, not %q", c.Session, a.Session)
			}
			return nil // its work order: checked above, for every action
		}
		return deny("role %s may not append (reads only)", role)
	case ActionInstall, ActionRollback, ActionRecover, ActionBootstrap, ActionRegister, ActionSign, ActionKeygen:
		return ho3("HO3 only for admin and maintainer")
	case ActionCheckpoint:
		if a.Tier == "" || a.Tier == "ho3" {
			return ho3("HO3 only for admin and maintainer")
		}
		if err := adminOrMaintainer("admin and maintainer only"); err != nil {
			return err
		}
		return inTier()
	case ActionWOCreate, ActionWOCancel:
		if err := adminOrMaintainer("admin and maintainer only"); err != nil {
			return err
		}
		return inTier()
	case ActionWOApprove:
		return ho3("HO3 only for admin and maintainer")
	case ActionWOStep, ActionRoute, ActionLLM:
		switch role {
		case RoleAdmin, RoleMaintainer:
			return inTier()
		case RoleWorker:
			// Its work order: checked above, for every action; and a
			// step it takes in a session is in its own.
			if (a.Action == ActionWOStep || a.Action == ActionRoute) && a.Session != "" && a.Session != c.Session {
				return deny("role worker may act only in its own session %q, not %q", c.Session, a.Session)
			}
			// A model call is made in its own session only (DESIGN.md
			// §8: within its work order's scope and budget).
			if a.Action == ActionLLM && (c.Session == "" || a.Session != c.Session) {
				return deny("role worker may call models only in its own session %q, not %q", c.Session, a.Session)
			}
			return inTier()
		}
		return deny("role %s may not %s (reads only)", role, a.Action)
	case ActionTrust, ActionToken, ActionRevoke, ActionMigrate:
		if role != RoleAdmin {
			return deny("role %s may not %s (admin only, with HO3)", role, a.Action)
		}
		if !has("ho3") {
			return deny("role admin may not %s without HO3 in its tiers", a.Action)
		}
		return inTier()
	}
	return deny("unknown action %q: refused", a.Action)
}

func deny(format string, args ...any) *Error {
	return refuse(CodeDenied, format, args...)
}

func tierName(t string) string {
	if t == "" {
		return "a ledger outside the tiers"
	}
	return strings.ToUpper(t)
}

func tierList(ts []string) string {
	u := make([]string, len(ts))
	for i, t := range ts {
		u[i] = strings.ToUpper(t)
	}
	return strings.Join(u, ", ")
}

// Actions lists every action of DESIGN.md §8's table, in its order.
var Actions = []Action{ActionRead, ActionAppend, ActionAuthor, ActionInstall, ActionRollback, ActionCheckpoint,
	ActionRecover, ActionBootstrap, ActionRegister, ActionSign, ActionKeygen, ActionTrust, ActionToken,
	ActionRevoke, ActionWOCreate, ActionWOCancel, ActionWOApprove, ActionWOStep, ActionRoute, ActionLLM, ActionMigrate}

// Allowance is what a token may do with one action: the tiers at which the
// table allows it (its own session and work order for a worker).
type Allowance struct {
	Action Action   `json:"action"`
	Tiers  []string `json:"tiers"`
}

// Allows lists, for each action, the tiers at which Decide allows c
// (acting in its own session and work order): what cp-auth whoami shows.
func Allows(c *Claims) []Allowance {
	var out []Allowance
	for _, act := range Actions {
		al := Allowance{Action: act, Tiers: []string{}}
		for _, t := range TierNames {
			if Decide(c, Access{Action: act, Tier: t, Session: c.Session, WorkOrder: c.WorkOrder}) == nil {
				al.Tiers = append(al.Tiers, t)
			}
		}
		out = append(out, al)
	}
	return out
}

// DecideTool is the table's rule for an agent's own tool call (cp-auth
// check): auditor and reader may only read (an action named "read" or
// ending in ".read"); every other role may call any tool, subject to the
// Cedar policies. c nil (auth off) is allowed. The refusal is TOOL_DENIED.
func DecideTool(c *Claims, action string) error {
	if c == nil || action == "read" || strings.HasSuffix(action, ".read") {
		return nil
	}
	if c.Role == RoleAuditor || c.Role == RoleReader {
		return refuse("TOOL_DENIED", "role %s may only read (actions \"read\" or \"*.read\"), not %s", c.Role, action)
	}
	return nil
}
