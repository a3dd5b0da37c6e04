package pkgcmd

import (
	"context"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/registry/register"
)

var (
	registerFrameworkVerb = &cli.Verb{Name: "register-framework", Schema: "cp-pkg.register-framework.request.json", Action: cli.ActionRegister, Tier: cli.TierHO3,
		Run: registerFramework, Args: []string{"framework_id"}, Flags: []cli.Flag{{Name: "src", Kind: cli.String, Usage: "framework document"}, woFlag}}
	registerSpecVerb = &cli.Verb{Name: "register-spec", Schema: "cp-pkg.register-spec.request.json", Action: cli.ActionRegister, Tier: cli.TierHO3,
		Run: registerSpec, Args: []string{"spec_id"}, Flags: []cli.Flag{{Name: "src", Kind: cli.String, Usage: "spec directory"}, woFlag}}
	woFlag             = cli.Flag{Name: "wo", Kind: cli.String, Field: "work_order_id", Usage: "the work order the registration is done under (G2)"}
	checkFrameworkVerb = &cli.Verb{Name: "check-framework", Schema: "cp-pkg.check-framework.request.json", Action: cli.ActionRead, Tier: cli.TierHO3,
		Run: checkFramework, Args: []string{"framework_id"}, Flags: []cli.Flag{{Name: "src", Kind: cli.String, Usage: "candidate framework document"}}}
)

// registerFramework registers a framework document, or a newer version of
// one whose MUST invariants are all kept (register.Framework).
func registerFramework(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := planeRoot(c) // frameworks and specs live in HO3
	if err != nil {
		return fail(err)
	}
	return registered(register.Framework(ctx, root, c.Actor(), req.String("framework_id"), req.String("src"), woGuard(root, req.String("work_order_id"))))
}

// registerSpec registers a spec whose framework is registered and active
// (register.Spec).
func registerSpec(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := planeRoot(c) // frameworks and specs live in HO3
	if err != nil {
		return fail(err)
	}
	return registered(register.Spec(ctx, root, c.Actor(), req.String("spec_id"), req.String("src"), woGuard(root, req.String("work_order_id"))))
}

// checkFramework compares a candidate framework document with the
// registered one: a MUST invariant removed is a breaking change, exit 1
// (register.CheckFramework).
func checkFramework(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := planeRoot(c) // frameworks and specs live in HO3
	if err != nil {
		return fail(err)
	}
	return registered(register.CheckFramework(ctx, root, c.Actor(), req.String("framework_id"), req.String("src")))
}

// registered answers with a registration's outcome: its result, or its
// refusal (whose error carries the result), and the entry that recorded it.
func registered(o register.Outcome, err error) cli.Outcome {
	if err != nil {
		return cli.Outcome{Err: err, LedgerEntryID: o.LedgerEntryID, Seq: o.Seq}
	}
	return cli.Outcome{Result: o.Result, LedgerEntryID: o.LedgerEntryID, Seq: o.Seq}
}

// woGuard is G2 for a registration under work order wo ("" for none):
// approved, unchanged, not expired, the registered document and the
// registry inside its scope; config/governance.json work_orders: required
// makes wo mandatory (WO_REQUIRED). A failure refuses the registration
// before anything is written, recorded as its refusal.
func woGuard(root, wo string) register.Guard {
	return func(ctx context.Context, paths []string) error {
		gov, _, err := config.Governance(root)
		if err != nil {
			return err
		}
		_, err = gate.RequireG2(ctx, root, gate.WOAction{WorkOrder: wo, Required: gov.WorkOrdersRequired(), Paths: paths})
		return err
	}
}
