package route

import "fmt"

// Error is a routing error: a policy refused at load, an expression that
// failed at run time, a request denied, a replay that differs. Its Code is
// one of ROUTE_POLICY_INVALID, ROUTE_HANDLER_UNKNOWN,
// ROUTE_CAPABILITY_MISSING, ROUTE_EXPR_TIMEOUT, ROUTE_EXPR_ERROR,
// ROUTE_DENIED, ROUTE_LIMIT_EXCEEDED, ROUTE_REPLAY_DIFFERENT,
// ROUTE_REPLAY_INVALID, CAPABILITIES_INVALID.
type Error struct {
	code    string
	msg     string
	hint    string
	details map[string]any
	result  any
}

func (e *Error) Error() string { return e.msg }

// Code returns the error's stable code.
func (e *Error) Code() string { return e.code }

// ErrorDetails returns what the error is about (the rule, the handler).
func (e *Error) ErrorDetails() map[string]any { return e.details }

// ErrorHint says what to do.
func (e *Error) ErrorHint() string { return e.hint }

// ErrorResult is a negative verdict's full result (a replay that differs).
func (e *Error) ErrorResult() any { return e.result }

func (e *Error) with(k string, v any) *Error {
	if e.details == nil {
		e.details = map[string]any{}
	}
	e.details[k] = v
	return e
}

const policyHint = "fix config/router_policy.json in a config package (cp-pkg init-config, stage, sign, cp-install install)"

func policyErr(where, format string, args ...any) *Error {
	return &Error{code: "ROUTE_POLICY_INVALID", msg: "router policy " + where + ": " + fmt.Sprintf(format, args...),
		hint: policyHint, details: map[string]any{"rule": where}}
}
