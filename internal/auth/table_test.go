package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var all3 = []string{"ho3", "ho2", "ho1"}

func claimsFor(role string, tiers []string) *Claims {
	c := &Claims{Subject: "s-" + role, Role: role, Tiers: tiers, Audience: "p", IssuedAt: 1, ExpiresAt: 2, ID: "j"}
	if role == RoleWorker {
		c.WorkOrder, c.Session = "WO-1", "SES-20261206-00000001"
	}
	return c
}

// accessTiers are the matrix's columns: ho3, ho2, ho1, and no tier.
var accessTiers = []string{"ho3", "ho2", "ho1", ""}

// matrixAll is DESIGN.md §8's table for tokens that hold all three tiers
// (a worker: ho1 only, its own session and work order). Each string is the
// verdict at ho3, ho2, ho1 and no tier: Y allowed, n refused. Written out,
// not computed.
var matrixAll = map[Action]map[string]string{
	ActionRead:       {"admin": "YYYY", "maintainer": "YYYY", "auditor": "YYYY", "reader": "YYYY", "worker": "YYYY"},
	ActionAppend:     {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnYn"},
	ActionAuthor:     {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnY", "reader": "nnnY", "worker": "nnnY"},
	ActionInstall:    {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionRollback:   {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionCheckpoint: {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionRecover:    {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionBootstrap:  {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionRegister:   {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionSign:       {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionKeygen:     {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionWOCreate:   {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionWOCancel:   {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionWOApprove:  {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionWOStep:     {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnYY"},
	ActionRoute:      {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnYY"},
	ActionLLM:        {"admin": "YYYY", "maintainer": "YYYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnYY"},
	ActionTrust:      {"admin": "YYYY", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionToken:      {"admin": "YYYY", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionRevoke:     {"admin": "YYYY", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionMigrate:    {"admin": "YYYY", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
}

// matrixHO1 is the same table for tokens that hold ho1 only: the tier
// rule (a tier must be in the token's tiers; reads reach higher tiers;
// HO3-only actions need ho3).
var matrixHO1 = map[Action]map[string]string{
	ActionRead:       {"admin": "YYYY", "maintainer": "YYYY", "auditor": "YYYY", "reader": "YYYY", "worker": "YYYY"},
	ActionAppend:     {"admin": "nnYY", "maintainer": "nnYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnYn"},
	ActionAuthor:     {"admin": "nnnY", "maintainer": "nnnY", "auditor": "nnnY", "reader": "nnnY", "worker": "nnnY"},
	ActionInstall:    {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionRollback:   {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionCheckpoint: {"admin": "nnYn", "maintainer": "nnYn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionRecover:    {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionBootstrap:  {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionRegister:   {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionSign:       {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionKeygen:     {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionWOCreate:   {"admin": "nnYY", "maintainer": "nnYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionWOCancel:   {"admin": "nnYY", "maintainer": "nnYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionWOApprove:  {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionWOStep:     {"admin": "nnYY", "maintainer": "nnYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnYY"},
	ActionRoute:      {"admin": "nnYY", "maintainer": "nnYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnYY"},
	ActionLLM:        {"admin": "nnYY", "maintainer": "nnYY", "auditor": "nnnn", "reader": "nnnn", "worker": "nnYY"},
	ActionTrust:      {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionToken:      {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionRevoke:     {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
	ActionMigrate:    {"admin": "nnnn", "maintainer": "nnnn", "auditor": "nnnn", "reader": "nnnn", "worker": "nnnn"},
}

func TestDecideMatrix(t *testing.T) {
	for name, m := range map[string]map[Action]map[string]string{"all-tiers": matrixAll, "ho1-only": matrixHO1} {
		require.Len(t, m, len(Actions), "%s: every action has a row", name)
		for _, act := range Actions {
			for _, role := range Roles {
				want := m[act][role]
				require.Len(t, want, 4, "%s: %s/%s", name, act, role)
				tiers := all3
				if name == "ho1-only" || role == RoleWorker {
					tiers = []string{"ho1"}
				}
				c := claimsFor(role, tiers)
				for i, tier := range accessTiers {
					a := Access{Action: act, Tier: tier, Session: c.Session}
					err := Decide(c, a)
					if want[i] == 'Y' {
						require.NoError(t, err, "%s: %s %s at %q", name, role, act, tier)
						continue
					}
					require.Error(t, err, "%s: %s %s at %q must be refused", name, role, act, tier)
					require.Equal(t, CodeDenied, err.(*Error).Code())
				}
			}
		}
	}
}

func TestDecideWorkerBindings(t *testing.T) {
	w := claimsFor(RoleWorker, []string{"ho1"})
	require.Error(t, Decide(w, Access{Action: ActionAppend, Tier: "ho1", Session: "SES-20261206-00000002"}), "another session")
	require.Error(t, Decide(w, Access{Action: ActionAppend, Tier: "ho1"}), "no session named")
	// Its own session, but entries stamped for another work order
	// (cp-ledger --wo stamps metadata._work_order_id): refused.
	own := Access{Action: ActionAppend, Tier: "ho1", Session: w.Session}
	require.NoError(t, Decide(w, own))
	own.WorkOrder = "WO-1"
	require.NoError(t, Decide(w, own))
	own.WorkOrder = "WO-2"
	require.ErrorContains(t, Decide(w, own), "only for its work order WO-1, not WO-2")
	require.NoError(t, Decide(w, Access{Action: ActionWOStep, Tier: "ho1", WorkOrder: "WO-1"}))
	err := Decide(w, Access{Action: ActionWOStep, Tier: "ho1", WorkOrder: "WO-2"})
	require.ErrorContains(t, err, "only for its work order WO-1, not WO-2")
	require.Error(t, Decide(w, Access{Action: ActionLLM, WorkOrder: "WO-2"}))
	// It routes in its own session only (cp-route counts its LLM calls there).
	require.NoError(t, Decide(w, Access{Action: ActionRoute, Tier: "ho1", WorkOrder: "WO-1", Session: w.Session}))
	require.ErrorContains(t, Decide(w, Access{Action: ActionRoute, Tier: "ho1", WorkOrder: "WO-1", Session: "SES-20261206-00000002"}), "its own session")
	// A model call: its own session only (the session its token names).
	require.NoError(t, Decide(w, Access{Action: ActionLLM, Tier: "ho1", Session: w.Session, WorkOrder: "WO-1"}))
	require.ErrorContains(t, Decide(w, Access{Action: ActionLLM, Tier: "ho1", Session: "SES-20261206-00000002", WorkOrder: "WO-1"}), "call models only in its own session")
	require.Error(t, Decide(w, Access{Action: ActionLLM, Tier: "ho1", WorkOrder: "WO-1"}), "no session named")
	// Naming another work order is refused whatever the action: its own
	// session's append, and a read.
	require.NoError(t, Decide(w, Access{Action: ActionAppend, Tier: "ho1", Session: w.Session, WorkOrder: "WO-1"}))
	require.ErrorContains(t, Decide(w, Access{Action: ActionAppend, Tier: "ho1", Session: w.Session, WorkOrder: "WO-2"}), "not WO-2")
	require.ErrorContains(t, Decide(w, Access{Action: ActionRead, Tier: "ho3", WorkOrder: "WO-2"}), "not WO-2")
	// A worker without a session may append nowhere.
	w2 := claimsFor(RoleWorker, []string{"ho1"})
	w2.Session = ""
	require.Error(t, Decide(w2, Access{Action: ActionAppend, Tier: "ho1"}))
	// Reads: a token reads its tiers and the higher ones, never lower.
	r2 := claimsFor(RoleReader, []string{"ho2"})
	require.NoError(t, Decide(r2, Access{Action: ActionRead, Tier: "ho3"}))
	require.NoError(t, Decide(r2, Access{Action: ActionRead, Tier: "ho2"}))
	require.Error(t, Decide(r2, Access{Action: ActionRead, Tier: "ho1"}))
	// Unknown actions and no claims are refused.
	require.Error(t, Decide(claimsFor(RoleAdmin, all3), Access{Action: "frobnicate"}))
	require.Error(t, Decide(nil, Access{Action: ActionRead}))
}

func TestDecideReason(t *testing.T) {
	err := Decide(claimsFor(RoleWorker, []string{"ho1"}), Access{Action: ActionInstall, Tier: "ho3"})
	require.EqualError(t, err, "role worker may not install (HO3 only for admin and maintainer)")
	require.False(t, strings.Contains(err.Error(), "eyJ"))
}
