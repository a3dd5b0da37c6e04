package routecmd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/llm"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/route"
)

// getenv is the process's environment: the providers' keys and the OTLP
// exporter's settings, read only by the gateway.
var getenv = os.Getenv

// gatewayClassifier asks the gateway (cp-llm's engine, in-process) to
// classify a request no rule matched, with the policy's router prompt
// pack and structured output. The call is a governed call like any
// other: the pack is loaded and checked against its registered digest,
// the caller's budgets (work order, session, plane caps) are reserved and
// settled, and its LLM_CALL entry (HO2) is what the decision's evidence
// names.
//
// The router prompt pack's contract: it is rendered with two variables,
// "request" (the request, as JSON text) and "handlers" (the handlers it
// may answer with, a list of strings), and its answer must be
// {"handler": one of handlers, "confidence": a number in [0, 1]}: the
// schema the gateway asks the provider for and validates the answer
// against (LLM_OUTPUT_INVALID otherwise: the classifier failed, the
// default route).
type gatewayClassifier struct {
	gw   *llm.Gateway
	call llm.Call // who calls, under which work order and session
}

// classifierFor returns the classifier of one request: the run's own (a
// test's) if it has one, else the gateway, asked as the caller.
func (r *router) classifierFor(c *cli.Call, req cli.Request) route.Classifier {
	if r.clf != nil || !r.gateway {
		return r.clf
	}
	if r.gw == nil || r.gw.Root != r.root {
		exp, err := llm.NewExporter(getenv, "cp-route")
		if err != nil {
			c.Warnf("%v: no spans are exported", err)
		}
		r.gw = &llm.Gateway{Root: r.root, Options: llm.Options{Getenv: getenv}, Exporter: exp, Warnf: c.Warnf}
	}
	r.gw.Actor = c.Actor()
	call := llm.Call{Subject: c.Identity.Subject, WorkOrderID: req.String("work_order_id"), SessionID: req.String("session_id")}
	if cl := c.Identity.Claims; cl != nil {
		call.Role = cl.Role
		if call.WorkOrderID == "" {
			call.WorkOrderID = cl.WorkOrder
		}
	}
	return &gatewayClassifier{gw: r.gw, call: call}
}

// classifierSchema is the answer asked for: a handler among handlers and
// a confidence.
func classifierSchema(handlers []string) map[string]any {
	enum := make([]any, len(handlers))
	for i, h := range handlers {
		enum[i] = h
	}
	return map[string]any{
		"type": "object", "required": []any{"handler", "confidence"}, "additionalProperties": false,
		"properties": map[string]any{
			"handler":    map[string]any{"type": "string", "enum": enum},
			"confidence": map[string]any{"type": "number", "minimum": 0, "maximum": 1},
		},
	}
}

func (g *gatewayClassifier) Classify(ctx context.Context, q route.ClassifyQuery) (string, route.Confidence, map[string]any, error) {
	p, err := prompt.Load(g.gw.Root, q.PromptPackID)
	if err != nil {
		return "", "", nil, err
	}
	text, err := json.Marshal(q.Request)
	if err != nil {
		return "", "", nil, err
	}
	handlers := make([]any, len(q.Handlers))
	for i, h := range q.Handlers {
		handlers[i] = h
	}
	rendered, err := p.Render(map[string]any{"request": string(text), "handlers": handlers})
	if err != nil {
		return "", "", nil, err
	}
	call := g.call
	call.Pack = &llm.Pack{ID: rendered.PromptPackID, Version: rendered.Version, SHA256: rendered.SHA256,
		Providers: rendered.Providers, Models: rendered.Models, MaxTokens: rendered.MaxTokens}
	call.Request = provider.Request{Prompt: rendered.Text, Schema: classifierSchema(q.Handlers)}
	call.Route = map[string]any{"mode": "classifier"}
	res, err := g.gw.Complete(ctx, &call)
	if err != nil {
		return "", "", nil, err
	}
	ev := map[string]any{"llm_call": res.LedgerEntryID, "llm_call_seq": res.Seq, "provider_id": res.ProviderID,
		"model": res.Model, "response_sha256": res.ResponseSHA256}
	handler, conf, err := answer(res.Output)
	return handler, conf, ev, err
}

// answer reads the classifier's structured answer (validated by the
// gateway against classifierSchema already).
func answer(out any) (string, route.Confidence, error) {
	m, ok := out.(map[string]any)
	if !ok {
		return "", "", fmt.Errorf("the classifier's answer is not an object")
	}
	h, _ := m["handler"].(string)
	var conf string
	switch v := m["confidence"].(type) {
	case json.Number:
		conf = v.String()
	case float64:
		conf = strconv.FormatFloat(v, 'f', -1, 64)
	case int64:
		conf = strconv.FormatInt(v, 10)
	case int:
		conf = strconv.Itoa(v)
	default:
		return h, "", fmt.Errorf("the classifier's confidence is %T, not a number", v)
	}
	return h, route.Confidence(conf), nil
}
