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
	if !plainShape(v) {
		// Only a file outside the plain shape (which every tool writes)
		// pays for compiling the schema, which names what is wrong.
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

// plainShape reports whether v, a decoded trusted-keys file, has the
// plain shape every tool writes, checked by code: a subset of what
// trusted_keys.schema.json accepts (names and keys of printable ASCII
// only, times in the schema's exact form), so that a file of that shape
// is valid without compiling the schema in each process that reads one.
// False says nothing: the schema judges, and names what is wrong
// (FuzzPlainShape holds the subset).
func plainShape(v any) bool {
	doc, ok := v.(map[string]any)
	if !ok || len(doc) != 1 {
		return false
	}
	list, ok := doc["keys"].([]any)
	if !ok {
		return false
	}
	for _, x := range list {
		o, ok := x.(map[string]any)
		if !ok {
			return false
		}
		n := 0
		for k, v := range o {
			switch k {
			case "name":
				s, _ := v.(string)
				ok = len(s) >= 1 && len(s) <= 128 && plainName(s)
			case "key":
				s, _ := v.(string)
				ok = len(s) <= 1024 && plainKey(s)
			case "purposes":
				ps, _ := v.([]any)
				ok = len(ps) >= 1
				for _, p := range ps {
					s, isStr := p.(string)
					ok = ok && isStr && slices.Contains(purposes, s)
				}
			case "added_at":
				s, _ := v.(string)
				ok = plainTime(s)
				n-- // optional
			default:
				ok = false
			}
			if !ok {
				return false
			}
			n++
		}
		if n != 3 {
			return false
		}
	}
	return true
}

// plainName: printable ASCII, no space, no '+' (^[^+\s]+$, in any
// reading of \s).
func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '+' {
			return false
		}
	}
	return s != ""
}

// plainKey: name+8 lowercase hex+base64 (the schema's key pattern).
func plainKey(s string) bool {
	i := strings.IndexByte(s, '+')
	if i < 1 || !plainName(s[:i]) || len(s) < i+11 || s[i+9] != '+' {
		return false
	}
	for _, c := range []byte(s[i+1 : i+9]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	b := s[i+10:]
	j := 0
	for j < len(b) && (b[j] >= 'A' && b[j] <= 'Z' || b[j] >= 'a' && b[j] <= 'z' || b[j] >= '0' && b[j] <= '9' || b[j] == '+' || b[j] == '/') {
		j++
	}
	if j == 0 {
		return false
	}
	for ; j < len(b); j++ {
		if b[j] != '=' {
			return false
		}
	}
	return true
}

// plainTime: the schema's added_at pattern, YYYY-MM-DDTHH:MM:SS[.f+](Z|±HH:MM).
func plainTime(s string) bool {
	digits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	if len(s) < 20 || !digits(s[0:4]) || s[4] != '-' || !digits(s[5:7]) || s[7] != '-' || !digits(s[8:10]) || s[10] != 'T' ||
		!digits(s[11:13]) || s[13] != ':' || !digits(s[14:16]) || s[16] != ':' || !digits(s[17:19]) {
		return false
	}
	r := s[19:]
	if r[0] == '.' {
		j := 1
		for j < len(r) && r[j] >= '0' && r[j] <= '9' {
			j++
		}
		if j == 1 {
			return false
		}
		r = r[j:]
	}
	return r == "Z" || len(r) == 6 && (r[0] == '+' || r[0] == '-') && digits(r[1:3]) && r[3] == ':' && digits(r[4:6])
}
