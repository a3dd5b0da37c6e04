package cpv2

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// checkout is a CPv2 checkout (gen_checkout.py there).
const checkout = "../../testdata/cpv2/checkout"

func newPlane(t *testing.T) (string, note.Signer) {
	t.Helper()
	skey, vkey, err := keys.Generate("ops")
	require.NoError(t, err)
	root := filepath.Join(t.TempDir(), "plane")
	_, err = bootstrap.Plane(context.Background(), root, bootstrap.Options{TrustKeys: []string{vkey}, Actor: plane.Actor{Name: "test"}})
	require.NoError(t, err)
	signer, err := note.NewSigner(skey)
	require.NoError(t, err)
	return root, signer
}

func outcomes(rep *Report) map[string]string {
	out := map[string]string{}
	for _, it := range rep.Items {
		out[it.Type+" "+it.ID] = it.Outcome + " " + it.Code
	}
	return out
}

// TestImportCheckout: a CPv2 checkout comes over in one step; every item
// is in the report, refused ones with their code; the plane passes every
// gate after; a second run finds everything present.
func TestImportCheckout(t *testing.T) {
	ctx := context.Background()
	root, signer := newPlane(t)
	opts := ImportOptions{From: checkout, Signer: signer, Actor: plane.Actor{Name: "test"}}
	rep, err := Import(ctx, root, opts)
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"framework FMWK-000":                                    "imported ",
		"framework FMWK-001":                                    "imported ",
		"framework FMWK-002":                                    "imported ",
		"framework FMWK-003":                                    "imported ",
		"framework governance_notes.md":                         "refused FRAMEWORK_INVALID",
		"spec SPEC-GATE-001":                                    "imported ",
		"spec SPEC-DOCS-002":                                    "imported ",
		"spec SPEC-PLATFORM-004":                                "imported ",
		"spec SPEC-ELSEWHERE-001":                               "refused PLANE_MISMATCH",
		"governed_roots docs/ tests/":                           "imported ",
		"package PKG-GATES-001":                                 "imported ",
		"package PKG-DOCS-TOOLS-001":                            "imported ",
		"package PKG-BASELINE-001":                              "imported ",
		"package PKG-HANDBOOK-001":                              "imported ",
		"package PKG-CHANGED-001":                               "refused CPV2_PACKAGE_CHANGED",
		"package PKG-KERNEL-002":                                "refused MANIFEST_INVALID",
		"package PAK-FOREIGN-001":                               "refused MANIFEST_INVALID",
		"ledger ledger/imported-ledger-damaged.jsonl":           "imported ",
		"ledger ledger/imported-ledger-governance.jsonl":        "imported ",
		"ledger ledger/imported-ledger-governance_broken.jsonl": "imported ",
		"ledger ledger/imported-ledgers-session_mixed.jsonl":    "imported ",
		"ledger ledger/imported-planes-ho1-sessions-SES-0b1d2e3f-ledger-evidence.jsonl": "imported ",
		"ledger ledger/imported-planes-ho1-sessions-SES-7f3a9c21-ledger-evidence.jsonl": "imported ",
	}, outcomes(rep))
	require.Equal(t, []int{18, 0, 5}, []int{rep.Imported, rep.Present, rep.Refused})
	require.Equal(t, map[string]int{Imported: 4, Present: 0, Refused: 3}, rep.Counts[ItemPackage])
	require.Equal(t, map[string]int{Imported: 6, Present: 0, Refused: 0}, rep.Counts[ItemLedger])

	// Order: law before specs, a spec after the spec it depends on, the
	// roots before the packages, a package after the one it depends on.
	pos := map[string]int{}
	for i, it := range rep.Items {
		pos[it.ID] = i
	}
	require.Less(t, pos["FMWK-003"], pos["SPEC-DOCS-002"])
	require.Less(t, pos["SPEC-GATE-001"], pos["SPEC-DOCS-002"], "SPEC-DOCS-002 depends on SPEC-GATE-001")
	require.Less(t, pos["docs/ tests/"], pos["PKG-DOCS-TOOLS-001"])
	require.Less(t, pos["PKG-DOCS-TOOLS-001"], pos["PKG-GATES-001"], "PKG-GATES-001 depends on PKG-DOCS-TOOLS-001")

	// Broken history came over, marked.
	for _, it := range rep.Items {
		switch it.ID {
		case "ledger/imported-ledger-governance_broken.jsonl":
			require.Equal(t, []int64{11, 9, 2, 0}, []int64{it.Ledger.Entries, it.Ledger.Verified, it.Ledger.Broken, it.Ledger.Malformed})
		case "ledger/imported-ledger-damaged.jsonl":
			require.Equal(t, int64(3), it.Ledger.Malformed)
		case "ledger/imported-planes-ho1-sessions-SES-7f3a9c21-ledger-evidence.jsonl":
			require.Equal(t, it.Ledger.Entries, it.Ledger.Prefixed)
		}
	}
	// Every file of the installed packages is on the plane, and every gate
	// passes (G6 verifies the imported ledgers with the tier's others).
	for _, p := range []string{"modules/gates/g0.py", "tests/test_g0.py", "docs/gates.md", "docs/handbook/glossary.md", "lib/prompts/reviewer.md", "scripts/build_docs.sh"} {
		_, err := os.Stat(filepath.Join(root, p))
		require.NoError(t, err, p)
	}
	g, err := gate.Check(ctx, root, gate.CheckOptions{})
	require.NoError(t, err)
	for _, r := range g {
		require.True(t, r.Passed, "%s: %v", r.Gate, r.Errors)
	}

	// Again: what came over is present; what was refused still is.
	rep2, err := Import(ctx, root, opts)
	require.NoError(t, err)
	require.Equal(t, []int{0, 18, 5}, []int{rep2.Imported, rep2.Present, rep2.Refused})

	// The imports are recorded in HO3.
	s, _, err := plane.OpenLedger(root, plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	defer s.Close()
	n := 0
	require.NoError(t, s.Find(ctx, ledger.Query{EventTypes: []string{EventLegacyImported}}, func(*ledger.Entry) bool { n++; return true }))
	require.Equal(t, 6, n, "one LEGACY_IMPORTED per ledger, none for a ledger present")
}

