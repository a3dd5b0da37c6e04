package trace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/snapshot"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
)

// Kinds of id explain knows (DESIGN.md §14), by prefix.
const (
	IDFramework   = "framework"    // FMWK-
	IDSpec        = "spec"         // SPEC-
	IDPackage     = "package"      // PKG-
	IDWorkOrder   = "work_order"   // WO-
	IDPromptPack  = "prompt_pack"  // PRM-
	IDCheckpoint  = "checkpoint"   // VER-
	IDLedgerEntry = "ledger_entry" // LED-
)

var kinds = []struct{ prefix, kind string }{
	{"FMWK-", IDFramework}, {"SPEC-", IDSpec}, {"PKG-", IDPackage}, {"WO-", IDWorkOrder},
	{"PRM-", IDPromptPack}, {"VER-", IDCheckpoint}, {"LED-", IDLedgerEntry},
}

// KindOf returns the kind of id by its prefix, or "".
func KindOf(id string) string {
	for _, k := range kinds {
		if strings.HasPrefix(id, k.prefix) && len(id) > len(k.prefix) {
			return k.kind
		}
	}
	return ""
}

// Explanation is what explain says of an id: its kind and status, what it
// is (Attributes), what it relates to (Relations: sorted ids by relation
// name) and the ledger entries about it (Entries, oldest first).
type Explanation struct {
	ID         string              `json:"id"`
	Kind       string              `json:"kind"`
	Status     string              `json:"status"`
	Attributes map[string]any      `json:"attributes"`
	Relations  map[string][]string `json:"relations"`
	Entries    []Ref               `json:"entries"`
}

// Ref is one ledger entry explain cites.
type Ref struct {
	Tier      string `json:"tier"`
	Ledger    string `json:"ledger"`
	Seq       int64  `json:"seq"`
	ID        string `json:"id"`
	EventType string `json:"event_type"`
	Decision  string `json:"decision"`
	Timestamp string `json:"timestamp"`
	EntryHash string `json:"entry_hash"`
}

func refOf(tierID, origin string, e *ledger.Entry) Ref {
	return Ref{Tier: tierID, Ledger: origin, Seq: e.Seq, ID: e.ID, EventType: e.EventType, Decision: e.Decision, Timestamp: e.Timestamp, EntryHash: e.EntryHash}
}

// Explain explains id on the plane at root.
func Explain(ctx context.Context, root, id string) (*Explanation, error) {
	x := &Explanation{ID: id, Kind: KindOf(id), Attributes: map[string]any{}, Relations: map[string][]string{}, Entries: []Ref{}}
	var err error
	switch x.Kind {
	case IDFramework:
		err = explainFramework(ctx, root, x)
	case IDSpec:
		err = explainSpec(ctx, root, x)
	case IDPackage:
		err = explainPackage(ctx, root, x)
	case IDWorkOrder:
		err = explainWorkOrder(ctx, root, x)
	case IDPromptPack:
		err = explainPromptPack(ctx, root, x)
	case IDCheckpoint:
		err = explainCheckpoint(ctx, root, x)
	case IDLedgerEntry:
		err = explainEntry(ctx, root, x)
	default:
		return nil, badArg("USAGE", "%q is not an id explain knows: FMWK-, SPEC-, PKG-, WO-, PRM-, VER- or LED-", id)
	}
	if err != nil {
		return nil, err
	}
	for k, v := range x.Relations {
		slices.Sort(v)
		x.Relations[k] = slices.Compact(v)
	}
	return x, nil
}

func notFound(kind, id, where string) *Error {
	return badArg(CodeIDNotFound, "no %s %s on this plane (%s)", strings.ReplaceAll(kind, "_", " "), id, where)
}

// subjectEntries appends to x the HO3 entries whose subject is x.ID.
func subjectEntries(ctx context.Context, root string, x *Explanation) error {
	ts, err := tiers(root, "ho3")
	if err != nil {
		return err
	}
	s, err := ts[0].open()
	if err != nil {
		return err
	}
	defer s.Close()
	es, err := find(ctx, s, ledger.Query{Subject: x.ID})
	for i := range es {
		x.Entries = append(x.Entries, refOf("ho3", ts[0].origin(), &es[i]))
	}
	return err
}

