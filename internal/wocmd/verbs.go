package wocmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/keys"
)

// Defaults of a work order made from flags.
const (
	defaultTier    = "ho1"
	defaultTurns   = 10
	defaultExpires = 72 * time.Hour
)

// engine is the engine's options for the caller.
func engine(c *cli.Call) workorder.Options { return workorder.Options{Actor: c.Actor()} }

// draft builds a work-order draft from the request: the --file document
// first, then the request's fields over it (scope and budget objects, then
// the flags that set one of their members), then the defaults.
func draft(req cli.Request, now time.Time) (workorder.Draft, error) {
	var d workorder.Draft
	if f := req.String("file"); f != "" {
		b, err := regfile.ReadFile(f)
		if err != nil {
			return d, err
		}
		if d, err = workorder.ParseDraft(b); err != nil {
			return d, err
		}
	}
	over := func(field string, dst *string) {
		if req.Has(field) {
			*dst = req.String(field)
		}
	}
	over("type", &d.Type)
	over("title", &d.Title)
	over("description", &d.Description)
	over("tier", &d.Tier)
	over("expires_at", &d.ExpiresAt)
	for _, obj := range []struct {
		field string
		dst   any
	}{{"scope", &d.Scope}, {"budget", &d.Budget}} {
		if !req.Has(obj.field) {
			continue
		}
		b, err := json.Marshal(req[obj.field])
		if err != nil {
			return d, err
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		if err := dec.Decode(obj.dst); err != nil {
			return d, cli.Invalidf("WO_INVALID", "%s: %v", obj.field, err)
		}
	}
	lists := map[string]*[]string{"paths": &d.Scope.Paths, "packages": &d.Scope.Packages, "prompt_packs": &d.Scope.PromptPacks, "event_types": &d.Scope.EventTypes}
	for field, dst := range lists {
		if req.Has(field) {
			*dst = req.Strings(field)
		}
	}
	for field, dst := range map[string]**int64{"llm_calls": &d.Budget.LLMCalls, "llm_tokens": &d.Budget.LLMTokens} {
		if n, ok, err := req.Int(field); err != nil {
			return d, cli.Usagef("--%s: %v", strings.ReplaceAll(field, "_", "-"), err)
		} else if ok {
			*dst = &n
		}
	}
	if n, ok, err := req.Int("turns"); err != nil {
		return d, cli.Usagef("--turns: %v", err)
	} else if ok {
		d.Budget.Turns = n
	}
	if v, ok := req["llm_cost_usd"].(json.Number); ok {
		d.Budget.LLMCostUSD = &v
	}
	if d.Tier == "" {
		d.Tier = defaultTier
	}
	if d.Budget.Turns == 0 {
		d.Budget.Turns = defaultTurns
	}
	if in := req.String("expires_in"); in != "" {
		if d.ExpiresAt != "" && req.Has("expires_at") {
			return d, cli.Usagef("give --expires-in or --expires-at, not both")
		}
		dur, err := time.ParseDuration(in)
		if err != nil || dur <= 0 {
			return d, cli.Usagef("--expires-in %q: want a positive duration (90m, 24h)", in)
		}
		d.ExpiresAt = now.Add(dur).UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	if d.ExpiresAt == "" {
		d.ExpiresAt = now.Add(defaultExpires).UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	return d, nil
}

// CreateResult is create's answer.
type CreateResult struct {
	ID          string               `json:"wo_id"`
	PayloadHash string               `json:"payload_hash"`
	Path        string               `json:"path"`
	WorkOrder   *workorder.WorkOrder `json:"work_order"`
}

func create(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	d, err := draft(req, time.Now())
	if err != nil {
		return cli.Outcome{Err: err}
	}
	r, err := workorder.Create(ctx, root, d, engine(c))
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: &CreateResult{ID: r.WorkOrder.ID, PayloadHash: r.PayloadHash, Path: r.Path, WorkOrder: r.WorkOrder},
		LedgerEntryID: r.Entry.ID, Seq: r.Entry.Seq}
}

func createText(w io.Writer, result any) error {
	r := result.(*CreateResult)
	_, err := fmt.Fprintf(w, "created %s (%s): %s\npayload %s, expires %s\n", r.ID, r.WorkOrder.Type, r.WorkOrder.Title, r.PayloadHash, r.WorkOrder.ExpiresAt)
	return err
}

// ValidateResult is validate's answer.
type ValidateResult struct {
	Valid       bool                 `json:"valid"`
	ID          string               `json:"wo_id,omitempty"`
	PayloadHash string               `json:"payload_hash,omitempty"`
	State       string               `json:"state,omitempty"`
	ExpiresAt   string               `json:"expires_at,omitempty"`
	WorkOrder   *workorder.WorkOrder `json:"work_order,omitempty"`
}

// validate checks a stored work order (its file against the schema and
// §13's rules, its payload hash against WO_CREATED's, its expiry, and once
// approved its approval as G2 will: workorder.Approved), or a draft as
// create would, writing nothing but a WO_EXPIRED it meets.
func validate(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	id := req.String("work_order_id")
	if (id == "") == (req.String("file") == "") {
		return cli.Outcome{Err: cli.Usagef("validate: name a work order (WO-ID) or a draft (--file), one of them")}
	}
	if id == "" {
		d, err := draft(req, time.Now())
		if err != nil {
			return cli.Outcome{Err: err}
		}
		if err := workorder.CheckDraft(d, c.Identity.Subject, time.Now()); err != nil {
			return cli.Outcome{Err: err}
		}
		return cli.Outcome{Result: &ValidateResult{Valid: true, ExpiresAt: d.ExpiresAt}}
	}
	w, h, err := workorder.Read(root, id)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	st, err := workorder.State(ctx, root, id, time.Now())
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if h != st.PayloadHash {
		return cli.Outcome{Err: cli.Errorf(cli.ExitDenied, "WO_PAYLOAD_CHANGED", "work order %s changed since it was created: %s hashes to %s, not %s",
			id, workorder.FilePath(id), h, st.PayloadHash).WithDetails(map[string]any{"wo_id": id, "recorded_hash": st.PayloadHash, "file_hash": h})}
	}
	if st.ExpiryPending {
		if _, err := workorder.RecordExpired(ctx, root, id, engine(c)); err != nil {
			c.Warnf("recording WO_EXPIRED: %v", err)
		}
	}
	if err := w.Check(time.Now()); err != nil {
		return cli.Outcome{Err: err}
	}
	if st.State == workorder.StateApproved || st.State == workorder.StateStarted {
		// An approved work order is valid only with its approval: the
		// question G2 asks (note, signature, keys trusted now).
		if _, err := workorder.Approved(ctx, root, id); err != nil {
			return cli.Outcome{Err: err}
		}
	}
	return cli.Outcome{Result: &ValidateResult{Valid: true, ID: id, PayloadHash: h, State: st.State, ExpiresAt: w.ExpiresAt, WorkOrder: w}}
}

func validateText(w io.Writer, result any) error {
	r := result.(*ValidateResult)
	if r.ID == "" {
		_, err := fmt.Fprintf(w, "draft is valid (expires %s)\n", r.ExpiresAt)
		return err
	}
	_, err := fmt.Fprintf(w, "%s is valid: payload %s, %s, expires %s\n", r.ID, r.PayloadHash, r.State, r.ExpiresAt)
	return err
}

// signer loads the approver's key: --key, else CONTROL_PLANE_SIGNING_KEY.
func signer(c *cli.Call, req cli.Request) (note.Signer, error) {
	spec := req.String("key")
	if spec == "" {
		spec = c.Env.SigningKey
	}
	if spec == "" {
		return nil, cli.Usagef("approve: an approval is always signed: give --key KEY (or CONTROL_PLANE_SIGNING_KEY), a key trusted for work_order")
	}
	return keys.Signer(spec)
}

func approve(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	s, err := signer(c, req)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	a, err := workorder.Approve(ctx, root, req.String("work_order_id"), s, engine(c))
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: a, LedgerEntryID: a.LedgerID, Seq: a.Seq}
}

func approveText(w io.Writer, result any) error {
	a := result.(*workorder.Approval)
	_, err := fmt.Fprintf(w, "approved %s by %s with key %s (WO_APPROVED, HO3 seq %d)\npayload %s, note %s, expires %s\n",
		a.ID, a.ApprovedBy, a.KeyName, a.Seq, a.PayloadHash, a.NotePath, a.ExpiresAt)
	return err
}

func reject(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return decided(workorder.Reject)(ctx, c, req)
}

func cancel(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	return decided(workorder.Cancel)(ctx, c, req)
}

func decided(step func(ctx context.Context, root, id, reason string, opts workorder.Options) (*workorder.Decision, error)) func(context.Context, *cli.Call, cli.Request) cli.Outcome {
	return func(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
		root, err := c.Root()
		if err != nil {
			return cli.Outcome{Err: err}
		}
		d, err := step(ctx, root, req.String("work_order_id"), req.String("reason"), engine(c))
		if err != nil {
			return cli.Outcome{Err: err}
		}
		return cli.Outcome{Result: d, LedgerEntryID: d.Entry.ID, Seq: d.Entry.Seq}
	}
}

func decisionText(w io.Writer, result any) error {
	d := result.(*workorder.Decision)
	_, err := fmt.Fprintf(w, "%s %s: %s\n", d.ID, d.State, d.Reason)
	return err
}

// StatusResult is status's answer: the state from the ledgers, and what
// the file hashes to now.
type StatusResult struct {
	*workorder.Status
	FileHash  string `json:"file_hash,omitempty"`
	FileError string `json:"file_error,omitempty"`
	// Turns is the turns recorded in all its sessions (when it has one).
	Turns *int64 `json:"turns,omitempty"`
}

func status(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	id := req.String("work_order_id")
	st, err := workorder.State(ctx, root, id, time.Now())
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if st.ExpiryPending {
		if s2, err := workorder.RecordExpired(ctx, root, id, engine(c)); err != nil {
			c.Warnf("recording WO_EXPIRED: %v", err)
		} else {
			st = s2
		}
	}
	r := &StatusResult{Status: st}
	if n, err := workorder.Sessions(ctx, root, st); err != nil {
		c.Warnf("counting turns: %v", err)
	} else if len(st.Sessions) > 0 {
		r.Turns = &n
	}
	if _, h, err := workorder.Read(root, id); err != nil {
		r.FileError = cli.AsError(err).Message
	} else {
		r.FileHash = h
		if h != st.PayloadHash {
			r.FileError = fmt.Sprintf("the file hashes to %s, not %s as WO_CREATED recorded (WO_PAYLOAD_CHANGED)", h, st.PayloadHash)
		}
	}
	return cli.Outcome{Result: r}
}

func statusText(w io.Writer, result any) error {
	r := result.(*StatusResult)
	fmt.Fprintf(w, "%s: %s (%s), created by %s, expires %s\npayload %s\n", r.ID, r.State, r.Type, r.CreatedBy, r.ExpiresAt, r.PayloadHash)
	if r.ApprovedBy != "" {
		fmt.Fprintf(w, "approved by %s with key %s\n", r.ApprovedBy, r.ApprovalKey)
	}
	if r.FileError != "" {
		fmt.Fprintf(w, "file: %s\n", r.FileError)
	}
	for _, ses := range r.Sessions {
		fmt.Fprintf(w, "session %s: %d turns (%s)\n", ses.ID, ses.Turns, ses.Ledger)
	}
	for _, e := range r.Events {
		if _, err := fmt.Fprintf(w, "  %s seq %-4d %-13s %s  %s\n", e.Tier, e.Seq, e.EventType, e.Timestamp, e.Actor); err != nil {
			return err
		}
	}
	return nil
}
