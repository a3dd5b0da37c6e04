package trust

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/schemas"
	"golang.org/x/mod/sumdb/note"
)

// File is the trusted-keys file's path below a plane root.
const File = "config/trusted_keys.json"

// SchemaName is the embedded schema of the trusted-keys file.
const SchemaName = "trusted_keys.schema.json"

// Purposes a trusted key may be listed for.
const (
	PurposePackage    = "package"    // package signatures (G5)
	PurposeCheckpoint = "checkpoint" // signed ledger checkpoints
	PurposeWorkOrder  = "work_order" // work-order approvals (G2)
	PurposeAuth       = "auth"       // token signatures (cp-auth)
)

// Purposes lists every purpose a key may be trusted for.
var Purposes = []string{PurposePackage, PurposeCheckpoint, PurposeWorkOrder, PurposeAuth}

// DefaultPurposes are what a key given without purposes is trusted for at
// bootstrap.
var DefaultPurposes = []string{PurposePackage, PurposeCheckpoint}

var purposes = Purposes

// ParseKeySpec splits a trust spec "[PURPOSE,...=]PUB" (DESIGN.md §6) into
// its purposes (nil when none is given) and PUB, a verifier key or a path
// to one. The text before the first "=" is read as purposes only when every
// comma-separated word of it is a known purpose, so a key or a path that
// holds "=" is never misread; an empty or repeated purpose is an error.
func ParseKeySpec(spec string) ([]string, string, error) {
	head, pub, ok := strings.Cut(spec, "=")
	if !ok || strings.Trim(head, "abcdefghijklmnopqrstuvwxyz_,") != "" {
		return nil, spec, nil // no purpose list: a key (base64 may hold "=") or a path
	}
	var out []string
	for _, w := range strings.Split(head, ",") {
		switch {
		case !slices.Contains(Purposes, w):
			return nil, "", fmt.Errorf("unknown key purpose %q (want %s)", w, strings.Join(Purposes, ", "))
		case slices.Contains(out, w):
			return nil, "", fmt.Errorf("purpose %q given twice", w)
		}
		out = append(out, w)
	}
	if pub == "" {
		return nil, "", fmt.Errorf("%q names purposes but no key", spec)
	}
	return out, pub, nil
}

