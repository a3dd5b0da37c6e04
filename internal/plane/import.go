package plane

import (
	"context"
	"path/filepath"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/ledger"
)

// Imported is what Import did.
type Imported struct {
	Tier       string `json:"tier"`
	Name       string `json:"name"`     // the ledger's name in the database
	Entries    int64  `json:"entries"`  // the ledger's entries now, the record included
	Imported   int64  `json:"imported"` // the entries loaded from the file
	RootHash   string `json:"root_hash"`
	Seq        int64  `json:"seq"`         // the LEDGER_IMPORTED entry
	TierSHA256 string `json:"tier_sha256"` // the tier.json in force, which that entry records
}

// Import loads the file ledger at src into the ledger of the tier whose
// directory is dir, which must be in PostgreSQL (tier.json's
// ledger_store) and empty (DESIGN.md §11: into any other, an import
// would be a way to inject tool-owned entries). The file is verified
// first (its stored hashes, its checkpoint if it has one, against the
// plane's keys trusted for checkpoints and verifyKey, a verifier key or
// its path, which makes a signed checkpoint mandatory), loaded in one
// transaction with the plane's signed checkpoint (pgstore.Import), and
// the import is recorded after the loaded entries (LEDGER_IMPORTED: the
// file's name, entries and root, and the hash of the tier.json in force,
// which G6 holds tier.json to). The ledger is then verified again,
// held to the file's checkpoint. Moving a tier's own file ledger is
// Migrate's.
func Import(ctx context.Context, dir, src, verifyKey string, actor Actor) (Imported, error) {
	t, err := ReadTier(dir)
	if err != nil {
		return Imported{}, err
	}
	im := Imported{Tier: t.Tier}
	if !t.Postgres() {
		return im, refuse("MIGRATE_REFUSED", "%s's ledger is a file: import loads into a ledger in PostgreSQL (tier.json ledger_store); to move this tier's ledger there, cp-ledger migrate --to postgres", t.Tier)
	}
	im.Name = t.LedgerStore.Name
	tb, err := regfile.ReadNoFollow(filepath.Join(dir, "tier.json"))
	if err != nil {
		return im, err
	}
	im.TierSHA256 = SHA256(tb)
	ks, err := trust.Load(dir)
	if err != nil {
		return im, err
	}
	vs, err := trust.Verifiers(ks, trust.PurposeCheckpoint, verifyKey)
	if err != nil {
		return im, err
	}
	f, err := ledger.OpenFileStore(src)
	if err != nil {
		return im, err
	}
	defer f.Close()
	srcRep, err := verified(ctx, f, src, ledger.VerifyOptions{Verifiers: vs, RequireSigned: verifyKey != ""})
	if err != nil {
		return im, err
	}
	held, err := f.ReadCheckpoint()
	if err != nil {
		return im, err
	}
	pg, err := openDatabase(ctx, dir, t, *t.LedgerStore, actor)
	if err != nil {
		return im, err
	}
	defer pg.Close()
	what := "ledger " + im.Name + " in the database"
	if st, err := pg.State(ctx); err != nil {
		return im, err
	} else if st.Size != 0 {
		return im, refuse("LEDGER_NOT_EMPTY", "%s already holds %d entries: import loads only into an empty ledger", what, st.Size)
	}
	if _, err := pg.Import(ctx, f); err != nil {
		return im, err
	}
	im.Imported = srcRep.Entries
	es, err := pg.Append(ctx, []ledger.Draft{{EventType: "LEDGER_IMPORTED", SubmissionID: t.PlaneID, Decision: "IMPORTED",
		Reason:   "a file ledger loaded into the tier's empty ledger in PostgreSQL",
		Metadata: map[string]any{"_tier": t.Tier, "source": filepath.Base(src), "entries": srcRep.Entries, "root_hash": srcRep.RootHash, "tier_sha256": im.TierSHA256}}})
	if err != nil {
		return im, err
	}
	im.Seq = es[0].Seq
	opts := ledger.VerifyOptions{Verifiers: vs, Expect: t.PlaneName != ""}
	if held != nil {
		opts.Held = [][]byte{held}
	}
	rep, err := verified(ctx, pg, what, opts)
	if err != nil {
		return im, err
	}
	im.Entries, im.RootHash = rep.Entries, rep.RootHash
	return im, nil
}