func explainFramework(ctx context.Context, root string, x *Explanation) error {
	rows, err := registry.Read(root, registry.Frameworks)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(rows, func(r registry.Row) bool { return r["framework_id"] == x.ID })
	if i < 0 {
		return notFound(x.Kind, x.ID, "frameworks_registry.csv does not list it")
	}
	r := rows[i]
	x.Status = r["status"]
	x.Attributes = map[string]any{"title": r["title"], "version": r["version"], "path": r["path"], "sha256": r["sha256"], "registered_by": r["registered_by"], "registered_at": r["registered_at"]}
	specs, err := registry.Read(root, registry.Specs)
	if err != nil {
		return err
	}
	x.Relations["specs"] = []string{}
	for _, s := range specs {
		if s["framework_id"] == x.ID {
			x.Relations["specs"] = append(x.Relations["specs"], s["spec_id"])
		}
	}
	if err := relatedPackages(ctx, root, x, func(p Package) bool { return p.FrameworkID == x.ID }); err != nil {
		return err
	}
	return subjectEntries(ctx, root, x)
}

func explainSpec(ctx context.Context, root string, x *Explanation) error {
	rows, err := registry.Read(root, registry.Specs)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(rows, func(r registry.Row) bool { return r["spec_id"] == x.ID })
	if i < 0 {
		return notFound(x.Kind, x.ID, "specs_registry.csv does not list it")
	}
	r := rows[i]
	x.Status = r["status"]
	x.Attributes = map[string]any{"title": r["title"], "version": r["version"], "path": r["path"], "sha256": r["sha256"], "registered_by": r["registered_by"], "registered_at": r["registered_at"]}
	x.Relations["framework"] = []string{r["framework_id"]}
	if err := relatedPackages(ctx, root, x, func(p Package) bool { return p.SpecID == x.ID }); err != nil {
		return err
	}
	return subjectEntries(ctx, root, x)
}

// relatedPackages fills x's packages relation (id@version, per tier) and
// file count from the installed packages that keep.
func relatedPackages(ctx context.Context, root string, x *Explanation, keep func(Package) bool) error {
	inv, err := Installed(ctx, root, "")
	if err != nil {
		return err
	}
	x.Relations["packages"] = []string{}
	files := 0
	for _, t := range inv.Tiers {
		for _, p := range t.Packages {
			if keep(p) {
				x.Relations["packages"] = append(x.Relations["packages"], p.PackageID+"@"+p.Version+" ("+t.Tier+")")
				files += p.Files
			}
		}
	}
	x.Attributes["files"] = files
	return nil
}

func explainPackage(ctx context.Context, root string, x *Explanation) error {
	inv, err := Installed(ctx, root, "")
	if err != nil {
		return err
	}
	var where []string
	for _, t := range inv.Tiers {
		for _, p := range t.Packages {
			if p.PackageID != x.ID {
				continue
			}
			where = append(where, t.Tier)
			if t.Tier == "ho3" || x.Attributes["version"] == nil {
				x.Attributes["version"], x.Attributes["package_type"], x.Attributes["manifest_hash"] = p.Version, p.PackageType, p.ManifestHash
				x.Attributes["signature"], x.Attributes["files"], x.Attributes["installed_seq"] = p.Signature, p.Files, p.InstalledSeq
				x.Relations["framework"] = []string{p.FrameworkID}
				x.Relations["spec"] = []string{p.SpecID}
			}
		}
	}
	if err := subjectEntries(ctx, root, x); err != nil {
		return err
	}
	switch {
	case len(where) > 0:
		x.Status = "installed"
		x.Relations["tiers"] = where
		// Its files are its receipt's (what its install wrote), not a read
		// of the whole ownership table (10,000 rows on a big plane).
		t, err := tiers(root, where[0])
		if err != nil {
			return err
		}
		rb, err := regfile.ReadNoFollow(filepath.Join(t[0].dir, filepath.FromSlash(plane.ReceiptPath(x.ID))))
		if err != nil {
			return err
		}
		rc, err := plane.ParseReceipt(rb)
		if err != nil {
			return err
		}
		x.Relations["files"] = []string{}
		for _, f := range rc.Files {
			x.Relations["files"] = append(x.Relations["files"], f.Path)
		}
	case len(x.Entries) > 0:
		x.Status = "not installed"
	default:
		return notFound(x.Kind, x.ID, "no tier has it installed and HO3's ledger never names it")
	}
	return nil
}

