package auth

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// Event types cp-auth writes to HO3's ledger (pkg/ledger's catalogue).
const (
	EventIssued   = "TOKEN_ISSUED"
	EventRevoked  = "TOKEN_REVOKED"
	EventDecision = "TOOL_DECISION"
)

// Revocation is what one TOKEN_REVOKED entry names (its metadata): exactly
// one of a token id, a subject, a role, or an issue time before which every
// token is revoked (RFC 3339).
type Revocation struct {
	JTI          string `json:"jti,omitempty"`
	Subject      string `json:"sub,omitempty"`
	Role         string `json:"role,omitempty"`
	IssuedBefore string `json:"issued_before,omitempty"`
}

// Check reports whether r names exactly one thing, well formed.
func (r Revocation) Check() error {
	n := 0
	for _, s := range []string{r.JTI, r.Subject, r.Role, r.IssuedBefore} {
		if s != "" {
			n++
		}
		if strings.ContainsRune(s, 0) {
			return fmt.Errorf("a revocation field is not a string")
		}
	}
	if n != 1 {
		return fmt.Errorf("a revocation names exactly one of jti, sub, role, issued_before (got %d)", n)
	}
	if r.IssuedBefore != "" {
		if _, err := time.Parse(time.RFC3339, r.IssuedBefore); err != nil {
			return fmt.Errorf("issued_before %q is not an RFC 3339 time", r.IssuedBefore)
		}
	}
	return nil
}

// Metadata is r as a TOKEN_REVOKED entry's metadata.
func (r Revocation) Metadata() map[string]any {
	m := map[string]any{}
	for k, v := range map[string]string{"jti": r.JTI, "sub": r.Subject, "role": r.Role, "issued_before": r.IssuedBefore} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// revokes reports whether r revokes c.
func (r Revocation) revokes(c *Claims) (bool, error) {
	switch {
	case r.JTI != "":
		return r.JTI == c.ID, nil
	case r.Subject != "":
		return r.Subject == c.Subject, nil
	case r.Role != "":
		return r.Role == c.Role, nil
	case r.IssuedBefore != "":
		t, err := time.Parse(time.RFC3339, r.IssuedBefore)
		if err != nil {
			return false, err
		}
		return c.IssuedAt < t.Unix(), nil
	}
	return false, fmt.Errorf("names nothing")
}

// checkRevoked returns AUTH_REVOKED if a TOKEN_REVOKED entry of the HO3
// ledger of the plane at root (whose tier.json is t) names c's jti, sub or
// role, or an issued_before later than its iat. Fail closed: a ledger that
// cannot be opened or read, or a TOKEN_REVOKED entry that names nothing
// usable, is a refusal (AUTH_INVALID), never "not revoked".
func checkRevoked(ctx context.Context, root string, t plane.Tier, c *Claims) error {
	s, err := plane.OpenTierLedger(root, t, plane.LedgerPath(root, t), plane.ForReading, plane.Actor{})
	if err != nil {
		return refuse(CodeInvalid, "revocations cannot be read from HO3's ledger: %v", err)
	}
	defer s.Close()
	var found, bad error
	err = s.Find(ctx, ledger.Query{EventTypes: []string{EventRevoked}}, func(e *ledger.Entry) bool {
		r := revocationOf(e.Metadata)
		hit, err := r.revokes(c)
		if err == nil {
			err = r.Check()
		}
		if err != nil {
			bad = refuse(CodeInvalid, "revocation entry seq %d cannot be read (%v): every token is refused until it is", e.Seq, err)
			return false
		}
		if hit {
			found = refuse(CodeRevoked, "token revoked by entry seq %d (%s)", e.Seq, r.describe())
			return false
		}
		return true
	})
	if err != nil {
		return refuse(CodeInvalid, "revocations cannot be read from HO3's ledger: %v", err)
	}
	if bad != nil {
		return bad
	}
	return found
}

func revocationOf(m map[string]any) Revocation {
	str := func(k string) string {
		s, _ := m[k].(string)
		if _, ok := m[k]; ok && s == "" {
			return "\x00" // present but not a string: names something unreadable
		}
		return s
	}
	return Revocation{JTI: str("jti"), Subject: str("sub"), Role: str("role"), IssuedBefore: str("issued_before")}
}

func (r Revocation) describe() string {
	switch {
	case r.JTI != "":
		return "jti " + r.JTI
	case r.Subject != "":
		return "sub " + r.Subject
	case r.Role != "":
		return "role " + r.Role
	}
	return "issued before " + r.IssuedBefore
}
