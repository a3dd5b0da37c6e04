package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go"

	"github.com/control-plane/cp/internal/regfile"
)

// PolicyFile is the plane's Cedar policy file, relative to its HO3 root: a
// governed file (it arrives in a config package). Absent: no policies.
const PolicyFile = "config/policy.cedar"

// Policy is a plane's Cedar forbid policies, as loaded. A Policy whose
// file did not parse, held a permit, or could not be read refuses every
// mutating access (POLICY_INVALID) and allows reads.
type Policy struct {
	set *cedar.PolicySet
	err *Error
}

// LoadPolicy reads root/config/policy.cedar (a regular file, no link
// followed). A missing file is nil, nil: no policies. Any other problem
// comes back inside the Policy (Invalid), so that reads go on.
func LoadPolicy(root string) *Policy {
	r, err := os.OpenRoot(root)
	if err != nil {
		return &Policy{err: refuse(CodePolicy, "%s cannot be read: %v", PolicyFile, err)}
	}
	defer r.Close()
	if err := noLinks(r, PolicyFile); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return &Policy{err: refuse(CodePolicy, "%s cannot be read: %v", PolicyFile, err)}
	}
	b, err := regfile.ReadIn(r, PolicyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &Policy{err: refuse(CodePolicy, "%s cannot be read: %v", PolicyFile, err)}
	}
	return ParsePolicy(b)
}

// noLinks refuses a symbolic link anywhere along name inside r.
func noLinks(r *os.Root, name string) error {
	p := ""
	for _, part := range splitPath(name) {
		p = filepath.Join(p, part)
		st, err := r.Lstat(p)
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: refused", p)
		}
	}
	return nil
}

func splitPath(name string) []string {
	var out []string
	for d := filepath.ToSlash(name); d != "." && d != "/" && d != ""; d = filepath.ToSlash(filepath.Dir(d)) {
		out = append([]string{filepath.Base(d)}, out...)
	}
	return out
}

// ParsePolicy parses Cedar policy text. Only forbid policies are allowed:
// the table is the ceiling, and a permit could only pretend to widen it.
func ParsePolicy(b []byte) *Policy {
	ps, err := cedar.NewPolicySetFromBytes(PolicyFile, b)
	if err != nil {
		return &Policy{err: refuse(CodePolicy, "%s does not parse: %v (every mutating request is refused until it does)", PolicyFile, err)}
	}
	for id, p := range ps.All() {
		if p.Effect() == cedar.Permit {
			pos := p.Position()
			return &Policy{err: refuse(CodePolicy, "%s: policy %s (line %d) is a permit: only forbid policies may tighten the built-in table, nothing may widen it (every mutating request is refused until it is removed)", PolicyFile, id, pos.Line)}
		}
	}
	return &Policy{set: ps}
}

// Invalid returns the POLICY_INVALID refusal of a file that did not load,
// or nil.
func (p *Policy) Invalid() error {
	if p == nil || p.err == nil {
		return nil
	}
	return p.err
}

// Request is what a Cedar policy sees of one access.
type Request struct {
	Claims *Claims
	Access Access
	// Resource is cp-auth check's resource (Resource::"R"); "" judges the
	// access's tier (Tier::"ho1").
	Resource string
	// Context is cp-auth check's --context, as context.request; nil if none.
	Context map[string]any
	Now     time.Time
}

