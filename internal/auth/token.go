package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/golang-jwt/jwt/v5"
)

// Leeway is the clock skew a token's times are given: exp may have passed,
// and nbf or iat lie in the future, by at most this much before the token
// is refused (AUTH_EXPIRED). Tokens are checked on the machine that mints
// them, so it is small.
const Leeway = 30 * time.Second

// MaxTokenSize caps a token (and the file CONTROL_PLANE_TOKEN may name):
// ours are a few hundred bytes.
const MaxTokenSize = 8 << 10

// TierNames are the tiers a token may list, highest first.
var TierNames = []string{"ho3", "ho2", "ho1"}

// Roles lists the five roles.
var Roles = []string{RoleAdmin, RoleMaintainer, RoleAuditor, RoleReader, RoleWorker}

// NewID returns a random token id (jti).
func NewID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "tok-" + hex.EncodeToString(b)
}

// Check reports whether c's claims are well formed (what Verify demands of
// a token's payload beyond its signature and times): a subject, a role of
// the five, a non-empty tiers list of distinct known tiers, an audience,
// iat, exp and jti; wo on a worker and only there, session only on a worker.
func (c *Claims) Check() error {
	switch {
	case c.Subject == "":
		return errors.New("no sub")
	case !slices.Contains(Roles, c.Role):
		return fmt.Errorf("role %q is not one of %s", c.Role, strings.Join(Roles, ", "))
	case len(c.Tiers) == 0:
		return errors.New("empty tiers")
	case c.Audience == "":
		return errors.New("no aud")
	case c.IssuedAt <= 0:
		return errors.New("no iat")
	case c.ExpiresAt <= 0:
		return errors.New("no exp")
	case c.ID == "":
		return errors.New("no jti")
	case c.Role == RoleWorker && c.WorkOrder == "":
		return errors.New("a worker token must name its work order (wo)")
	case c.Session != "" && !plane.ValidSessionID(c.Session):
		return fmt.Errorf("session %q is not a session id (SES-YYYYMMDD-<8 hex digits>)", c.Session)
	case c.Role != RoleWorker && (c.WorkOrder != "" || c.Session != ""):
		return fmt.Errorf("wo and session are for worker tokens, not role %s", c.Role)
	}
	for i, t := range c.Tiers {
		if !slices.Contains(TierNames, t) {
			return fmt.Errorf("tier %q is not one of ho3, ho2, ho1", t)
		}
		if slices.Contains(c.Tiers[:i], t) {
			return fmt.Errorf("tier %s listed twice", t)
		}
	}
	return nil
}

// Mint signs c with priv as a JWT (alg EdDSA). The claims are checked
// first (Check): a token that Verify would refuse is never minted.
func Mint(priv ed25519.PrivateKey, c Claims) (string, error) {
	if err := c.Check(); err != nil {
		return "", refuse(CodeInvalid, "token claims: %v", err)
	}
	m := jwt.MapClaims{"sub": c.Subject, "role": c.Role, "tiers": c.Tiers, "aud": c.Audience,
		"iat": c.IssuedAt, "exp": c.ExpiresAt, "jti": c.ID}
	if c.NotBefore != 0 {
		m["nbf"] = c.NotBefore
	}
	if c.WorkOrder != "" {
		m["wo"] = c.WorkOrder
	}
	if c.Session != "" {
		m["session"] = c.Session
	}
	return jwt.NewWithClaims(jwt.SigningMethodEdDSA, m).SignedString(priv)
}

