package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/pkg/keys"
)

var testNow = time.Unix(1_800_000_000, 0)

func testKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub, priv
}

func testClaims() Claims {
	return Claims{Subject: "alice", Role: RoleAdmin, Tiers: []string{"ho3", "ho2", "ho1"}, Audience: "plane-a",
		IssuedAt: testNow.Unix(), ExpiresAt: testNow.Add(time.Hour).Unix(), ID: "tok-1"}
}

func mustMint(t testing.TB, priv ed25519.PrivateKey, c Claims) string {
	tok, err := Mint(priv, c)
	require.NoError(t, err)
	return tok
}

// signRaw signs an arbitrary header and payload with an Ed25519 key: what
// an attacker holding the key (or a buggy minter) could produce.
func signRaw(priv ed25519.PrivateKey, header, payload string) string {
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	return s + "." + enc.EncodeToString(ed25519.Sign(priv, []byte(s)))
}

func requireCode(t *testing.T, err error, code string) {
	t.Helper()
	require.Error(t, err)
	e, ok := err.(*Error)
	require.True(t, ok, "want *Error, got %T %v", err, err)
	require.Equal(t, code, e.Code(), "message: %v", err)
}

func TestVerifyRoundTrip(t *testing.T) {
	pub, priv := testKey(t)
	c := testClaims()
	got, err := Verify(mustMint(t, priv, c), []ed25519.PublicKey{pub}, "plane-a", testNow)
	require.NoError(t, err)
	require.Equal(t, c, *got)
	// Tried against every trusted key: the right one need not come first.
	other, _ := testKey(t)
	_, err = Verify(mustMint(t, priv, c), []ed25519.PublicKey{other, pub}, "plane-a", testNow)
	require.NoError(t, err)
}