// Evaluate judges r under the policies: nil unless a forbid matches or a
// forbid cannot be evaluated (fail closed: it forbids). A file that did not
// load refuses every mutating access and no read. The refusal is
// FIREWALL_DENIED naming the policy id and line, or POLICY_INVALID.
func (p *Policy) Evaluate(r Request) error {
	if p == nil {
		return nil
	}
	if p.err != nil {
		if r.Access.Action.Mutating() || r.Resource != "" {
			return p.err
		}
		return nil
	}
	c := r.Claims
	if c == nil {
		c = &Claims{}
	}
	tiers := make([]cedar.Value, len(c.Tiers))
	for i, t := range c.Tiers {
		tiers[i] = cedar.String(t)
	}
	principal := cedar.NewEntityUID("User", cedar.String(c.Subject))
	entities := cedar.EntityMap{principal: cedar.Entity{UID: principal, Attributes: cedar.NewRecord(cedar.RecordMap{
		"role": cedar.String(c.Role), "tiers": cedar.NewSet(tiers...),
		"wo": cedar.String(c.WorkOrder), "session": cedar.String(c.Session)})}}
	a := r.Access
	resource := cedar.NewEntityUID("Tier", cedar.String(a.Tier))
	if r.Resource != "" {
		resource = cedar.NewEntityUID("Resource", cedar.String(r.Resource))
	}
	now := r.Now.UTC()
	// The event type as the catalogue compares them (pkg/ledger.Reserved:
	// case and surrounding space ignored), so that a forbid on "DEPLOY" is
	// not evaded by appending "deploy" or "DEPLOY ".
	eventType := strings.ToUpper(strings.TrimSpace(a.EventType))
	ctx := cedar.RecordMap{
		"tool": cedar.String(a.Tool), "verb": cedar.String(a.Verb), "event_type": cedar.String(eventType),
		"work_order": cedar.String(a.WorkOrder), "session": cedar.String(a.Session),
		"hour_utc": cedar.Long(now.Hour()), "weekday": cedar.String(now.Weekday().String()[:3]),
	}
	if r.Context != nil {
		v, err := cedarValue(r.Context)
		if err != nil {
			return refuse(CodePolicy, "--context: %v", err)
		}
		ctx["request"] = v
	}
	_, diag := cedar.Authorize(p.set, entities, cedar.Request{Principal: principal,
		Action: cedar.NewEntityUID("Action", cedar.String(a.Action)), Resource: resource, Context: cedar.NewRecord(ctx)})
	if len(diag.Errors) > 0 {
		e := diag.Errors[0]
		return &Error{code: CodeDenied, Policy: p.name(e.PolicyID, e.Position),
			msg: fmt.Sprintf("policy %s could not be evaluated (%s): a forbid that cannot be evaluated forbids", p.name(e.PolicyID, e.Position), e.Message)}
	}
	if len(diag.Reasons) > 0 {
		e := diag.Reasons[0]
		return &Error{code: CodeDenied, Policy: p.name(e.PolicyID, e.Position),
			msg: fmt.Sprintf("forbidden by policy %s of %s", p.name(e.PolicyID, e.Position), PolicyFile)}
	}
	return nil
}

// name is a policy's @id annotation if it has one, else cedar-go's
// positional id (policy0, ...), with the line it starts on.
func (p *Policy) name(id cedar.PolicyID, pos cedar.Position) string {
	if po := p.set.Get(id); po != nil {
		if v, ok := po.Annotations()["id"]; ok && v != "" {
			return fmt.Sprintf("%s (line %d)", v, pos.Line)
		}
	}
	return fmt.Sprintf("%s (line %d)", id, pos.Line)
}

// cedarValue converts decoded JSON (numbers as json.Number or float64) into
// a Cedar value: objects are records, arrays sets, integers Long. A
// fraction has no Cedar type here and is an error.
func cedarValue(v any) (cedar.Value, error) {
	switch x := v.(type) {
	case nil:
		return nil, errors.New("null has no Cedar value")
	case string:
		return cedar.String(x), nil
	case bool:
		return cedar.Boolean(x), nil
	case json.Number:
		n, err := x.Int64()
		if err != nil {
			return nil, fmt.Errorf("number %s is not an integer", x)
		}
		return cedar.Long(n), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return nil, fmt.Errorf("number %v is not an integer", x)
		}
		return cedar.Long(int64(x)), nil
	case []any:
		vs := make([]cedar.Value, len(x))
		for i, e := range x {
			cv, err := cedarValue(e)
			if err != nil {
				return nil, err
			}
			vs[i] = cv
		}
		return cedar.NewSet(vs...), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		m := cedar.RecordMap{}
		for _, k := range keys {
			cv, err := cedarValue(x[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %v", k, err)
			}
			m[cedar.String(k)] = cv
		}
		return cedar.NewRecord(m), nil
	}
	return nil, fmt.Errorf("value of type %T has no Cedar value", v)
}
