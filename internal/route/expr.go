package route

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/itchyny/gojq"
)

// Forbidden are the names an expression may not call or read, because
// their value depends on something other than the request and the policy
// (the clock, the environment, the process's time zone, other input, the
// tool's own build) or because they act outside the evaluation (printing,
// halting the process). A decision must be a function of the request and
// the policy alone, so that it can be replayed. A name is refused whatever
// it resolves to: a policy that defines its own "now" is refused too.
var Forbidden = []string{
	"$ENV", "$__loc__", "$__prog_args", "builtins", "debug", "env", "get_jq_origin", "get_prog_origin",
	"get_search_list", "halt", "halt_error", "input", "input_filename", "input_line_number", "inputs",
	"localtime", "modulemeta", "now", "stderr", "strflocaltime",
}

// EvalTimeout bounds the evaluations of one decision, together (so each
// one too): past it the decision stops with ROUTE_EXPR_TIMEOUT, naming the
// expression that was running. gojq checks its context at every step, so a
// loop (def f: f; f) or a huge range ([range(1e9)]) stops within the
// bound. One deadline per decision rather than per expression: a timer
// costs more than a short rule. It is wall-clock time, so it is generous:
// on a machine loaded forty deep a sound rule was seen to wait 250 ms for
// a core, and a decision must not fail for that. A variable so that tests
// can shrink it.
var EvalTimeout = 2 * time.Second

// expr is one compiled expression of the policy.
type expr struct {
	text string
	hash string                     // sha256: of the expression's text
	code func() (*gojq.Code, error) // compiled once, when first needed
	// native is its direct form when it has one (native.go): tried
	// first, gojq deciding whenever it is not sure.
	native native
	// where names it in messages: "routes/2/when", "deny/0/when".
	where string
}

// compileExpr parses and vets src, then compiles it once: no module
// loader, no environment, no input, so nothing outside the request can
// reach it even if a name slipped past the vetting.
func compileExpr(where, src string) (*expr, error) {
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, policyErr(where, "does not parse: %v", err)
	}
	if len(q.Imports) > 0 || q.Meta != nil {
		return nil, policyErr(where, "imports and includes are refused: an expression reads only the request").
			with("expr", src)
	}
	if bad := forbiddenNames(q); len(bad) > 0 {
		return nil, policyErr(where, "uses %s, which reads outside the request (forbidden: %s)", bad[0], joinNames(Forbidden)).
			with("builtin", bad[0]).with("expr", src)
	}
	h := sha256.Sum256([]byte(src))
	e := &expr{text: src, hash: "sha256:" + hex.EncodeToString(h[:]), native: compileNative(q), where: where}
	if e.native != nil {
		// The native subset names only builtins, with their arities, and
		// no variables: gojq compiles it without fail (FuzzNative checks),
		// so a process whose rules all answer natively never compiles.
		e.code = sync.OnceValues(func() (*gojq.Code, error) { return gojq.Compile(q) })
		return e, nil
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, policyErr(where, "does not compile: %v", err).with("expr", src)
	}
	e.code = func() (*gojq.Code, error) { return code, nil }
	return e, nil
}

func joinNames(ns []string) string {
	s := ""
	for i, n := range ns {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

var funcType = reflect.TypeOf(gojq.Func{})

// forbiddenNames returns the forbidden names q calls or reads, sorted. It
// walks the whole syntax tree by reflection (every field of every node,
// function definitions included), so a node kind added to gojq later is
// walked too rather than skipped.
func forbiddenNames(q *gojq.Query) []string {
	found := map[string]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		case reflect.Struct:
			if v.Type() == funcType {
				if name := v.FieldByName("Name").String(); slices.Contains(Forbidden, name) {
					found[name] = true
				}
			}
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		}
	}
	walk(reflect.ValueOf(q))
	out := make([]string, 0, len(found))
	for n := range found {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var errEvalDeadline = errors.New("expression deadline")

// deadline is the context a decision's evaluations run under, made when
// the first evaluation needs gojq: a native evaluation (native.go) is
// bounded by the expression's and the request's size, and a timer costs
// more than it does.
type deadline struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
}

func (d *deadline) get() context.Context {
	if d.ctx == nil {
		d.ctx, d.cancel = context.WithTimeoutCause(d.parent, EvalTimeout, errEvalDeadline)
	}
	return d.ctx
}

func (d *deadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}

// eval runs the expression over the request and returns its boolean: the
// first value it yields must be true or false. Anything else (another
// type, no value, an error, the deadline) is an error: a policy whose rule
// cannot say yes or no decides nothing. The native form answers first
// when it is sure of a boolean; gojq otherwise, under the decision's
// deadline.
func (e *expr) eval(dl *deadline, req map[string]any) (bool, error) {
	if e.native != nil {
		if v, ok := e.native(req); ok {
			if b, isBool := v.(bool); isBool {
				return b, nil
			}
		}
	}
	code, err := e.code()
	if err != nil { // a native form gojq does not compile: a bug (FuzzNative)
		return false, &Error{code: "ROUTE_EXPR_ERROR", msg: fmt.Sprintf("%s does not compile: %v", e.where, err),
			details: map[string]any{"rule": e.where, "expr_sha256": e.hash}, hint: "report this: the router's native form of the rule and gojq disagree"}
	}
	ctx := dl.get()
	v, ok := code.RunWithContext(ctx, req).Next()
	if err, isErr := v.(error); isErr {
		if ctx.Err() != nil {
			if context.Cause(ctx) == errEvalDeadline {
				return false, &Error{code: "ROUTE_EXPR_TIMEOUT", msg: fmt.Sprintf("%s: still running after %s (the limit for one evaluation): %s", e.where, EvalTimeout, e.text),
					details: map[string]any{"rule": e.where, "expr_sha256": e.hash}, hint: "fix the expression in the router policy (config package); a rule must answer quickly"}
			}
			return false, ctx.Err() // cancelled: a signal
		}
		return false, &Error{code: "ROUTE_EXPR_ERROR", msg: fmt.Sprintf("%s: %v", e.where, err),
			details: map[string]any{"rule": e.where, "expr_sha256": e.hash}, hint: "a rule must answer true or false for every request: guard missing fields (.x? // null)"}
	}
	if !ok {
		return false, &Error{code: "ROUTE_EXPR_ERROR", msg: fmt.Sprintf("%s yields no value (want true or false): %s", e.where, e.text),
			details: map[string]any{"rule": e.where, "expr_sha256": e.hash}, hint: "a rule must answer true or false for every request"}
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, &Error{code: "ROUTE_EXPR_ERROR", msg: fmt.Sprintf("%s yields %s, not a boolean: %s", e.where, kindOf(v), e.text),
			details: map[string]any{"rule": e.where, "expr_sha256": e.hash}, hint: "a rule must answer true or false: compare (== \"x\"), test(...), has(...)"}
	}
	return b, nil
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	}
	return "a number"
}