// Verify checks token against every key in pubs (a token is tried against
// each trusted key; nothing it says, kid included, selects one), for the
// plane named audience, at now; then decodes its payload strictly. Errors
// are *Error: AUTH_INVALID (bad signature, other alg, other audience, a
// malformed or unknown claim), AUTH_EXPIRED. Messages never hold the token.
func Verify(token string, pubs []ed25519.PublicKey, audience string, now time.Time) (*Claims, error) {
	if token == "" {
		return nil, refuse(CodeMissing, "no token")
	}
	if len(token) > MaxTokenSize {
		return nil, refuse(CodeInvalid, "token longer than %d bytes", MaxTokenSize)
	}
	if len(pubs) == 0 {
		return nil, refuse(CodeInvalid, "the plane trusts no key for auth")
	}
	set := jwt.VerificationKeySet{}
	for _, p := range pubs {
		set.Keys = append(set.Keys, p)
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(audience),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	_, err := p.Parse(token, func(*jwt.Token) (any, error) { return set, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, refuse(CodeExpired, "token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, refuse(CodeExpired, "token not valid yet (nbf or iat in the future)")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return nil, refuse(CodeInvalid, "token is for another plane (aud is not %s)", audience)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, refuse(CodeInvalid, "token signature does not verify with any key trusted for auth (only alg EdDSA is accepted)")
	default:
		return nil, refuse(CodeInvalid, "token does not verify: %s", jwtReason(err))
	}
	// The signature holds: decode the payload strictly.
	c, err := decodeClaims(token)
	if err != nil {
		return nil, refuse(CodeInvalid, "token claims: %v", err)
	}
	if c.Audience != audience {
		return nil, refuse(CodeInvalid, "token is for another plane (aud is not %s)", audience)
	}
	return c, nil
}

// jwtReason is a jwt error without anything from the token itself.
func jwtReason(err error) string {
	for _, e := range []error{jwt.ErrTokenMalformed, jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenInvalidClaims, jwt.ErrInvalidType} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "token is invalid"
}

// decodeClaims decodes a token's payload into Claims, refusing unknown
// claims, a claim named twice, values of the wrong type, trailing data, and
// claims Check refuses. It decodes with pkg/jcs and a walk of the members,
// as strictly as a strict struct decode (stricter: a member matches its
// claim's name exactly, and null is no claim's value), without
// encoding/json's reflection and the second pass a duplicate check took.
func decodeClaims(token string) (*Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not three segments")
	}
	if err := checkHeader(parts[0]); err != nil {
		return nil, err
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("payload is not base64url")
	}
	m, err := jsonObject(b)
	if err != nil {
		return nil, fmt.Errorf("payload: %v", err)
	}
	var c Claims
	for k, v := range m {
		var ok bool
		switch k {
		case "sub":
			c.Subject, ok = v.(string)
		case "role":
			c.Role, ok = v.(string)
		case "aud":
			c.Audience, ok = v.(string)
		case "jti":
			c.ID, ok = v.(string)
		case "wo":
			c.WorkOrder, ok = v.(string)
		case "session":
			c.Session, ok = v.(string)
		case "tiers":
			var list []any
			list, ok = v.([]any)
			c.Tiers = make([]string, len(list))
			for i, t := range list {
				var isStr bool
				c.Tiers[i], isStr = t.(string)
				ok = ok && isStr
			}
		case "iat", "nbf", "exp":
			n, isNum := v.(json.Number)
			i, err := strconv.ParseInt(string(n), 10, 64)
			ok = isNum && err == nil
			switch k {
			case "iat":
				c.IssuedAt = i
			case "nbf":
				c.NotBefore = i
			default:
				c.ExpiresAt = i
			}
		default:
			return nil, fmt.Errorf("payload: unknown claim %q", k)
		}
		if !ok {
			return nil, fmt.Errorf("payload: claim %q is not of its type", k)
		}
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return &c, nil
}

// jsonObject decodes b as exactly one JSON object, strictly (pkg/jcs: no
// member named twice, since JSON decoders disagree on which one wins;
// nothing after it; valid UTF-8), numbers as json.Number.
func jsonObject(b []byte) (map[string]any, error) {
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// checkHeader refuses a header that says more than alg EdDSA, typ JWT and
// a kid (which selects nothing: every trusted key is tried): crit, jku,
// x5u, jwk and the rest are never honoured, so they are refused rather
// than ignored.
func checkHeader(seg string) error {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return errors.New("header is not base64url")
	}
	m, err := jsonObject(b)
	if err != nil {
		return fmt.Errorf("header: %v", err)
	}
	for k, v := range m {
		_, ok := v.(string)
		switch {
		case k != "alg" && k != "typ" && k != "kid":
			return fmt.Errorf("header: unknown member %q", k)
		case !ok:
			return fmt.Errorf("header: %s is not a string", k)
		}
	}
	if m["alg"] != "EdDSA" || m["typ"] != nil && m["typ"] != "JWT" {
		return errors.New("header: want alg EdDSA, typ JWT")
	}
	return nil
}
