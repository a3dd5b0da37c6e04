package cpv2

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/control-plane/cp/internal/cpv2/ledgerimport"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/framework"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/install"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry/register"
	"github.com/control-plane/cp/internal/spec"
	"github.com/control-plane/cp/internal/stage"
	"github.com/control-plane/cp/pkg/ledger"
	"golang.org/x/mod/sumdb/note"
)

// A CPv2 checkout, as Import reads it (the README's "Coming from CPv2"):
//
//	frameworks/*.md                      framework documents, any CPv2 form
//	specs/<SPEC-ID>/manifest.yaml|json   spec manifests
//	installed/<PKG-ID>/manifest.json     installed packages: their files at
//	                                     the checkout's root, where CPv2
//	                                     installed them
//	packages/<PKG-ID>/manifest.json      packages not installed: their files
//	                                     beside the manifest
//	**/ledger/*.jsonl, **/ledgers/*.jsonl ledgers (installed/ and packages/
//	                                     aside), sessions' included
const (
	DirFrameworks = "frameworks"
	DirSpecs      = "specs"
	DirInstalled  = "installed"
	DirPackages   = "packages"
)

// Types of item in an import report, in the order Import brings them.
const (
	ItemFramework = "framework"
	ItemSpec      = "spec"
	ItemRoots     = "governed_roots"
	ItemPackage   = "package"
	ItemLedger    = "ledger"
)

// Outcomes of an item.
const (
	Imported = "imported" // came over now
	Present  = "present"  // came over before: nothing to do
	Refused  = "refused"  // did not come over: Code and Reason say why
)

