package keys

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"filippo.io/edwards25519"
	"golang.org/x/mod/sumdb/note"
)

// algEd25519 is the note key algorithm byte of an Ed25519 key.
const algEd25519 = 1

// PairSigner returns a note signer for the signer key skey that takes its
// public key from the verifier key vkey instead of deriving it, and signs
// without Go's precomputed base-point table. Its signatures are the same
// bytes crypto/ed25519 gives (Ed25519 is deterministic), but a process
// that signs once or twice skips the table's construction, ~1.3 ms here:
// that is what keeps a plane's one-entry append within its budget. The
// pair must belong together: the same name, and skey's key hash must be
// the hash of vkey's public key (as note.GenerateKey wrote them).
func PairSigner(skey, vkey string) (note.Signer, error) {
	name, hash, seed, err := parseKey(strings.TrimPrefix(strings.TrimSpace(skey), "PRIVATE+KEY+"))
	if err != nil || !strings.HasPrefix(strings.TrimSpace(skey), "PRIVATE+KEY+") {
		return nil, &Error{Spec: "PRIVATE+KEY+(redacted)", Err: errors.New("malformed signer key")}
	}
	vname, vhash, pub, err := parseKey(strings.TrimSpace(vkey))
	if err != nil {
		return nil, &Error{Spec: vkey, Err: errors.New("malformed verifier key")}
	}
	if vname != name || vhash != hash || keyHash(name, pub) != hash {
		return nil, &Error{Spec: vkey, Err: errors.New("not the verifier key of this signer key")}
	}
	h := sha512.Sum512(seed[1:])
	s, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	if err != nil {
		return nil, err
	}
	return &pairSigner{name: name, hash: hash, s: s, prefix: h[32:], pub: pub[1:]}, nil
}

// parseKey splits "name+hash+base64" into its parts; the key must be an
// Ed25519 key (algorithm byte 1 and 32 bytes).
func parseKey(text string) (name string, hash uint32, key []byte, err error) {
	name, rest, ok1 := strings.Cut(text, "+")
	h16, b64, ok2 := strings.Cut(rest, "+")
	h, err1 := strconv.ParseUint(h16, 16, 32)
	key, err2 := base64.StdEncoding.DecodeString(b64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || len(h16) != 8 || len(key) != 33 || key[0] != algEd25519 || name == "" {
		return "", 0, nil, errors.New("malformed key")
	}
	return name, uint32(h), key, nil
}

// keyHash is note's key hash: the first four bytes of SHA-256(name, "\n",
// algorithm byte and public key).
func keyHash(name string, key []byte) uint32 {
	sum := sha256.Sum256(append([]byte(name+"\n"), key...))
	return binary.BigEndian.Uint32(sum[:4])
}

type pairSigner struct {
	name   string
	hash   uint32
	s      *edwards25519.Scalar
	prefix []byte
	pub    []byte
}

func (p *pairSigner) Name() string    { return p.name }
func (p *pairSigner) KeyHash() uint32 { return p.hash }

// Sign is RFC 8032 Ed25519 signing (as crypto/ed25519.Sign), with R = r·B
// computed by a variable-base scalar multiplication, which needs no table.
func (p *pairSigner) Sign(msg []byte) ([]byte, error) {
	rh := sha512.New()
	rh.Write(p.prefix)
	rh.Write(msg)
	r, err := edwards25519.NewScalar().SetUniformBytes(rh.Sum(nil))
	if err != nil {
		return nil, err
	}
	R := new(edwards25519.Point).ScalarMult(r, edwards25519.NewGeneratorPoint()).Bytes()
	kh := sha512.New()
	kh.Write(R)
	kh.Write(p.pub)
	kh.Write(msg)
	k, err := edwards25519.NewScalar().SetUniformBytes(kh.Sum(nil))
	if err != nil {
		return nil, err
	}
	return append(R, edwards25519.NewScalar().MultiplyAdd(k, p.s, r).Bytes()...), nil
}

// Self returns a note verifier that accepts exactly the signatures this
// signer makes, and checks one without a scalar multiplication: it
// recomputes S = r + H(R‖A‖M)·s (RFC 8032) with R taken from the signature
// and compares. r comes from the secret half of the hashed seed and s from
// the other, so only the key's holder can make S match: a process checks
// its own earlier notes (the stored checkpoint it builds on) for the cost
// of two hashes. It is no public verifier: other keys' signatures, and
// this key's used with any other nonce, are refused.
func (p *pairSigner) Self() note.Verifier { return selfVerifier{p} }

type selfVerifier struct{ p *pairSigner }

func (v selfVerifier) Name() string    { return v.p.name }
func (v selfVerifier) KeyHash() uint32 { return v.p.hash }

func (v selfVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	rh := sha512.New()
	rh.Write(v.p.prefix)
	rh.Write(msg)
	r, err := edwards25519.NewScalar().SetUniformBytes(rh.Sum(nil))
	if err != nil {
		return false
	}
	kh := sha512.New()
	kh.Write(sig[:32])
	kh.Write(v.p.pub)
	kh.Write(msg)
	k, err := edwards25519.NewScalar().SetUniformBytes(kh.Sum(nil))
	if err != nil {
		return false
	}
	s := edwards25519.NewScalar().MultiplyAdd(k, v.p.s, r).Bytes()
	return subtle.ConstantTimeCompare(s, sig[32:]) == 1
}
