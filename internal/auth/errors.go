package auth

import "fmt"

// Codes of the auth engine's refusals (DESIGN.md §8). All are refusals:
// a negative verdict, exit 1.
const (
	CodeMissing     = "AUTH_MISSING"       // no token where one is required
	CodeInvalid     = "AUTH_INVALID"       // a token that does not verify or decode strictly
	CodeExpired     = "AUTH_EXPIRED"       // exp passed, or nbf/iat in the future beyond Leeway
	CodeRevoked     = "AUTH_REVOKED"       // named by a TOKEN_REVOKED entry in HO3
	CodeOffRefused  = "AUTH_OFF_REFUSED"   // CONTROL_PLANE_AUTH=off from a user that does not own the plane
	CodeDenied      = "FIREWALL_DENIED"    // the table, or a Cedar forbid, refuses the access
	CodePolicy      = "POLICY_INVALID"     // config/policy.cedar does not parse, holds a permit, or cannot be read
	CodeNotWritable = "PLANE_NOT_WRITABLE" // auth off, a mutating verb from a user that cannot write the tier
	CodeKey         = "AUTH_KEY_UNAVAILABLE"
)

// Error is a refusal of the auth engine, with a stable Code. Its message
// never holds a token.
type Error struct {
	code string
	msg  string
	// Policy names the Cedar policy (id and position) that forbade, if any.
	Policy string
}

func (e *Error) Error() string { return e.msg }

// Code returns the refusal's code (AUTH_INVALID, FIREWALL_DENIED, ...).
func (e *Error) Code() string { return e.code }

// Kind is "refusal": whatever its code, an auth error is a negative verdict.
func (e *Error) Kind() string { return "refusal" }

// ErrorDetails names the policy that forbade, for the JSON envelope.
func (e *Error) ErrorDetails() map[string]any {
	if e.Policy == "" {
		return nil
	}
	return map[string]any{"policy": e.Policy}
}

func refuse(code, format string, args ...any) *Error {
	return &Error{code: code, msg: fmt.Sprintf(format, args...)}
}
