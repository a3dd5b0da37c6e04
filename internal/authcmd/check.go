package authcmd

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// CheckResult is check's answer, for an allow and (as the error's result)
// for a deny.
type CheckResult struct {
	Decision string `json:"decision"` // allow or deny
	Subject  string `json:"subject"`
	Role     string `json:"role,omitempty"`
	Action   string `json:"action"`
	Resource string `json:"resource"`
	Reason   string `json:"reason,omitempty"`
	Policy   string `json:"policy,omitempty"`
}

// denied is check's refusal: TOOL_DENIED with its result and its entry.
type denied struct {
	r      *CheckResult
	id     string
	seq    int64
	reason string
}

func (e *denied) Error() string                      { return e.reason }
func (e *denied) Code() string                       { return "TOOL_DENIED" }
func (e *denied) Kind() string                       { return cli.KindRefusal }
func (e *denied) ErrorResult() any                   { return e.r }
func (e *denied) RecordedAs() (id string, seq int64) { return e.id, e.seq }

func check(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	action, resource := req.String("action"), req.String("resource")
	if action == "" || resource == "" {
		return cli.Outcome{Err: cli.Usagef("check needs --action A and --resource R")}
	}
	var reqCtx map[string]any
	if req.Has("context") {
		m, ok := req["context"].(map[string]any)
		if !ok {
			return cli.Outcome{Err: cli.Usagef("--context: want a JSON object")}
		}
		reqCtx = m
	}
	id := c.Identity // admitted by the request path before this verb ran
	r := &CheckResult{Decision: "allow", Subject: id.Subject, Action: action, Resource: resource}
	if id.Claims != nil {
		r.Role = id.Claims.Role
	}
	verdict := auth.DecideTool(id.Claims, action)
	if verdict == nil {
		cl := id.Claims
		if cl == nil {
			cl = &auth.Claims{Subject: id.Subject}
		}
		verdict = auth.LoadPolicy(root).Evaluate(auth.Request{Claims: cl, Resource: resource, Context: reqCtx, Now: time.Now(),
			Access: auth.Access{Root: root, Subject: id.Subject, Action: auth.Action(action), Tool: "cp-auth", Verb: "check"}})
	}
	if verdict != nil {
		r.Decision, r.Reason = "deny", verdict.Error()
		if ae, ok := verdict.(*auth.Error); ok {
			r.Policy = ae.Policy
		}
	}
	m := map[string]any{"subject": r.Subject, "action": action, "resource": resource, "decision": r.Decision}
	if r.Policy != "" {
		m["policy"] = r.Policy
	}
	if r.Role != "" {
		m["role"] = r.Role
	}
	e, err := plane.Record(ctx, root, c.Actor(), ledger.Draft{EventType: auth.EventDecision, SubmissionID: action,
		Decision: map[string]string{"allow": "ALLOWED", "deny": "DENIED"}[r.Decision], Reason: r.Reason, Metadata: m})
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if verdict != nil {
		return cli.Outcome{Err: &denied{r: r, id: e.ID, seq: e.Seq, reason: fmt.Sprintf("%s on %q denied: %v", action, resource, verdict)}}
	}
	return cli.Outcome{Result: r, LedgerEntryID: e.ID, Seq: e.Seq}
}

func checkText(w io.Writer, result any) error {
	r := result.(*CheckResult)
	line := fmt.Sprintf("%s: %s %s on %q", r.Decision, r.Subject, r.Action, r.Resource)
	if r.Reason != "" {
		line += ": " + r.Reason
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