func TestVerifyRefusals(t *testing.T) {
	pub, priv := testKey(t)
	_, otherPriv := testKey(t)
	keys := []ed25519.PublicKey{pub}
	good := mustMint(t, priv, testClaims())
	enc := base64.RawURLEncoding
	parts := strings.Split(good, ".")
	with := func(f func(*Claims)) string { c := testClaims(); f(&c); return mustMint(t, priv, c) }
	payload := func(extra string) string {
		b, _ := json.Marshal(testClaims())
		return strings.TrimSuffix(string(b), "}") + extra + "}"
	}
	hs256, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "role": "admin",
		"tiers": []string{"ho3"}, "aud": "plane-a", "iat": testNow.Unix(), "exp": testNow.Add(time.Hour).Unix(), "jti": "x"}).SignedString([]byte(pub))
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rs256, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "alice", "role": "admin",
		"tiers": []string{"ho3"}, "aud": "plane-a", "iat": testNow.Unix(), "exp": testNow.Add(time.Hour).Unix(), "jti": "x"}).SignedString(rsaKey)
	require.NoError(t, err)
	for _, tc := range []struct {
		name, token, code string
	}{
		{"empty", "", CodeMissing},
		{"expired", with(func(c *Claims) { c.ExpiresAt = testNow.Add(-time.Minute).Unix() }), CodeExpired},
		{"not yet valid (nbf)", with(func(c *Claims) {
			c.NotBefore = testNow.Add(time.Hour).Unix()
			c.ExpiresAt = testNow.Add(2 * time.Hour).Unix()
		}), CodeExpired},
		{"issued in the future", with(func(c *Claims) {
			c.IssuedAt = testNow.Add(time.Hour).Unix()
			c.ExpiresAt = testNow.Add(2 * time.Hour).Unix()
		}), CodeExpired},
		{"other plane", with(func(c *Claims) { c.Audience = "plane-b" }), CodeInvalid},
		{"other key", mustMint(t, otherPriv, testClaims()), CodeInvalid},
		{"alg none", enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", CodeInvalid},
		{"HS256 keyed with the public key", hs256, CodeInvalid},
		{"RS256", rs256, CodeInvalid},
		{"RS256 header, Ed25519 signature", signRaw(priv, `{"alg":"RS256","typ":"JWT"}`, payload("")), CodeInvalid},
		{"truncated", good[:len(good)-5], CodeInvalid},
		{"two segments", parts[0] + "." + parts[1], CodeInvalid},
		{"bad base64", parts[0] + ".!!!." + parts[2], CodeInvalid},
		{"signature of another payload", parts[0] + "." + strings.Split(with(func(c *Claims) { c.Role = RoleReader }), ".")[1] + "." + parts[2], CodeInvalid},
		{"jku in the header", signRaw(priv, `{"alg":"EdDSA","typ":"JWT","jku":"https://evil.example/keys"}`, payload("")), CodeInvalid},
		{"crit in the header", signRaw(priv, `{"alg":"EdDSA","crit":["exp"]}`, payload("")), CodeInvalid},
		{"kid is ignored", signRaw(priv, `{"alg":"EdDSA","typ":"JWT","kid":"someone-else"}`, payload("")), ""},
		{"unknown claim", signRaw(priv, `{"alg":"EdDSA","typ":"JWT"}`, payload(`,"admin":true`)), CodeInvalid},
		{"duplicate claim", signRaw(priv, `{"alg":"EdDSA","typ":"JWT"}`, payload(`,"role":"admin"`)), CodeInvalid},
		{"role not one of five", signRaw(priv, `{"alg":"EdDSA"}`, strings.Replace(payload(""), `"role":"admin"`, `"role":"root"`, 1)), CodeInvalid},
		{"unknown tier", signRaw(priv, `{"alg":"EdDSA"}`, strings.Replace(payload(""), `"ho1"`, `"ho4"`, 1)), CodeInvalid},
		{"duplicate tier", signRaw(priv, `{"alg":"EdDSA"}`, strings.Replace(payload(""), `"ho1"`, `"ho3"`, 1)), CodeInvalid},
		{"empty tiers", signRaw(priv, `{"alg":"EdDSA"}`, strings.Replace(payload(""), `["ho3","ho2","ho1"]`, `[]`, 1)), CodeInvalid},
		{"no exp", signRaw(priv, `{"alg":"EdDSA"}`, `{"sub":"a","role":"admin","tiers":["ho3"],"aud":"plane-a","iat":1800000000,"jti":"x"}`), CodeInvalid},
		{"aud as a list", signRaw(priv, `{"alg":"EdDSA"}`, strings.Replace(payload(""), `"aud":"plane-a"`, `"aud":["plane-a"]`, 1)), CodeInvalid},
		{"fractional exp", signRaw(priv, `{"alg":"EdDSA"}`, `{"sub":"a","role":"admin","tiers":["ho3"],"aud":"plane-a","iat":1800000000,"exp":1800000100.5,"jti":"x"}`), CodeInvalid},
		{"worker without wo", signRaw(priv, `{"alg":"EdDSA"}`, strings.Replace(payload(""), `"role":"admin"`, `"role":"worker"`, 1)), CodeInvalid},
		{"wo on an admin", signRaw(priv, `{"alg":"EdDSA"}`, payload(`,"wo":"WO-1"`)), CodeInvalid},
		{"session on an admin", signRaw(priv, `{"alg":"EdDSA"}`, payload(`,"session":"S"`)), CodeInvalid},
		{"a claim in another case", signRaw(priv, `{"alg":"EdDSA"}`, strings.Replace(payload(""), `"role":`, `"Role":`, 1)), CodeInvalid},
		{"a claim null", signRaw(priv, `{"alg":"EdDSA"}`, payload(`,"wo":null`)), CodeInvalid},
		{"a tier not a string", signRaw(priv, `{"alg":"EdDSA"}`, strings.Replace(payload(""), `"ho1"`, `1`, 1)), CodeInvalid},
		{"exp as a string", signRaw(priv, `{"alg":"EdDSA"}`, `{"sub":"a","role":"admin","tiers":["ho3"],"aud":"plane-a","iat":1800000000,"exp":"1800000100","jti":"x"}`), CodeInvalid},
		{"exp in exponent form", signRaw(priv, `{"alg":"EdDSA"}`, `{"sub":"a","role":"admin","tiers":["ho3"],"aud":"plane-a","iat":1800000000,"exp":18000001e2,"jti":"x"}`), CodeInvalid},
		{"payload a list", signRaw(priv, `{"alg":"EdDSA"}`, `[]`), CodeInvalid},
		{"header member named twice", signRaw(priv, `{"alg":"EdDSA","alg":"EdDSA"}`, payload("")), CodeInvalid},
		{"typ not JWT", signRaw(priv, `{"alg":"EdDSA","typ":"JOSE"}`, payload("")), CodeInvalid},
		{"kid not a string", signRaw(priv, `{"alg":"EdDSA","kid":1}`, payload("")), CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.token, keys, "plane-a", testNow)
			if tc.code == "" {
				require.NoError(t, err)
				return
			}
			requireCode(t, err, tc.code)
			if tc.token != "" {
				require.NotContains(t, err.Error(), tc.token, "a message never holds the token")
			}
		})
	}
	// The strict decode is reached: a well-signed token with an unknown claim
	// is refused for that reason, not an earlier one.
	_, err = Verify(signRaw(priv, `{"alg":"EdDSA","typ":"JWT"}`, payload(`,"admin":true`)), keys, "plane-a", testNow)
	require.ErrorContains(t, err, "admin")
	// Within the leeway: still valid.
	_, err = Verify(with(func(c *Claims) {
		c.ExpiresAt = testNow.Add(-Leeway / 2).Unix()
		c.IssuedAt = testNow.Add(-time.Hour).Unix()
	}), keys, "plane-a", testNow)
	require.NoError(t, err)
}

