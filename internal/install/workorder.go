package install

import (
	"context"

	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/pkg/manifest"
)

// workOrderGates runs G2 and G3 (gate.InstallAction) for installing m
// under work order wo and appends their results to rep (rep.Passed false
// when either fails: the install is then refused and recorded like any
// failed gate). force: a reinstall writes, so it is no replay. A
// dependency change G3 lets through with no work order is noted on rec
// (recorded as weakened_controls).
func workOrderGates(ctx context.Context, root string, m *manifest.Manifest, wo string, force bool, rep *gate.Report, rec *recorder) error {
	a, err := gate.InstallAction(root, m, wo)
	if err != nil {
		return err
	}
	a.Replay = a.Replay && !force
	g2, g3, err := gate.WorkOrderGates(ctx, root, a)
	if err != nil {
		return err
	}
	rep.Results = append(rep.Results, *g2, *g3)
	rep.Passed = rep.Passed && g2.Passed && g3.Passed
	if rec != nil {
		for _, w := range g3.Warnings {
			rec.weakened = append(rec.weakened, "G3 "+w.Code+": "+w.Message)
		}
	}
	return nil
}
