package pkgcmd

import (
	"context"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/registry/register"
)

var (
	registerFrameworkVerb = &cli.Verb{Name: "register-framework", Schema: "cp-pkg.register-framework.request.json", Action: cli.ActionRegister, Tier: cli.TierHO3,
		Run: registerFramework, Args: []string{"framework_id"}, Flags: []cli.Flag{{Name: "src", Kind: cli.String, Usage: "framework document"}}}
	registerSpecVerb = &cli.Verb{Name: "register-spec", Schema: "cp-pkg.register-spec.request.json", Action: cli.ActionRegister, Tier: cli.TierHO3,
		Run: registerSpec, Args: []string{"spec_id"}, Flags: []cli.Flag{{Name: "src", Kind: cli.String, Usage: "spec directory"}}}
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
	return registered(register.Framework(ctx, root, c.Actor(), req.String("framework_id"), req.String("src")))
}

// registerSpec registers a spec whose framework is registered and active
// (register.Spec).
func registerSpec(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := planeRoot(c) // frameworks and specs live in HO3
	if err != nil {
		return fail(err)
	}
	return registered(register.Spec(ctx, root, c.Actor(), req.String("spec_id"), req.String("src")))
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
