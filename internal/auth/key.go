package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/keys"
)

// KeyFile is the auth signing key's file name in the plane's key directory
// (plane.KeyDir), outside the plane.
const KeyFile = "auth.key"

// KeyName is the note key name of a plane's auth key, as trusted in
// config/trusted_keys.json for purpose auth.
func KeyName(planeName string) string { return planeName + "-auth" }

// DefaultKeyPath is where cp-auth init writes the plane's auth key and
// cp-auth token reads it: <KeyDir(planeName)>/auth.key.
func DefaultKeyPath(planeName string) (string, error) {
	dir, err := plane.KeyDir(planeName)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, KeyFile), nil
}

// MakeKey creates a new auth key pair named KeyName(planeName) and writes
// the signer key to path (0600; its directory 0700 when made here),
// refusing an existing file or link at path (never overwritten) and a path
// inside the plane at root. It returns the verifier key and a function
// that removes what it made.
func MakeKey(path, planeName, root string) (verifier string, undo func(), err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, err
	}
	if rel, err := filepath.Rel(root, abs); err == nil && filepath.IsLocal(rel) {
		return "", nil, refuse(CodeKey, "the key path %s is inside the plane %s: a key kept in the plane protects nothing", abs, root)
	}
	if _, err := os.Lstat(abs); !errors.Is(err, fs.ErrNotExist) {
		return "", nil, refuse("AUTH_INITIALIZED", "%s already exists: an auth key is never overwritten (choose another --key-out, or remove it yourself)", abs)
	}
	skey, vkey, err := keys.Generate(KeyName(planeName))
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Dir(abs)
	_, statErr := os.Stat(dir)
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, err
		}
	}
	if err := atomicfile.Create(abs, []byte(skey+"\n"), 0o600); err != nil {
		return "", nil, err
	}
	undo = func() {
		os.Remove(abs)
		if errors.Is(statErr, fs.ErrNotExist) {
			os.Remove(dir)
		}
	}
	return vkey, undo, nil
}

// LoadKey reads the auth signer key at path (a regular file, not a link)
// and returns its Ed25519 private key and the key's note name.
func LoadKey(path string) (ed25519.PrivateKey, string, error) {
	b, err := regfile.ReadNoFollow(path)
	if err != nil {
		return nil, "", refuse(CodeKey, "auth key %s cannot be read: %v", path, err)
	}
	text := strings.TrimSpace(string(b))
	priv, name, err := privateKey(text)
	if err != nil {
		return nil, "", refuse(CodeKey, "auth key %s: %v", path, err)
	}
	return priv, name, nil
}

// privateKey decodes a note signer key
// (PRIVATE+KEY+name+hash+base64(0x01‖seed)) into its Ed25519 key.
func privateKey(text string) (ed25519.PrivateKey, string, error) {
	if _, err := note.NewSigner(text); err != nil {
		return nil, "", fmt.Errorf("not a note signer key")
	}
	parts := strings.SplitN(strings.TrimPrefix(text, "PRIVATE+KEY+"), "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, "", fmt.Errorf("not an Ed25519 note signer key")
	}
	return ed25519.NewKeyFromSeed(raw[1:]), parts[0], nil
}

// publicKey decodes a note verifier key (name+hash+base64(0x01‖pub)).
func publicKey(text string) (ed25519.PublicKey, error) {
	if _, err := note.NewVerifier(text); err != nil {
		return nil, fmt.Errorf("not a note verifier key")
	}
	parts := strings.SplitN(text, "+", 3)
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, fmt.Errorf("not an Ed25519 note verifier key")
	}
	return ed25519.PublicKey(raw[1:]), nil
}

// VerifierOf returns the note verifier key of a private key named name.
func VerifierOf(priv ed25519.PrivateKey, name string) (string, error) {
	return note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
}

// TrustedKeys returns the Ed25519 keys the plane at root trusts for
// purpose auth (config/trusted_keys.json). None means the plane was never
// initialized for auth. A file that cannot be read or is not valid is an
// error (fail closed).
//
// It decodes the file itself, as strictly as trust.Load (no unknown field,
// no member named twice, every key a note verifier key of its name,
// purposes known and not repeated, added_at RFC 3339) but without
// compiling the file's JSON Schema, which costs a token-checking process
// more than the whole rest of the check, and without encoding/json (its
// strict struct decode and the duplicate check before it were a fifth of
// a token check's CPU): pkg/jcs's decoder and a walk of what it gives.
func TrustedKeys(root string) ([]ed25519.PublicKey, error) {
	file := filepath.Join(root, filepath.FromSlash(trust.File))
	b, err := regfile.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return authKeys(b, file)
}

func authKeys(b []byte, file string) ([]ed25519.PublicKey, error) {
	bad := func(format string, args ...any) error {
		return refuse(CodeInvalid, "%s: %s: no token can be checked against it", file, fmt.Sprintf(format, args...))
	}
	// jcs.Decode: exactly one JSON value, no member named twice (decoders
	// disagree on which one wins), strings valid UTF-8. The walk below
	// refuses any member it does not know and any value of another type,
	// as a strict struct decode would, without encoding/json's reflection.
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, bad("%v", err)
	}
	doc, ok := v.(map[string]any)
	list, isList := doc["keys"].([]any)
	if !ok || len(doc) != 1 || !isList {
		return nil, bad("not one object with a keys list")
	}
	var out []ed25519.PublicKey
	for i, x := range list {
		o, ok := x.(map[string]any)
		if !ok {
			return nil, bad("/keys/%d: not an object", i)
		}
		var name, key string
		var purposes []string
		for member, val := range o {
			switch member {
			case "name", "key", "added_at":
				s, ok := val.(string)
				if !ok {
					return nil, bad("/keys/%d/%s: not a string", i, member)
				}
				switch member {
				case "name":
					name = s
				case "key":
					key = s
				default:
					if _, err := time.Parse(time.RFC3339, s); err != nil {
						return nil, bad("/keys/%d/added_at: not an RFC 3339 time", i)
					}
				}
			case "purposes":
				ps, ok := val.([]any)
				if !ok {
					return nil, bad("/keys/%d/purposes: not a list", i)
				}
				for j, p := range ps {
					s, ok := p.(string)
					if !ok || !slices.Contains(trust.Purposes, s) || slices.Contains(purposes, s) {
						return nil, bad("/keys/%d/purposes/%d: unknown or repeated purpose %v", i, j, p)
					}
					purposes = append(purposes, s)
				}
			default:
				return nil, bad("/keys/%d: unknown field %q", i, member)
			}
		}
		if name == "" || len(purposes) == 0 {
			return nil, bad("/keys/%d: name and purposes are required", i)
		}
		ver, err := note.NewVerifier(key)
		if err != nil || ver.Name() != name {
			return nil, bad("/keys/%d/key: not a note verifier key named %q", i, name)
		}
		if !slices.Contains(purposes, trust.PurposeAuth) {
			continue
		}
		pub, err := publicKey(key)
		if err != nil {
			return nil, bad("/keys/%d/key: %v", i, err)
		}
		out = append(out, pub)
	}
	return out, nil
}