func explainWorkOrder(ctx context.Context, root string, x *Explanation) error {
	if !workorder.ValidID(x.ID) {
		return badArg("USAGE", "%q is not a work-order id (WO-YYYYMMDD-NNN)", x.ID)
	}
	st, err := workorder.State(ctx, root, x.ID, time.Now())
	var coded interface{ Code() string }
	if errors.As(err, &coded) && coded.Code() == workorder.CodeNotFound {
		return notFound(x.Kind, x.ID, err.Error())
	} else if err != nil {
		return err
	}
	x.Status = st.State
	x.Attributes = map[string]any{"payload_hash": st.PayloadHash, "created_by": st.CreatedBy, "type": st.Type, "expires_at": st.ExpiresAt}
	if st.ApprovedBy != "" {
		x.Attributes["approved_by"], x.Attributes["approval_key"] = st.ApprovedBy, st.ApprovalKey
	}
	if wo, _, err := workorder.Read(root, x.ID); err == nil {
		x.Attributes["title"], x.Attributes["tier"], x.Attributes["scope"], x.Attributes["budget"] = wo.Title, wo.Tier, wo.Scope, wo.Budget
	}
	ts, err := tiers(root, "")
	if err != nil {
		return err
	}
	origins := map[string]string{}
	for _, t := range ts {
		origins[t.layout.PlaneID] = t.origin()
	}
	for _, ev := range st.Events {
		x.Entries = append(x.Entries, Ref{Tier: ev.Tier, Ledger: origins[ev.Tier], Seq: ev.Seq, ID: ev.EntryID, EventType: ev.EventType, Timestamp: ev.Timestamp})
	}
	sessions, turns, calls, err := woSessions(ctx, root, x.ID)
	if err != nil {
		return err
	}
	x.Relations["sessions"] = sessions
	x.Attributes["turns"], x.Attributes["llm_calls"] = turns, calls
	return nil
}

// woSessions lists the HO1 sessions of work order id (the sessions whose
// ledger entries are stamped with it) and counts their TURN and LLM_CALL
// entries.
func woSessions(ctx context.Context, root, id string) (sessions []string, turns, calls int, err error) {
	sessions = []string{}
	dir := filepath.Join(root, "planes", "ho1", "sessions")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return sessions, 0, 0, nil
	} else if err != nil {
		return nil, 0, 0, err
	}
	ho1, err := tiers(root, "ho1")
	if err != nil {
		return nil, 0, 0, err
	}
	for _, d := range ents {
		if !d.IsDir() || !plane.ValidSessionID(d.Name()) {
			continue
		}
		p := filepath.Join(dir, d.Name(), "ledger", "session.jsonl")
		s, err := plane.OpenTierLedger(ho1[0].dir, ho1[0].info, p, plane.ForReading, plane.Actor{})
		if err != nil {
			continue
		}
		mine := false
		err = s.Find(ctx, ledger.Query{Metadata: map[string]string{"_work_order_id": id}}, func(e *ledger.Entry) bool {
			mine = true
			switch e.EventType {
			case "TURN":
				turns++
			case "LLM_CALL":
				calls++
			}
			return true
		})
		s.Close()
		if err != nil {
			return nil, 0, 0, err
		}
		if mine {
			sessions = append(sessions, d.Name())
		}
	}
	return sessions, turns, calls, nil
}

