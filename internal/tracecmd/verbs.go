package tracecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/trace"
)

// outcome turns an engine answer into the verb's outcome; a negative
// verdict that carries its answer (a tampered file's provenance) keeps it
// under the error.
func outcome(result any, err error) cli.Outcome {
	if err != nil {
		var te *trace.Error
		if errors.As(err, &te) && te.Result != nil {
			e := cli.AsError(err)
			e.Result = te.Result
			return cli.Outcome{Err: e}
		}
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: result}
}

func rooted(c *cli.Call, fn func(root string) (any, error)) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return outcome(fn(root))
}

func inventory(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return rooted(c, func(root string) (any, error) { return trace.Installed(ctx, root, req.String("plane")) })
}

func file(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return rooted(c, func(root string) (any, error) { return trace.File(ctx, root, req.String("path")) })
}

func explain(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return rooted(c, func(root string) (any, error) { return trace.Explain(ctx, root, req.String("id")) })
}

// FrameworksResult is compliance frameworks' answer.
type FrameworksResult struct {
	Frameworks []trace.FrameworkRow `json:"frameworks"`
}

// SpecsResult is compliance specs' answer.
type SpecsResult struct {
	Specs []trace.SpecRow `json:"specs"`
}

// GatesResult is compliance gates' answer.
type GatesResult struct {
	Gates []trace.Gate `json:"gates"`
}

func frameworks(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return rooted(c, func(root string) (any, error) {
		f, err := trace.Frameworks(ctx, root)
		return &FrameworksResult{Frameworks: f}, err
	})
}

func specs(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return rooted(c, func(root string) (any, error) {
		s, err := trace.Specs(ctx, root)
		return &SpecsResult{Specs: s}, err
	})
}

func summary(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return rooted(c, func(root string) (any, error) { return trace.Summarize(ctx, root) })
}

func gates(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return rooted(c, func(root string) (any, error) {
		g, err := trace.Gates(ctx, root)
		return &GatesResult{Gates: g}, err
	})
}

func agentContext(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return rooted(c, func(root string) (any, error) {
		return trace.Context(ctx, root, trace.ContextOptions{Identity: c.Identity, WorkOrder: req.String("work_order_id"),
			Session: req.String("session_id"), Now: time.Now()})
	})
}

// table writes rows as aligned columns under a header.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ReplaceAll(header, " ", "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func seqOf(p *int64) string {
	if p == nil {
		return "UNRECORDED"
	}
	return fmt.Sprint(*p)
}

// installedAt is the seq of the entry that installed p, prefixed with the
// tier whose ledger holds it when that is not p's own (a kernel release,
// recorded in HO3).
func installedAt(p trace.Package) string {
	if p.InstalledTier != "" && p.InstalledSeq != nil {
		return p.InstalledTier + ":" + seqOf(p.InstalledSeq)
	}
	return seqOf(p.InstalledSeq)
}

func inventoryText(w io.Writer, result any) error {
	inv := result.(*trace.Inventory)
	var rows [][]string
	for _, t := range inv.Tiers {
		for _, p := range t.Packages {
			rows = append(rows, []string{t.Tier, p.PackageID, p.Version, p.PackageType, dash(p.SpecID), dash(p.FrameworkID),
				fmt.Sprint(p.Files), p.Signature, installedAt(p)})
		}
	}
	return table(w, "TIER PACKAGE VERSION TYPE SPEC FRAMEWORK FILES SIGNATURE INSTALLED_SEQ", rows)
}