// Item is one thing of the checkout and what became of it.
type Item struct {
	Type    string `json:"kind"`   // framework, spec, governed_roots, package or ledger
	ID      string `json:"id"`     // FMWK-..., SPEC-..., PKG-..., the roots, or the imported ledger's path
	Source  string `json:"source"` // its path in the checkout
	Outcome string `json:"outcome"`
	Code    string `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Version is a framework's, spec's or package's version.
	Version string `json:"version,omitempty"`
	// Ledger is an imported ledger's counts (lines by verdict, root).
	Ledger *LedgerImport `json:"ledger,omitempty"`
	// Notes are the conversion's decisions, for a package.
	Notes []string `json:"notes,omitempty"`
}

// Report is what Import did: every item, and counts by kind and outcome.
type Report struct {
	From     string                    `json:"from"`
	Items    []Item                    `json:"items"`
	Counts   map[string]map[string]int `json:"counts"`
	Imported int                       `json:"imported"`
	Present  int                       `json:"present"`
	Refused  int                       `json:"refused"`
}

func (r *Report) add(it Item) {
	r.Items = append(r.Items, it)
	if r.Counts[it.Type] == nil {
		r.Counts[it.Type] = map[string]int{Imported: 0, Present: 0, Refused: 0}
	}
	r.Counts[it.Type][it.Outcome]++
	switch it.Outcome {
	case Imported:
		r.Imported++
	case Present:
		r.Present++
	default:
		r.Refused++
	}
}

// refused fills it as refused by err.
func refused(it Item, err error) Item {
	it.Outcome, it.Reason = Refused, err.Error() // an error with no code (a file unreadable) says what it is
	var coded interface{ Code() string }
	if errors.As(err, &coded) {
		it.Code = coded.Code()
	}
	var hinted interface{ ErrorHint() string }
	if errors.As(err, &hinted) && hinted.ErrorHint() != "" {
		it.Reason += " (" + hinted.ErrorHint() + ")"
	}
	return it
}

// ImportOptions configure Import.
type ImportOptions struct {
	From   string      // the CPv2 checkout
	Signer note.Signer // signs each converted package; nil: packages are refused unless Gate.AllowUnsigned
	Actor  plane.Actor
	Gate   gate.Options
}

// Import brings a CPv2 checkout into the HO3 plane at root in one step:
// its frameworks, then its specs in dependency order (register.Framework,
// register.Spec: CPv2's forms read as they are), the governed roots its
// packages need (install.AddGovernedRoots, the trust-change path), each
// package (installed/ and packages/) converted, staged, signed and
// installed in dependency order, and each ledger re-chained into
// ledger/imported-<name>.jsonl (ImportLedger, recorded LEGACY_IMPORTED).
// Every item is attempted; the report names each one's outcome, and why
// it was refused. Running it again is safe: what came over already is
// reported present (a registered document, an installed version, a ledger
// whose lines are all imported). The error is for what stops the whole
// import (the checkout cannot be read, the plane is not one); a refused
// item is not an error.
func Import(ctx context.Context, root string, opts ImportOptions) (*Report, error) {
	rep := &Report{From: filepath.Base(filepath.Clean(opts.From)), Items: []Item{}, Counts: map[string]map[string]int{}}
	if fi, err := os.Stat(opts.From); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, refusef("USAGE", "--from %s is not a directory (a CPv2 checkout)", opts.From)
	}
	if t, err := plane.ReadTier(root); err != nil {
		return nil, err
	} else if t.Tier != "HO3" {
		return nil, refusef("USAGE", "import-cpv2 brings a checkout into an HO3 plane root; %s is %s", root, t.Tier)
	}
	if err := importFrameworks(ctx, root, opts, rep); err != nil {
		return rep, err
	}
	if err := importSpecs(ctx, root, opts, rep); err != nil {
		return rep, err
	}
	if err := importPackages(ctx, root, opts, rep); err != nil {
		return rep, err
	}
	if err := importLedgers(ctx, root, opts, rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// woRequired is G2 for a registration made by the import, which acts under
// no work order: when config/governance.json requires one, the
// registration is refused (WO_REQUIRED) and recorded as refused, as
// cp-pkg register-* without --wo is; install refuses the packages the same
// way.
func woRequired(root string) register.Guard {
	return func(ctx context.Context, paths []string) error {
		gov, _, err := config.Governance(root)
		if err != nil {
			return err
		}
		_, err = gate.RequireG2(ctx, root, gate.WOAction{Required: gov.WorkOrdersRequired(), Paths: paths})
		return err
	}
}

// changed reads a registration's "changed" and "version".
func changed(o register.Outcome) (bool, string) {
	m, _ := o.Result.(map[string]any)
	c, _ := m["changed"].(bool)
	v, _ := m["version"].(string)
	return c, v
}

func importFrameworks(ctx context.Context, root string, opts ImportOptions, rep *Report) error {
	names, err := readDir(opts.From, DirFrameworks)
	if err != nil {
		return err
	}
	for _, n := range names {
		if !strings.HasSuffix(n, ".md") {
			continue
		}
		src := filepath.Join(opts.From, DirFrameworks, n)
		it := Item{Type: ItemFramework, ID: n, Source: path.Join(DirFrameworks, n)}
		doc, err := regfile.ReadFile(src)
		if err != nil {
			rep.add(refused(it, err))
			continue
		}
		fw, err := framework.ParseNamed(n, doc)
		if err != nil {
			rep.add(refused(it, err))
			continue
		}
		it.ID, it.Version = fw.ID, fw.Version
		o, err := register.Framework(ctx, root, opts.Actor, fw.ID, src, woRequired(root))
		if err != nil {
			rep.add(refused(it, err))
			continue
		}
		it.Outcome = Present
		if c, _ := changed(o); c {
			it.Outcome = Imported
		}
		rep.add(it)
	}
	return nil
}

// specDoc is a spec of the checkout and the specs it depends on.
type specDoc struct {
	id, dir, source string
	deps            []string
	err             error
}

func importSpecs(ctx context.Context, root string, opts ImportOptions, rep *Report) error {
	names, err := readDir(opts.From, DirSpecs)
	if err != nil {
		return err
	}
	var docs []specDoc
	for _, n := range names {
		dir := filepath.Join(opts.From, DirSpecs, n)
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			continue
		}
		d := specDoc{id: n, dir: dir, source: path.Join(DirSpecs, n)}
		b, isYAML, err := readSpecFile(dir)
		if err == nil {
			var s *spec.Spec
			if s, err = spec.Parse(b, isYAML); err == nil {
				d.id, d.deps = s.SpecID, specDeps(s.Dependencies)
			}
		}
		d.err = err
		docs = append(docs, d)
	}
	for _, d := range order(docs, func(d specDoc) (string, []string) { return d.id, d.deps }) {
		it := Item{Type: ItemSpec, ID: d.id, Source: d.source}
		if d.err != nil {
			rep.add(refused(it, d.err))
			continue
		}
		o, err := register.Spec(ctx, root, opts.Actor, d.id, d.dir, woRequired(root))
		if err != nil {
			rep.add(refused(it, err))
			continue
		}
		c, v := changed(o)
		it.Outcome, it.Version = Present, v
		if c {
			it.Outcome = Imported
		}
		rep.add(it)
	}
	return nil
}

// readSpecFile reads a spec directory's manifest.yaml (or .yml) or
// manifest.json.
func readSpecFile(dir string) ([]byte, bool, error) {
	for _, n := range []string{"manifest.yaml", "manifest.yml", "manifest.json"} {
		b, err := regfile.ReadFile(filepath.Join(dir, n))
		if err == nil {
			return b, n != "manifest.json", nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
	}
	return nil, false, refusef("SPEC_INVALID", "%s holds no manifest.yaml or manifest.json", filepath.Base(dir))
}

// specDeps are the SPEC- ids a spec's dependencies name.
func specDeps(deps []any) []string {
	var out []string
	for _, d := range deps {
		var id string
		switch x := d.(type) {
		case string:
			id, _, _ = strings.Cut(x, "@")
		case map[string]any:
			for _, k := range []string{"spec_id", "id"} {
				if s, ok := x[k].(string); ok {
					id = s
					break
				}
			}
		}
		if id = strings.TrimSpace(id); strings.HasPrefix(id, "SPEC-") {
			out = append(out, id)
		}
	}
	return out
}

// order sorts items so that each comes after the items it depends on
// (by id, among those given), keeping the given order otherwise; a cycle
// is broken at the item met first.
func order[T any](items []T, key func(T) (string, []string)) []T {
	byID := map[string]int{}
	for i, it := range items {
		id, _ := key(it)
		if _, dup := byID[id]; !dup {
			byID[id] = i
		}
	}
	state := make([]int, len(items)) // 0 new, 1 visiting, 2 done
	var out []T
	var visit func(i int)
	visit = func(i int) {
		if state[i] != 0 {
			return
		}
		state[i] = 1
		_, deps := key(items[i])
		for _, d := range deps {
			if j, ok := byID[d]; ok {
				visit(j)
			}
		}
		state[i] = 2
		out = append(out, items[i])
	}
	for i := range items {
		visit(i)
	}
	return out
}

// pkgDoc is a package of the checkout, converted.
type pkgDoc struct {
	item     Item
	manifest string // the CPv2 manifest.json
	files    string // the directory its asset paths are under
	conv     *Converted
	err      error
}

func importPackages(ctx context.Context, root string, opts ImportOptions, rep *Report) error {
	var docs []pkgDoc
	for _, layout := range []string{DirInstalled, DirPackages} {
		names, err := readDir(opts.From, layout)
		if err != nil {
			return err
		}
		for _, n := range names {
			mp := filepath.Join(opts.From, layout, n, "manifest.json")
			if _, err := os.Lstat(mp); err != nil {
				continue
			}
			d := pkgDoc{item: Item{Type: ItemPackage, ID: n, Source: path.Join(layout, n, "manifest.json")}, manifest: mp, files: filepath.Dir(mp)}
			if layout == DirInstalled {
				d.files = opts.From
			}
			b, err := regfile.ReadFile(mp)
			if err == nil {
				d.conv, err = ConvertManifest(b, FrameworkOfPlane(root))
			}
			if err == nil {
				d.item.ID, d.item.Version, d.item.Notes = d.conv.Manifest.PackageID, d.conv.Manifest.Version, d.conv.Notes
			}
			d.err = err
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		return nil
	}
	// The roots every convertible package needs, added at once.
	roots := map[string]bool{}
	for _, d := range docs {
		if d.err == nil {
			for _, r := range d.conv.Roots {
				roots[r] = true
			}
		}
	}
	var rootsErr error
	if len(roots) > 0 {
		var list []string
		for r := range roots {
			list = append(list, r)
		}
		slices.Sort(list)
		it := Item{Type: ItemRoots, ID: strings.Join(list, " "), Source: "config/governed_roots.json"}
		res, err := install.AddGovernedRoots(ctx, root, list, install.TrustOptions{Actor: opts.Actor})
		switch {
		case err != nil:
			rootsErr = err
			rep.add(refused(it, err))
		case res.Change == "none":
			it.Outcome = Present
			rep.add(it)
		default:
			it.Outcome, it.Version = Imported, res.Version
			it.Notes = []string{"kernel " + res.PackageID + " " + res.Version + " carries them: TRUST_CHANGED roots_added"}
			rep.add(it)
		}
	}
	key := func(d pkgDoc) (string, []string) {
		if d.conv == nil {
			return d.item.ID, nil
		}
		var deps []string
		for _, s := range d.conv.Manifest.Dependencies {
			id, _, _ := strings.Cut(s, "@")
			deps = append(deps, id)
		}
		return d.item.ID, deps
	}
	scratch, err := os.MkdirTemp("", "cp-import-cpv2-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	for _, d := range order(docs, key) {
		it := d.item
		switch {
		case d.err != nil:
			rep.add(refused(it, d.err))
			continue
		case rootsErr != nil && len(d.conv.Roots) > 0:
			rep.add(refused(it, fmt.Errorf("needs governed roots %s, which were not added: %w", strings.Join(d.conv.Roots, ", "), rootsErr)))
			continue
		}
		it, err := importPackage(ctx, root, opts, d, filepath.Join(scratch, it.ID))
		if err != nil {
			it = refused(it, err)
		}
		rep.add(it)
	}
	return nil
}

// importPackage stages, signs and installs one converted package, its
// archive written under out.
func importPackage(ctx context.Context, root string, opts ImportOptions, d pkgDoc, out string) (Item, error) {
	it := d.item
	st, err := Stage(ctx, root, StageOptions{PackageID: it.ID, Manifest: d.manifest, Files: d.files, Out: out, Gate: opts.Gate})
	if err != nil {
		return it, err
	}
	it.Notes = st.CPv2.Notes
	switch {
	case opts.Signer != nil:
		if _, err := stage.Sign(st.Archive, opts.Signer, stage.Hashes{ArchiveSHA256: st.ArchiveSHA256, ManifestHash: st.ManifestHash}); err != nil {
			return it, err
		}
	case !opts.Gate.AllowUnsigned:
		return it, refusef("SIGNATURE_MISSING", "no signing key to sign %s with", it.ID).WithHint("give --key K (or CONTROL_PLANE_SIGNING_KEY), a key trusted for packages")
	}
	res, err := install.Install(ctx, root, install.Options{Archive: st.Archive, ID: it.ID, Actor: opts.Actor, Gate: opts.Gate,
		ArchiveSHA256: st.ArchiveSHA256, ManifestHash: st.ManifestHash})
	if err != nil {
		return it, err
	}
	it.Outcome = Imported
	if res.Action == install.ActionNone {
		it.Outcome = Present
	}
	return it, nil
}

// legacyLedger is a ledger of the checkout.
type legacyLedger struct{ rel, path string }

// findLedgers returns the *.jsonl files of the checkout that sit in a
// directory named ledger or ledgers, at any depth outside installed/ and
// packages/, sorted by path. Links are not followed.
func findLedgers(from string) ([]legacyLedger, error) {
	var out []legacyLedger
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == DirInstalled || rel == DirPackages || (rel != "." && strings.HasPrefix(d.Name(), ".")) {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".jsonl") {
			if dir := path.Base(path.Dir(rel)); dir == "ledger" || dir == "ledgers" {
				out = append(out, legacyLedger{rel: rel, path: p})
			}
		}
		return nil
	})
	return out, err
}

func importLedgers(ctx context.Context, root string, opts ImportOptions, rep *Report) error {
	ls, err := findLedgers(opts.From)
	if err != nil {
		return err
	}
	if len(ls) == 0 {
		return nil
	}
	t, err := plane.ReadTier(root)
	if err != nil {
		return err
	}
	names := map[string]int{}
	for _, l := range ls {
		names[ledgerimport.NameOf(l.rel)]++
	}
	for _, l := range ls {
		name := ledgerimport.NameOf(l.rel)
		if names[name] > 1 {
			// Two paths that read as one name (ledger/a-b.jsonl and
			// ledger/a/b.jsonl): each gets its path's hash as well.
			sum := sha256.Sum256([]byte(l.rel))
			name = ledgerimport.NameOf(name[:min(len(name), 90)] + "-" + hex.EncodeToString(sum[:4]))
		}
		file, _ := ledgerimport.ImportedName(name)
		dst := filepath.Join(root, "ledger", file)
		it := Item{Type: ItemLedger, ID: "ledger/" + file, Source: l.rel}
		im, outcome, err := importLedgerFile(ctx, root, t, opts.Actor, l, dst)
		if err != nil {
			rep.add(refused(it, err))
			continue
		}
		it.Outcome, it.Ledger = outcome, im
		rep.add(it)
	}
	return nil
}

// importLedgerFile imports one legacy ledger into dst, or reports it
// present when dst holds it whole already.
func importLedgerFile(ctx context.Context, root string, t plane.Tier, actor plane.Actor, l legacyLedger, dst string) (*LedgerImport, string, error) {
	f, err := ledger.OpenFile(l.path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	s, err := plane.OpenTierLedger(root, t, dst, plane.ForAppend, actor)
	if err != nil {
		return nil, "", err
	}
	defer s.Close()
	st, err := s.State(ctx)
	if err != nil {
		return nil, "", err
	}
	rel := "ledger/" + filepath.Base(dst)
	if st.Size > 0 {
		held, lines, complete, err := ledgerimport.Compare(ctx, s, f)
		if err != nil {
			return nil, "", err
		}
		if !complete {
			return nil, "", refusef("LEDGER_NOT_EMPTY", "%s holds %d entries, of which the first %d are this ledger's %d lines: not an import of it, or one cut short",
				rel, st.Size, held, lines).WithHint("move " + rel + " and its side files out of the plane, then run import-cpv2 again")
		}
		return nil, Present, nil
	}
	im, err := ledgerimport.ImportLedger(ctx, f, l.rel, plane.Origin(t, dst), s)
	if err != nil {
		return im, "", err
	}
	im.Ledger = rel
	if _, err := plane.Record(ctx, root, actor, ledgerimport.RecordDraft(im)); err != nil {
		return im, "", err
	}
	return im, Imported, nil
}

// readDir lists dir under from, sorted; a missing dir is empty.
func readDir(from, dir string) ([]string, error) {
	es, err := os.ReadDir(filepath.Join(from, dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out, nil
}

// Table writes the report as a text table: one row per item, then the
// counts.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-15s %-40s %-9s %s\n", "KIND", "ID", "OUTCOME", "REASON")
	for _, it := range r.Items {
		why := it.Reason
		if it.Code != "" {
			why = it.Code + ": " + why
		}
		if it.Ledger != nil {
			why = fmt.Sprintf("%d lines: %d verified, %d broken, %d malformed", it.Ledger.Entries, it.Ledger.Verified, it.Ledger.Broken, it.Ledger.Malformed)
		}
		fmt.Fprintf(&b, "%-15s %-40s %-9s %s\n", it.Type, it.ID, it.Outcome, why)
	}
	fmt.Fprintf(&b, "%d imported, %d present, %d refused\n", r.Imported, r.Present, r.Refused)
	return b.String()
}