func TestMintRefusesBadClaims(t *testing.T) {
	_, priv := testKey(t)
	c := testClaims()
	c.Role = RoleWorker
	_, err := Mint(priv, c)
	requireCode(t, err, CodeInvalid)
}

// TestIndependentDecode: a token minted here verifies with go-jose, another
// JOSE implementation, and with crypto/ed25519 by hand.
func TestIndependentDecode(t *testing.T) {
	pub, priv := testKey(t)
	tok := mustMint(t, priv, testClaims())
	parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.EdDSA})
	require.NoError(t, err)
	var std josejwt.Claims
	var ours struct {
		Role  string   `json:"role"`
		Tiers []string `json:"tiers"`
	}
	require.NoError(t, parsed.Claims(pub, &std, &ours))
	require.NoError(t, std.Validate(josejwt.Expected{AnyAudience: josejwt.Audience{"plane-a"}, Time: testNow}))
	require.Equal(t, "alice", std.Subject)
	require.Equal(t, "admin", ours.Role)
	require.Equal(t, []string{"ho3", "ho2", "ho1"}, ours.Tiers)
	p := strings.Split(tok, ".")
	sig, err := base64.RawURLEncoding.DecodeString(p[2])
	require.NoError(t, err)
	require.True(t, ed25519.Verify(pub, []byte(p[0]+"."+p[1]), sig))
	h, _ := base64.RawURLEncoding.DecodeString(p[0])
	require.JSONEq(t, `{"alg":"EdDSA","typ":"JWT"}`, string(h))
}

func TestNoteKeys(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/k/auth.key"
	vkey, undo, err := MakeKey(path, "plane-a", t.TempDir())
	require.NoError(t, err)
	defer undo()
	priv, name, err := LoadKey(path)
	require.NoError(t, err)
	require.Equal(t, "plane-a-auth", name)
	v, err := VerifierOf(priv, name)
	require.NoError(t, err)
	require.Equal(t, vkey, v)
	pub, err := publicKey(vkey)
	require.NoError(t, err)
	_, err = Verify(mustMint(t, priv, testClaims()), []ed25519.PublicKey{pub}, "plane-a", testNow)
	require.NoError(t, err)
	_, _, err = MakeKey(path, "plane-a", t.TempDir())
	requireCode(t, err, "AUTH_INITIALIZED")
	root := t.TempDir()
	_, _, err = MakeKey(root+"/x.key", "plane-a", root)
	requireCode(t, err, CodeKey)
}

func FuzzVerify(f *testing.F) {
	pub, priv := testKey(f)
	good := mustMint(f, priv, testClaims())
	f.Add(good)
	f.Add(good[:20])
	f.Add("e30.e30.")
	f.Add(signRaw(priv, `{"alg":"none"}`, `{}`))
	minted := map[string]bool{good: true}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := Verify(tok, []ed25519.PublicKey{pub}, "plane-a", testNow)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		// Admitted: its signature must be ours over exactly its two segments
		// and its claims must be the ones we minted (Ed25519 is not
		// malleable, and a different encoding of the same claims would
		// need a new signature).
		p := strings.Split(tok, ".")
		sig, err := base64.RawURLEncoding.DecodeString(p[2])
		if err != nil || !ed25519.Verify(pub, []byte(p[0]+"."+p[1]), sig) {
			t.Fatalf("admitted a token the key did not sign")
		}
		if !minted[tok] || c.Subject != "alice" {
			t.Fatalf("admitted a token not minted here: %q", tok)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	pub, priv := testKey(b)
	tok := mustMint(b, priv, testClaims())
	keys := []ed25519.PublicKey{pub}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(tok, keys, "plane-a", testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyEd25519(b *testing.B) {
	pub, priv := testKey(b)
	sig := ed25519.Sign(priv, []byte("message"))
	for b.Loop() {
		keys.VerifyEd25519(pub, []byte("message"), sig)
	}
}