func fileText(w io.Writer, result any) error {
	p := result.(*trace.Provenance)
	verdict := "INTACT"
	if p.State != trace.StateIntact {
		verdict = "TAMPERED (" + p.State + ")"
	}
	fmt.Fprintf(w, "%s  %s\n", p.Path, verdict)
	fmt.Fprintf(w, "owner     %s %s (manifest %s)\n", p.Owner.PackageID, p.Owner.Version, p.Owner.ManifestHash)
	fmt.Fprintf(w, "recorded  %s  mode %s\n", p.RecordedSHA256, p.RecordedMode)
	fmt.Fprintf(w, "on disk   %s  mode %s\n", dash(p.DiskSHA256), dash(p.DiskMode))
	fmt.Fprintf(w, "proof     seq %d and %d in %s, tree %d (pipe the JSON into cp-ledger verify)\n\n",
		p.Evidence.Install.Seq, p.Evidence.Latest.Seq, p.Evidence.Ledger, p.Evidence.LatestProof.TreeSize)
	var rows [][]string
	for _, t := range p.History {
		what := t.Version
		if t.VersionID != "" {
			what = t.VersionID
		}
		rows = append(rows, []string{fmt.Sprint(t.Seq), t.Timestamp, t.EventType, dash(t.PackageID), t.Action, dash(t.Change), what, t.Actor})
	}
	return table(w, "SEQ TIME EVENT PACKAGE ACTION CHANGE VERSION ACTOR", rows)
}

func explainText(w io.Writer, result any) error {
	x := result.(*trace.Explanation)
	fmt.Fprintf(w, "%s  %s  %s\n", x.ID, strings.ReplaceAll(x.Kind, "_", " "), dash(x.Status))
	keys := make([]string, 0, len(x.Attributes))
	for k := range x.Attributes {
		if k != "entry" && k != "inclusion" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-14s %v\n", k, show(x.Attributes[k]))
	}
	rels := make([]string, 0, len(x.Relations))
	for k := range x.Relations {
		rels = append(rels, k)
	}
	slices.Sort(rels)
	for _, k := range rels {
		v := x.Relations[k]
		if len(v) > 8 {
			v = append(v[:8:8], fmt.Sprintf("... %d more", len(x.Relations[k])-8))
		}
		fmt.Fprintf(w, "  → %-12s %s\n", k, dash(strings.Join(v, ", ")))
	}
	if len(x.Entries) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	var rows [][]string
	for _, e := range x.Entries {
		rows = append(rows, []string{e.Tier, fmt.Sprint(e.Seq), e.Timestamp, e.EventType, dash(e.Decision), e.ID})
	}
	return table(w, "TIER SEQ TIME EVENT DECISION ENTRY", rows)
}