// Marshal encodes keys as config/trusted_keys.json is written:
// indented, newline-ended, in the order given. It checks what it wrote
// with the reader's rules, so a file that Load would refuse is
// never produced.
func Marshal(keys []Key) ([]byte, error) {
	if keys == nil {
		keys = []Key{}
	}
	b, err := json.MarshalIndent(struct {
		Keys []Key `json:"keys"`
	}{keys}, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if _, err := parse(b); err != nil {
		return nil, err
	}
	return b, nil
}

// Key is one entry of the trusted-keys file.
type Key struct {
	Name     string   `json:"name"`
	Key      string   `json:"key"` // note verifier key: name+hash+base64
	Purposes []string `json:"purposes"`
	AddedAt  string   `json:"added_at,omitempty"` // RFC 3339
}

// Error is a trusted-keys file that cannot be used. Its Code is
// TRUSTED_KEYS_INVALID.
type Error struct {
	File   string // the file, when the error is about one
	Path   string // JSON pointer into it; "" for the whole document
	Reason string
}

func (e *Error) Error() string {
	s := "trusted keys"
	if e.File != "" {
		s += " " + e.File
	}
	if e.Path != "" {
		s += ": " + e.Path
	}
	return s + ": " + e.Reason
}

// Code returns TRUSTED_KEYS_INVALID.
func (e *Error) Code() string { return "TRUSTED_KEYS_INVALID" }

var trustSchema = sync.OnceValues(func() (*schema.Schema, error) {
	return schema.NewCompiler(schemas.FS, schemas.BaseURL).Compile(SchemaName)
})

// Load reads <root>/config/trusted_keys.json. A missing file yields
// no keys; a file that cannot be read or is not valid (see the package
// comment) is an error, so that a damaged file never silently trusts
// nothing or something else. Format errors are *Error.
func Load(root string) ([]Key, error) {
	file := filepath.Join(root, filepath.FromSlash(File))
	b, err := regfile.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ks, err := parse(b)
	if err != nil {
		var te *Error
		if errors.As(err, &te) {
			te.File = file
		}
		return nil, err
	}
	return ks, nil
}

// parse parses the trusted-keys file strictly.
func parse(b []byte) ([]Key, error) {
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, &Error{Reason: fmt.Sprintf("not valid JSON: %v", err)}
	}
	s, err := trustSchema()
	if err != nil {
		return nil, fmt.Errorf("trust: compiling %s: %w", SchemaName, err)
	}
	if ps := s.Validate(v); len(ps) > 0 {
		p := slices.MinFunc(ps, func(a, b schema.Problem) int {
			return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Message, b.Message))
		})
		return nil, &Error{Path: p.Path, Reason: p.Message}
	}
	type nameHash struct {
		name string
		hash uint32
	}
	seen := map[nameHash]int{}
	var out []Key
	for i, x := range v.(map[string]any)["keys"].([]any) {
		o := x.(map[string]any)
		at := func(field string) string { return fmt.Sprintf("/keys/%d/%s", i, field) }
		k := Key{Name: o["name"].(string), Key: o["key"].(string)}
		if t, ok := o["added_at"]; ok {
			k.AddedAt = t.(string)
			if _, err := time.Parse(time.RFC3339, k.AddedAt); err != nil {
				return nil, &Error{Path: at("added_at"), Reason: fmt.Sprintf("%q is not an RFC 3339 time", k.AddedAt)}
			}
		}
		for j, p := range o["purposes"].([]any) {
			if slices.Contains(k.Purposes, p.(string)) {
				return nil, &Error{Path: fmt.Sprintf("%s/%d", at("purposes"), j), Reason: fmt.Sprintf("purpose %q listed twice", p)}
			}
			k.Purposes = append(k.Purposes, p.(string))
		}
		ver, err := note.NewVerifier(k.Key)
		if err != nil {
			return nil, &Error{Path: at("key"), Reason: fmt.Sprintf("not a note verifier key: %v", err)}
		}
		if ver.Name() != k.Name {
			return nil, &Error{Path: at("name"), Reason: fmt.Sprintf("%q differs from the key's own name %q", k.Name, ver.Name())}
		}
		id := nameHash{ver.Name(), ver.KeyHash()}
		if j, ok := seen[id]; ok {
			return nil, &Error{Path: at("key"), Reason: fmt.Sprintf("key %s+%08x is also /keys/%d", id.name, id.hash, j)}
		}
		seen[id] = i
		out = append(out, k)
	}
	return out, nil
}

// Verifiers returns the keys trusted for purpose: those of trusted listed
// for it, and envKey (CONTROL_PLANE_VERIFY_KEY: a key or a path, loaded
// with pkg/keys; "" for none) whatever the purpose. When two keys have the
// same name and key hash, the first is used. A key that does not load is
// an error: trust is never quietly narrowed or widened.
func Verifiers(trusted []Key, purpose string, envKey string) (note.Verifiers, error) {
	if !slices.Contains(purposes, purpose) {
		return nil, fmt.Errorf("trust: unknown key purpose %q", purpose)
	}
	var list []note.Verifier
	seen := map[string]bool{}
	add := func(v note.Verifier) {
		id := fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())
		if !seen[id] {
			seen[id] = true
			list = append(list, v)
		}
	}
	for i, k := range trusted {
		if !slices.Contains(k.Purposes, purpose) {
			continue
		}
		v, err := keys.NewVerifier(k.Key)
		if err != nil {
			return nil, &Error{Path: fmt.Sprintf("/keys/%d/key", i), Reason: fmt.Sprintf("not a note verifier key: %v", err)}
		}
		add(v)
	}
	if envKey != "" {
		v, err := keys.Verifier(envKey)
		if err != nil {
			return nil, err
		}
		add(v)
	}
	return note.VerifierList(list...), nil
}

// VerifierText returns the verifier key text of a key spec: the key
// itself, or the trimmed contents of the file it names.
func VerifierText(spec string) (string, error) {
	if _, err := keys.Verifier(spec); err != nil {
		return "", err
	}
	b, err := regfile.ReadFile(spec)
	if err != nil {
		return spec, nil // the spec is the key itself
	}
	return string(bytes.TrimSpace(b)), nil
}