// TestImportCheckoutUnsigned: without a key, packages are refused and say
// how to give one; everything else comes over.
func TestImportCheckoutUnsigned(t *testing.T) {
	root, _ := newPlane(t)
	rep, err := Import(context.Background(), root, ImportOptions{From: checkout, Actor: plane.Actor{Name: "test"}})
	require.NoError(t, err)
	o := outcomes(rep)
	require.Equal(t, "refused SIGNATURE_MISSING", o["package PKG-HANDBOOK-001"])
	require.Equal(t, "refused PREFLIGHT_FAILED", o["package PKG-GATES-001"], "its dependency was not installed")
	require.Equal(t, "imported ", o["ledger ledger/imported-ledger-governance.jsonl"])
	require.Equal(t, 0, rep.Counts[ItemPackage][Imported])
}

// TestFindLedgersNames: ledgers are found in ledger/ and ledgers/
// directories at any depth, outside installed/ and packages/, links not
// followed; two paths that read as one name are told apart.
func TestFindLedgersNames(t *testing.T) {
	ctx := context.Background()
	from := t.TempDir()
	sound, err := os.ReadFile(filepath.Join("../../testdata/cpv2/ledgers", "governance.jsonl"))
	require.NoError(t, err)
	for _, p := range []string{"x-y/ledger/a.jsonl", "x/y/ledger/a.jsonl", "z/ledgers/c.jsonl", "installed/PKG-X/ledger/d.jsonl",
		"packages/PKG-Y/ledger/e.jsonl", "ledger/notes.txt", "other/f.jsonl"} {
		require.NoError(t, os.MkdirAll(filepath.Join(from, filepath.Dir(p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(from, p), sound, 0o644))
	}
	require.NoError(t, os.Symlink(filepath.Join(from, "z", "ledgers", "c.jsonl"), filepath.Join(from, "z", "ledgers", "link.jsonl")))
	ls, err := findLedgers(from)
	require.NoError(t, err)
	var rels []string
	for _, l := range ls {
		rels = append(rels, l.rel)
	}
	require.Equal(t, []string{"x/y/ledger/a.jsonl", "x-y/ledger/a.jsonl", "z/ledgers/c.jsonl"}, rels)

	root, _ := newPlane(t)
	rep, err := Import(ctx, root, ImportOptions{From: from, Actor: plane.Actor{Name: "test"}})
	require.NoError(t, err)
	require.Equal(t, 3, rep.Counts[ItemLedger][Imported], "%+v", rep.Items)
	require.NotEqual(t, rep.Items[0].ID, rep.Items[1].ID)
	require.Regexp(t, `^ledger/imported-x-y-ledger-a-[0-9a-f]{8}\.jsonl$`, rep.Items[0].ID)
	require.Regexp(t, `^ledger/imported-x-y-ledger-a-[0-9a-f]{8}\.jsonl$`, rep.Items[1].ID)
	require.Equal(t, "ledger/imported-z-ledgers-c.jsonl", rep.Items[2].ID)
	rep, err = Import(ctx, root, ImportOptions{From: from, Actor: plane.Actor{Name: "test"}})
	require.NoError(t, err)
	require.Equal(t, 3, rep.Counts[ItemLedger][Present])
}