func show(v any) string {
	switch x := v.(type) {
	case *int64:
		return seqOf(x)
	case string:
		return dash(x)
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}

func frameworksText(w io.Writer, result any) error {
	var rows [][]string
	for _, f := range result.(*FrameworksResult).Frameworks {
		rows = append(rows, []string{f.FrameworkID, f.Version, f.Status, fmt.Sprint(f.Specs), fmt.Sprint(f.Packages), f.Title})
	}
	return table(w, "FRAMEWORK VERSION STATUS SPECS PACKAGES TITLE", rows)
}

func specsText(w io.Writer, result any) error {
	var rows [][]string
	for _, s := range result.(*SpecsResult).Specs {
		fw := s.FrameworkID
		if !s.FrameworkActive {
			fw += " (NOT ACTIVE)"
		}
		rows = append(rows, []string{s.SpecID, s.Version, s.Status, fw, fmt.Sprint(s.Packages), s.Title})
	}
	return table(w, "SPEC VERSION STATUS FRAMEWORK PACKAGES TITLE", rows)
}

func gateRows(gs []trace.Gate) [][]string {
	var rows [][]string
	for _, g := range gs {
		last := []string{"never recorded", "-", "-"}
		if r := g.Last; r != nil {
			v := "PASSED"
			if !r.Passed {
				v = "FAILED"
			}
			last = []string{v, r.Tier + " seq " + fmt.Sprint(r.Seq), r.Timestamp}
		}
		rows = append(rows, append([]string{g.Gate}, append(last, g.Checks)...))
	}
	return rows
}

func gatesText(w io.Writer, result any) error {
	if err := table(w, "GATE LAST_VERDICT ENTRY TIME CHECKS", gateRows(result.(*GatesResult).Gates)); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\n(verdicts are those recorded by cp-gate check --record; run it for a fresh one)")
	return err
}

func summaryText(w io.Writer, result any) error {
	s := result.(*trace.Summary)
	fmt.Fprintf(w, "frameworks  %d active of %d\n", s.Frameworks.Active, s.Frameworks.Total)
	fmt.Fprintf(w, "specs       %d active of %d\n", s.Specs.Active, s.Specs.Total)
	for _, t := range []string{"ho3", "ho2", "ho1"} {
		if n, ok := s.Packages[t]; ok {
			fmt.Fprintf(w, "%s         %d packages, %d files\n", t, n, s.Files[t])
		}
	}
	fmt.Fprintf(w, "work orders %d created; policy %s (%s)\n", s.WorkOrders, s.WorkOrderUse, s.ConfigSource)
	fmt.Fprintf(w, "denials     %d AUTHZ_DENIED\n", s.Denials)
	fmt.Fprintf(w, "weakened    %d controls\n", len(s.Weakened))
	for _, wk := range s.Weakened {
		fmt.Fprintf(w, "            %s seq %d %s %s: %s\n", wk.Tier, wk.Seq, wk.EventType, wk.Subject, wk.Control)
	}
	fmt.Fprintln(w)
	var rows [][]string
	for _, l := range s.Ledgers {
		signed := "unsigned"
		if l.Signed {
			signed = "signed"
		}
		rows = append(rows, []string{l.Tier, l.Ledger, fmt.Sprint(l.TreeSize), fmt.Sprintf("%d %s", l.CheckpointSize, signed), short(l.EntryHash)})
	}
	if err := table(w, "TIER LEDGER ENTRIES CHECKPOINT HEAD", rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return table(w, "GATE LAST_VERDICT ENTRY TIME CHECKS", gateRows(s.Gates))
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return dash(h)
}

func contextText(w io.Writer, result any) error {
	a := result.(*trace.AgentContext)
	fmt.Fprintf(w, "plane %s (%s); caller %s (auth %s", a.Plane.PlaneName, a.Plane.Tier, a.Identity.Subject, a.Identity.Auth)
	if a.Identity.Role != "" {
		fmt.Fprintf(w, ", role %s, tiers %s", a.Identity.Role, strings.Join(a.Identity.Tiers, ","))
	}
	fmt.Fprintln(w, ")")
	if wo := a.WorkOrder; wo != nil {
		fmt.Fprintf(w, "work order %s %s: %s; turns left %d of %d\n", wo.ID, wo.State, wo.Title, wo.TurnsLeft, wo.Budget.Turns)
	}
	fmt.Fprintln(w)
	var rows [][]string
	for _, l := range a.Ledgers {
		rows = append(rows, []string{"ledger", l.Ledger, fmt.Sprint(l.Seq), l.EntryHash})
	}
	if s := a.Session; s != nil {
		rows = append(rows, []string{"ledger", s.Ledger, fmt.Sprint(s.Seq), s.EntryHash})
	}
	if wo := a.WorkOrder; wo != nil {
		rows = append(rows, []string{"file", wo.Path, "-", wo.SHA256})
	}
	for _, c := range a.Config {
		rows = append(rows, []string{"file", c.Path, "-", c.SHA256})
	}
	for _, group := range [][]trace.Artifact{a.Frameworks, a.Specs, a.Packages, a.PromptPacks} {
		for _, x := range group {
			name := x.Artifact
			if x.Tier != "" {
				name += " (" + x.Tier + ")"
			}
			rows = append(rows, []string{"artifact", name, x.Version, x.SHA256})
		}
	}
	if err := table(w, "KIND NAME SEQ/VERSION HASH", rows); err != nil {
		return err
	}
	for _, n := range a.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}