func explainPromptPack(ctx context.Context, root string, x *Explanation) error {
	rows, err := registry.Read(root, registry.Prompts)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(rows, func(r registry.Row) bool { return r["prompt_pack_id"] == x.ID })
	if i < 0 {
		if len(rows) == 0 {
			return notFound(x.Kind, x.ID, "no prompt-pack registry yet: registries/prompts_registry.csv holds no prompt packs")
		}
		return notFound(x.Kind, x.ID, "prompts_registry.csv does not list it")
	}
	r := rows[i]
	x.Status = r["status"]
	x.Attributes = map[string]any{"version": r["version"], "path": r["path"], "sha256": r["sha256"], "registered_at": r["registered_at"]}
	x.Relations["package"] = []string{r["package_id"]}
	// The pack as the gateway would load it now: its files re-hashed
	// against the registered digest.
	if r["status"] != registry.StatusRetired {
		if p, err := prompt.Load(root, x.ID); err == nil {
			x.Attributes["template"], x.Attributes["providers"], x.Attributes["models"], x.Attributes["max_tokens"] = p.Template, p.Providers, p.Models, p.MaxTokens
			x.Attributes["verified"] = true
		} else {
			var pe *prompt.Error
			if !errors.As(err, &pe) {
				return err
			}
			x.Attributes["verified"], x.Attributes["problem"] = false, pe.Error()
			if c := pe.Code(); c == prompt.CodeHashMismatch || c == prompt.CodeInvalid {
				x.Status = "tampered"
			}
		}
	}
	return subjectEntries(ctx, root, x)
}

func explainCheckpoint(ctx context.Context, root string, x *Explanation) error {
	if !snapshot.ValidID(x.ID) {
		return badArg("USAGE", "%q is not a checkpoint id (VER-...)", x.ID)
	}
	v, err := snapshot.Load(root, x.ID)
	var coded interface{ Code() string }
	if errors.As(err, &coded) && coded.Code() == "VERSION_NOT_FOUND" {
		return notFound(x.Kind, x.ID, "versions/ does not hold it")
	} else if err != nil {
		return err
	}
	x.Attributes = map[string]any{"label": v.Label, "created_at": v.CreatedAt, "actor": v.Actor, "files": len(v.Files), "sha256": v.FileSHA256()}
	x.Relations["packages"] = []string{}
	for _, p := range v.Packages {
		x.Relations["packages"] = append(x.Relations["packages"], p.PackageID+"@"+p.Version)
	}
	if err := subjectEntries(ctx, root, x); err != nil {
		return err
	}
	x.Status = "unrecorded"
	for _, e := range x.Entries {
		switch e.EventType {
		case "CHECKPOINT_CREATED":
			if x.Status == "unrecorded" {
				x.Status = "recorded"
			}
		case "ROLLED_BACK":
			x.Status = "restored"
		}
	}
	return nil
}

// explainEntry finds a ledger entry by id in the tiers' own ledgers and
// the sessions' (HO1's), through each ledger's index (the id key): a
// lookup, not a read of the ledgers.
func explainEntry(ctx context.Context, root string, x *Explanation) error {
	if !validEntryID(x.ID) {
		return badArg("USAGE", "%q is not a ledger entry id (LED- and 16 lowercase hex digits)", x.ID)
	}
	ts, err := tiers(root, "")
	if err != nil {
		return err
	}
	for _, t := range ts {
		s, err := t.open()
		if err != nil {
			return err
		}
		found, err := explainIn(ctx, s, t.layout.PlaneID, t.info.Tier, t.origin(), "", x)
		if err != nil || found {
			return err
		}
	}
	// A session's ledger (HO1): its entries are HO1's too.
	if hi := slices.IndexFunc(ts, func(t tier) bool { return t.layout.PlaneID == "ho1" }); hi >= 0 {
		if found, err := explainSessions(ctx, root, ts[hi], x); err != nil || found {
			return err
		}
	}
	// An imported CPv2 ledger (cp-ledger import --legacy).
	if found, err := explainImported(ctx, ts, x); err != nil || found {
		return err
	}
	return notFound(x.Kind, x.ID, "no tier's, session's or imported ledger holds it")
}

