package plane

import (
	"context"

	"github.com/control-plane/cp/pkg/ledger"
)

// Record appends governance events to the HO3 ledger of the plane at root
// and returns the last entry written. Every registration, check and refusal
// that changes or judges the plane goes through it, and leaves the plane's
// signed checkpoint (OpenLedger).
func Record(ctx context.Context, root string, actor Actor, drafts ...ledger.Draft) (ledger.Entry, error) {
	l, t, err := OpenLedger(root, ForAppend, actor)
	if err != nil {
		return ledger.Entry{}, err
	}
	defer l.Close()
	for i := range drafts {
		if drafts[i].Metadata == nil {
			drafts[i].Metadata = map[string]any{}
		}
		drafts[i].Metadata["_tier"] = t.Tier
	}
	es, err := l.Append(ctx, drafts)
	if err != nil {
		return ledger.Entry{}, err
	}
	return es[len(es)-1], nil
}

// CheckRecord reports whether Record could append to the HO3 ledger of the
// plane at root now (its checkpoint key readable, its stored checkpoint
// consistent), appending nothing: a verb that changes the plane before it
// records the change calls it first, so that nothing changes unrecorded.
func CheckRecord(ctx context.Context, root string, actor Actor) error {
	l, _, err := OpenLedger(root, ForAppend, actor)
	if err != nil {
		return err
	}
	defer l.Close()
	_, err = l.Append(ctx, nil)
	return err
}
