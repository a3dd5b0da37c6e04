// Package workorder is the work order of DESIGN.md §13: its file (written
// once under work_orders/, bound by its payload hash), its state (derived
// only from ledger entries: WO_CREATED, WO_CANCELLED, WO_EXPIRED in HO2;
// WO_APPROVED, WO_REJECTED in HO3), and its approval, a C2SP signed note by
// a key the plane trusts for purpose work_order.
//
// Approved is what G2 asks before anything acts under a work order: it
// fails closed, with a code, on any mismatch between the file, the ledgers,
// the note and the keys trusted now.
package workorder

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/schemas"
)

// Dir is where work orders and their approval notes live, below the HO3
// root.
const Dir = "work_orders"

// SchemaName is the embedded schema of a work-order file.
const SchemaName = "work_order.schema.json"

// Types a work order may have.
var Types = []string{"code_change", "config_change", "dependency_add", "package_install", "rollback", "investigation"}

// WorkOrder is the content of work_orders/WO-YYYYMMDD-NNN.json, every
// field of DESIGN.md §13 and no other.
type WorkOrder struct {
	ID          string `json:"wo_id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Tier        string `json:"tier"`
	Scope       Scope  `json:"scope"`
	Budget      Budget `json:"budget"`
	ExpiresAt   string `json:"expires_at"`
	CreatedBy   string `json:"created_by"`
	CreatedAt   string `json:"created_at"`
}

// Scope is what a work order may touch. Paths are glob patterns relative
// to the plane root (see Match).
type Scope struct {
	Paths       []string `json:"paths"`
	Packages    []string `json:"packages,omitempty"`
	PromptPacks []string `json:"prompt_packs,omitempty"`
	EventTypes  []string `json:"event_types,omitempty"`
}

// Budget is what the work under a work order may spend. Turns is required
// (at least one); the others, when absent, allow nothing of their kind
// once cp-llm enforces them.
type Budget struct {
	LLMTokens  *int64       `json:"llm_tokens,omitempty"`
	LLMCostUSD *json.Number `json:"llm_cost_usd,omitempty"`
	LLMCalls   *int64       `json:"llm_calls,omitempty"`
	Turns      int64        `json:"turns"`
}

// Draft is what a work order's author gives: the work order without the
// fields cp-wo create fills (wo_id, created_by, created_at).
type Draft struct {
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Tier        string `json:"tier"`
	Scope       Scope  `json:"scope"`
	Budget      Budget `json:"budget"`
	ExpiresAt   string `json:"expires_at"`
}

// ValidID reports whether id has the form WO-YYYYMMDD-NNN with a real date
// and NNN from 001. No regexp: compiling one was a measurable part of
// every cp-wo step (FuzzValidID holds this to ^WO-([0-9]{8})-([0-9]{3})$).
func ValidID(id string) bool {
	if len(id) != len("WO-YYYYMMDD-NNN") || id[:3] != "WO-" || id[11] != '-' || !digits(id[3:11]) || !digits(id[12:]) || id[12:] == "000" {
		return false
	}
	_, err := time.Parse("20060102", id[3:11])
	return err == nil
}

// digits reports whether s is all ASCII digits.
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CheckID returns WO_INVALID (an argument) for an id that is not
// WO-YYYYMMDD-NNN: no file name is ever made from anything else.
func CheckID(id string) error {
	if !ValidID(id) {
		return refuse(CodeInvalid, map[string]any{"wo_id": id}, "%q is not a work-order id (WO-YYYYMMDD-NNN)", id)
	}
	return nil
}

// FilePath and NotePath are where the work order id and its approval
// note are kept, relative to the HO3 root.
func FilePath(id string) string { return Dir + "/" + id + ".json" }

// NotePath is the approval note's path, relative to the HO3 root.
func NotePath(id string) string { return Dir + "/" + id + ".approval" }

// Canonical returns the work order's canonical JSON (RFC 8785): the bytes
// its payload hash is taken over, and the bytes its file holds (with a
// final newline).
func (w *WorkOrder) Canonical() ([]byte, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	return jcs.Canonicalize(b)
}

// PayloadHash returns "sha256:" + the SHA-256 of canonical.
func PayloadHash(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return "sha256:" + hex.EncodeToString(sum[:])
}

var woSchema = sync.OnceValues(func() (*schema.Schema, error) {
	return schema.NewCompiler(schemas.FS, schemas.BaseURL).Compile(SchemaName)
})

// Parse reads a work-order document strictly: valid JSON (no duplicate
// keys), valid against work_order.schema.json, and the rules of Check
// that do not depend on the clock. It returns the work order and its
// payload hash (over the canonical form of b, whatever b's layout).
func Parse(b []byte) (*WorkOrder, string, error) {
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, "", refuse(CodeInvalid, nil, "not valid JSON: %v", err)
	}
	if err := validate(v); err != nil {
		return nil, "", err
	}
	var w WorkOrder
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.DisallowUnknownFields()
	if err := d.Decode(&w); err != nil {
		return nil, "", refuse(CodeInvalid, nil, "%v", err)
	}
	if err := w.checkStatic(); err != nil {
		return nil, "", err
	}
	canon, err := jcs.Canonicalize(b)
	if err != nil {
		return nil, "", refuse(CodeInvalid, nil, "%v", err)
	}
	return &w, PayloadHash(canon), nil
}

func validate(v any) error {
	s, err := woSchema()
	if err != nil {
		return fmt.Errorf("workorder: compiling %s: %w", SchemaName, err)
	}
	if ps := s.Validate(v); len(ps) > 0 {
		p := slices.MinFunc(ps, func(a, b schema.Problem) int {
			return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Message, b.Message))
		})
		at := p.Path
		if at == "" {
			at = "/"
		}
		return refuse(CodeInvalid, map[string]any{"path": p.Path}, "work order %s: %s", at, p.Message)
	}
	return nil
}

// Check holds w to work_order.schema.json and the rules of DESIGN.md §13:
// a valid id, RFC 3339 UTC times, expiry after creation and after now,
// well-formed and distinct scope patterns, a budget of at least one turn.
// A work order past its expiry is WO_EXPIRED; any other fault WO_INVALID.
func (w *WorkOrder) Check(now time.Time) error {
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	v, err := jcs.Decode(b)
	if err != nil {
		return err
	}
	if err := validate(v); err != nil {
		return err
	}
	if err := w.checkStatic(); err != nil {
		return err
	}
	exp, _ := time.Parse(time.RFC3339, w.ExpiresAt)
	if !now.Before(exp) {
		return refuse(CodeExpired, map[string]any{"wo_id": w.ID, "expires_at": w.ExpiresAt},
			"work order %s expired at %s", w.ID, w.ExpiresAt)
	}
	return nil
}

// checkStatic is Check without the schema and the clock.
func (w *WorkOrder) checkStatic() error {
	bad := func(at, format string, args ...any) error {
		return refuse(CodeInvalid, map[string]any{"path": at}, "work order %s: %s", at, fmt.Sprintf(format, args...))
	}
	if !ValidID(w.ID) {
		return bad("/wo_id", "%q is not WO-YYYYMMDD-NNN", w.ID)
	}
	created, err := parseTime(w.CreatedAt)
	if err != nil {
		return bad("/created_at", "%v", err)
	}
	exp, err := parseTime(w.ExpiresAt)
	if err != nil {
		return bad("/expires_at", "%v", err)
	}
	if !exp.After(created) {
		return bad("/expires_at", "%s is not after created_at %s", w.ExpiresAt, w.CreatedAt)
	}
	seen := map[string]bool{}
	for i, p := range w.Scope.Paths {
		if err := CheckPattern(p); err != nil {
			return bad(fmt.Sprintf("/scope/paths/%d", i), "%v", err)
		}
		if seen[p] {
			return bad(fmt.Sprintf("/scope/paths/%d", i), "%q listed twice", p)
		}
		seen[p] = true
	}
	if w.Budget.LLMCostUSD != nil {
		if f, err := w.Budget.LLMCostUSD.Float64(); err != nil || f < 0 {
			return bad("/budget/llm_cost_usd", "%q is not a non-negative amount", w.Budget.LLMCostUSD.String())
		}
	}
	return nil
}

// parseTime parses an RFC 3339 time written in UTC ("Z").
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	if !strings.HasSuffix(s, "Z") {
		return t, fmt.Errorf("%q is not in UTC (Z)", s)
	}
	return t, nil
}

// CheckPattern reports whether p is a well-formed scope pattern: a
// slash-separated path relative to the plane root, without empty, "." or
// ".." segments or backslashes, each segment a path.Match pattern or "**"
// (any number of segments).
func CheckPattern(p string) error {
	switch {
	case p == "":
		return errors.New("empty pattern")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q is absolute: patterns are relative to the plane root", p)
	case strings.Contains(p, `\`):
		return fmt.Errorf("%q holds a backslash", p)
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".", "..":
			return fmt.Errorf("%q has an empty, \".\" or \"..\" segment", p)
		case "**":
			continue
		}
		if strings.Contains(seg, "**") {
			return fmt.Errorf("%q: ** must be a whole segment", p)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("%q: malformed pattern", p)
		}
	}
	return nil
}

// Match reports whether the plane-relative slash path name is matched by
// the scope pattern p (well-formed, see CheckPattern): segment by segment
// with path.Match, "**" matching any number of segments.
func Match(p, name string) bool {
	return matchSegs(strings.Split(p, "/"), strings.Split(name, "/"))
}

func matchSegs(ps, ns []string) bool {
	for len(ps) > 0 {
		if ps[0] == "**" {
			for i := 0; i <= len(ns); i++ {
				if matchSegs(ps[1:], ns[i:]) {
					return true
				}
			}
			return false
		}
		if len(ns) == 0 {
			return false
		}
		if ok, _ := path.Match(ps[0], ns[0]); !ok {
			return false
		}
		ps, ns = ps[1:], ns[1:]
	}
	return len(ns) == 0
}

// Covers reports whether some pattern of the scope matches name.
func (s Scope) Covers(name string) bool {
	return slices.ContainsFunc(s.Paths, func(p string) bool { return Match(p, name) })
}

// Read reads the work order id from the plane at root, without following
// a link (a link in its place is NOT_REGULAR), and returns it with its
// payload hash. A missing file is WO_NOT_FOUND.
func Read(root, id string) (*WorkOrder, string, error) {
	if err := CheckID(id); err != nil {
		return nil, "", err
	}
	if err := checkDir(root); err != nil {
		return nil, "", err
	}
	b, err := regfile.ReadNoFollow(filepath.Join(root, filepath.FromSlash(FilePath(id))))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", refuse(CodeNotFound, map[string]any{"wo_id": id}, "work order %s not found (no %s)", id, FilePath(id))
	}
	if err != nil {
		return nil, "", err
	}
	w, h, err := Parse(b)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.msg = FilePath(id) + ": " + e.msg
		}
		return nil, "", err
	}
	if w.ID != id {
		return nil, "", refuse(CodeInvalid, map[string]any{"wo_id": id, "file_wo_id": w.ID}, "%s holds work order %s", FilePath(id), w.ID)
	}
	return w, h, nil
}

// readKnown is Read for a work order whose payload hash WO_CREATED
// recorded as want: a file that hashes to it holds the canonical JSON
// Create wrote after holding it to the schema and §13's rules, so it is
// decoded strictly without compiling the schema again (a one-shot
// process's largest cost here); any other file is read by Read, which
// says what is wrong with it. The hash is returned either way.
func readKnown(root, id, want string) (*WorkOrder, string, error) {
	if err := CheckID(id); err != nil {
		return nil, "", err
	}
	if err := checkDir(root); err != nil {
		return nil, "", err
	}
	b, err := regfile.ReadNoFollow(filepath.Join(root, filepath.FromSlash(FilePath(id))))
	if err != nil {
		return Read(root, id)
	}
	canon, err := jcs.Canonicalize(b)
	if err != nil || want == "" || PayloadHash(canon) != want {
		return Read(root, id)
	}
	w, ok := knownOf(b)
	if !ok {
		w = &WorkOrder{}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		d.DisallowUnknownFields()
		if err := d.Decode(w); err != nil {
			return Read(root, id)
		}
	}
	if w.ID != id {
		return Read(root, id)
	}
	return w, want, nil
}

// earlyWorkOrder reads work order id's file as it is now, before its state
// is known, for what may start before the state is read (a turn's check
// of its inputs against the scope): the work order, when the file has
// Create's plain shape (knownOf) and names id, and its payload hash. ok
// false says nothing: the caller waits for the state and readKnown. What
// it gives counts only where its payload hash is the one recorded (equal
// payload hashes: the same canonical JSON, so the same work order).
func earlyWorkOrder(root, id string) (w *WorkOrder, payloadHash string, ok bool) {
	if CheckID(id) != nil || checkDir(root) != nil {
		return nil, "", false
	}
	b, err := regfile.ReadNoFollow(filepath.Join(root, filepath.FromSlash(FilePath(id))))
	if err != nil {
		return nil, "", false
	}
	canon, err := jcs.Canonicalize(b)
	if err != nil {
		return nil, "", false
	}
	if w, ok = knownOf(b); !ok || w.ID != id {
		return nil, "", false
	}
	return w, PayloadHash(canon), true
}

// knownOf decodes a work order file of the plain shape Create writes
// (its members by their exact names, each of its type) from pkg/jcs's
// values, without encoding/json's reflection (built once per process,
// most of what decoding one small file costs). ok false says nothing:
// readKnown then decodes it with encoding/json, as strictly as before.
// What it accepts, it decodes as that decoder does (FuzzKnownOf).
func knownOf(b []byte) (*WorkOrder, bool) {
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	w := &WorkOrder{}
	for k, x := range m {
		switch k {
		case "wo_id":
			w.ID, ok = x.(string)
		case "type":
			w.Type, ok = x.(string)
		case "title":
			w.Title, ok = x.(string)
		case "description":
			w.Description, ok = x.(string)
		case "tier":
			w.Tier, ok = x.(string)
		case "expires_at":
			w.ExpiresAt, ok = x.(string)
		case "created_by":
			w.CreatedBy, ok = x.(string)
		case "created_at":
			w.CreatedAt, ok = x.(string)
		case "scope":
			ok = scopeOf(x, &w.Scope)
		case "budget":
			ok = budgetOf(x, &w.Budget)
		default:
			ok = false
		}
		if !ok {
			return nil, false
		}
	}
	return w, true
}

func scopeOf(x any, s *Scope) bool {
	m, ok := x.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range m {
		var dst *[]string
		switch k {
		case "paths":
			dst = &s.Paths
		case "packages":
			dst = &s.Packages
		case "prompt_packs":
			dst = &s.PromptPacks
		case "event_types":
			dst = &s.EventTypes
		default:
			return false
		}
		xs, ok := v.([]any)
		if !ok {
			return false
		}
		out := make([]string, len(xs))
		for i, x := range xs {
			if out[i], ok = x.(string); !ok {
				return false
			}
		}
		*dst = out
	}
	return true
}

func budgetOf(x any, b *Budget) bool {
	m, ok := x.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range m {
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		switch k {
		case "llm_cost_usd":
			b.LLMCostUSD = &n
		case "llm_tokens", "llm_calls", "turns":
			i, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil {
				return false
			}
			switch k {
			case "llm_tokens":
				b.LLMTokens = &i
			case "llm_calls":
				b.LLMCalls = &i
			default:
				b.Turns = i
			}
		default:
			return false
		}
	}
	return true
}

// checkDir refuses a work_orders directory that is not a directory (a
// link to elsewhere): work orders are read from the plane only.
func checkDir(root string) error {
	fi, err := os.Lstat(filepath.Join(root, Dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &regfile.Error{Path: filepath.Join(root, Dir), Mode: fi.Mode()}
	}
	return nil
}