// explainSessions looks x's entry id up in each session ledger of HO1.
func explainSessions(ctx context.Context, root string, ho1 tier, x *Explanation) (bool, error) {
	ents, err := os.ReadDir(filepath.Join(ho1.dir, "sessions"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	for _, d := range ents {
		if !d.IsDir() || !plane.ValidSessionID(d.Name()) {
			continue
		}
		s, _, err := plane.OpenSessionLedger(root, d.Name(), plane.ForReading, plane.Actor{})
		if err != nil {
			continue
		}
		origin := plane.Origin(ho1.info, filepath.Join(ho1.dir, plane.SessionLedger(d.Name())))
		found, err := explainIn(ctx, s, "ho1", ho1.info.Tier, origin, d.Name(), x)
		if err != nil || found {
			return found, err
		}
	}
	return false, nil
}

// explainIn looks id up in s (closing it) and fills x when s holds it.
func explainIn(ctx context.Context, s ledger.Store, planeID, tierName, origin, session string, x *Explanation) (bool, error) {
	defer s.Close()
	var found *ledger.Entry
	err := s.Find(ctx, ledger.Query{ID: x.ID}, func(e *ledger.Entry) bool {
		found = e
		return false
	})
	if err != nil || found == nil {
		return false, err
	}
	p, err := ledger.ProveInclusion(ctx, s, found.Seq, 0, origin)
	if err != nil {
		return true, err
	}
	where := tierName
	if session != "" {
		where = "session " + session + " (" + tierName + ")"
	}
	x.Status = "recorded in " + where + " at seq " + itoa(found.Seq)
	x.Attributes = map[string]any{"tier": planeID, "entry": found, "inclusion": p}
	if session != "" {
		x.Attributes["session"] = session
	}
	if found.SubmissionID != "" {
		x.Relations["subject"] = []string{found.SubmissionID}
	}
	x.Entries = append(x.Entries, refOf(planeID, origin, found))
	return true, nil
}

// validEntryID reports whether id is LED- and 16 lowercase hex digits.
func validEntryID(id string) bool {
	h, ok := strings.CutPrefix(id, "LED-")
	if !ok || len(h) != 16 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// explainImported looks for entry x.ID in the ledgers a CPv2 import wrote
// (ledger/imported-<name>.jsonl of each tier, cp-ledger import --legacy):
// an entry there is shown with its legacy origin (metadata.legacy: the
// CPv2 ledger, its line, the line's sha256, its legacy entry_hash and the
// verdict of CPv2's rule).
func explainImported(ctx context.Context, ts []tier, x *Explanation) (bool, error) {
	for _, t := range ts {
		paths, err := filepath.Glob(filepath.Join(t.dir, "ledger", "imported-*.jsonl"))
		if err != nil {
			return false, err
		}
		for _, p := range paths {
			s, err := plane.OpenTierLedger(t.dir, t.info, p, plane.ForReading, plane.Actor{})
			if err != nil {
				return false, err
			}
			var found *ledger.Entry
			err = s.Lines(ctx, 0, -1, func(seq int64, line []byte) bool {
				if !strings.Contains(string(line), `"id":"`+x.ID+`"`) {
					return true
				}
				if e, perr := ledger.ParseLine(line); perr == nil && e.ID == x.ID {
					found = e
					return false
				}
				return true
			})
			if err == nil && found != nil {
				origin := plane.Origin(t.info, p)
				var pr ledger.Inclusion
				pr, err = ledger.ProveInclusion(ctx, s, found.Seq, 0, origin)
				rel := "ledger/" + filepath.Base(p)
				if t.layout.Dir != "" {
					rel = t.layout.Dir + "/" + rel
				}
				x.Status = "recorded in " + rel + " at seq " + itoa(found.Seq)
				x.Attributes = map[string]any{"tier": t.layout.PlaneID, "ledger": rel, "entry": found, "inclusion": pr}
				if lg, ok := found.Metadata["legacy"].(map[string]any); ok && found.EventType == "LEGACY_ENTRY" {
					x.Status += ", imported from CPv2 " + legacyStr(lg["source"]) + " line " + legacyStr(lg["line"]) + " (" + legacyStr(lg["verdict"]) + ")"
					x.Attributes["legacy_origin"] = lg
					if src := legacyStr(lg["source"]); src != "" {
						x.Relations["legacy_source"] = []string{src}
					}
				}
				if found.SubmissionID != "" {
					x.Relations["subject"] = []string{found.SubmissionID}
				}
				x.Entries = append(x.Entries, refOf(t.layout.PlaneID, origin, found))
			}
			s.Close()
			if err != nil || found != nil {
				return found != nil, err
			}
		}
	}
	return false, nil
}

// legacyStr renders a metadata value for a status line.
func legacyStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}
