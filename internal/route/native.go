package route

import (
	"encoding/json"
	"strings"

	"github.com/itchyny/gojq"
)

// native is an expression of the commonest rule shapes evaluated directly
// over the request, without gojq's interpreter (an environment and a stack
// per run cost more than a short rule): paths (.a.b), literals (strings
// without interpolation, numbers, null, true, false, []), ==, !=, <, <=,
// >, >=, and, or, //, |, not, has, startswith, endswith and index over an
// array. It is an optimisation, never a second semantics: it answers only
// where it is sure to give gojq's one value, and says "ask gojq" (ok
// false) wherever gojq would raise an error, yield no value or more than
// one, or do anything it does not model; gojq then decides, errors
// included. Comparisons are gojq.Compare itself, and number literals are
// compared as gojq compiles them (json.Number of their text, which
// gojq.Compare reads as gojq's parser does). FuzzNative holds it to gojq.
type native func(v any) (any, bool)

// compileNative returns q's native form, or nil when q uses anything
// outside the modelled subset (function definitions, variables, ?,
// iteration, slices, interpolation, other builtins, ...): such a rule
// always runs through gojq.
func compileNative(q *gojq.Query) native {
	if q == nil || q.Meta != nil || len(q.Imports) > 0 || len(q.FuncDefs) > 0 || len(q.Patterns) > 0 {
		return nil
	}
	if q.Term != nil {
		if q.Left != nil || q.Right != nil || q.Op != 0 {
			return nil
		}
		return nativeTerm(q.Term)
	}
	l, r := compileNative(q.Left), compileNative(q.Right)
	if l == nil || r == nil {
		return nil
	}
	switch q.Op {
	case gojq.OpPipe:
		return func(v any) (any, bool) {
			x, ok := l(v)
			if !ok {
				return nil, false
			}
			return r(x)
		}
	case gojq.OpAnd, gojq.OpOr:
		and := q.Op == gojq.OpAnd
		return func(v any) (any, bool) {
			x, ok := l(v)
			if !ok {
				return nil, false
			}
			if truthy(x) != and { // false and ..., true or ...: decided
				return !and, true
			}
			y, ok := r(v)
			if !ok {
				return nil, false
			}
			return truthy(y), true
		}
	case gojq.OpAlt:
		return func(v any) (any, bool) {
			x, ok := l(v)
			if !ok {
				return nil, false // the left side failed: gojq knows what // makes of it
			}
			if truthy(x) {
				return x, true
			}
			return r(v)
		}
	case gojq.OpEq, gojq.OpNe, gojq.OpLt, gojq.OpLe, gojq.OpGt, gojq.OpGe:
		op := q.Op
		return func(v any) (any, bool) {
			// gojq evaluates the right operand first; with one value
			// each and no error, the order does not show.
			x, ok := l(v)
			if !ok {
				return nil, false
			}
			y, ok := r(v)
			if !ok {
				return nil, false
			}
			c := gojq.Compare(x, y)
			switch op {
			case gojq.OpEq:
				return c == 0, true
			case gojq.OpNe:
				return c != 0, true
			case gojq.OpLt:
				return c < 0, true
			case gojq.OpLe:
				return c <= 0, true
			case gojq.OpGt:
				return c > 0, true
			}
			return c >= 0, true
		}
	}
	return nil
}

// truthy is jq's truth: everything but null and false.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	}
	return true
}

// nativeTerm compiles one term with its suffixes (.a.b).
func nativeTerm(t *gojq.Term) native {
	var base native
	switch t.Type {
	case gojq.TermTypeIdentity:
		base = func(v any) (any, bool) { return v, true }
	case gojq.TermTypeNull:
		base = func(any) (any, bool) { return nil, true }
	case gojq.TermTypeTrue:
		base = func(any) (any, bool) { return true, true }
	case gojq.TermTypeFalse:
		base = func(any) (any, bool) { return false, true }
	case gojq.TermTypeNumber:
		n := json.Number(t.Number) // gojq compiles parseNumber(json.Number(text)); Compare parses it alike
		base = func(any) (any, bool) { return n, true }
	case gojq.TermTypeString:
		if t.Str == nil || len(t.Str.Queries) > 0 {
			return nil
		}
		s := t.Str.Str
		base = func(any) (any, bool) { return s, true }
	case gojq.TermTypeArray:
		if t.Array == nil || t.Array.Query != nil {
			return nil
		}
		base = func(any) (any, bool) { return []any{}, true }
	case gojq.TermTypeIndex:
		if base = nativeIndex(t.Index); base == nil {
			return nil
		}
	case gojq.TermTypeQuery:
		if base = compileNative(t.Query); base == nil {
			return nil
		}
	case gojq.TermTypeFunc:
		if base = nativeFunc(t.Func); base == nil {
			return nil
		}
	default:
		return nil
	}
	for _, s := range t.SuffixList {
		if s.Iter || s.Optional || s.Index == nil {
			return nil
		}
		ix := nativeIndex(s.Index)
		if ix == nil {
			return nil
		}
		prev := base
		base = func(v any) (any, bool) {
			x, ok := prev(v)
			if !ok {
				return nil, false
			}
			return ix(x)
		}
	}
	return base
}

// nativeIndex is .name: a member of an object (null when absent), null of
// null; anything else is gojq's error.
func nativeIndex(ix *gojq.Index) native {
	if ix == nil || ix.Name == "" || ix.Str != nil || ix.Start != nil || ix.End != nil || ix.IsSlice {
		return nil
	}
	name := ix.Name
	return func(v any) (any, bool) {
		switch x := v.(type) {
		case map[string]any:
			return x[name], true
		case nil:
			return nil, true
		}
		return nil, false
	}
}

// nativeFunc is one of the builtins modelled: not, has(k) on an object,
// startswith(s) and endswith(s) on a string, index(x) on an array or null.
// The policy defines no functions (compileNative refuses FuncDefs), so a
// name is gojq's builtin.
func nativeFunc(f *gojq.Func) native {
	if f.Name == "not" && len(f.Args) == 0 {
		return func(v any) (any, bool) { return !truthy(v), true }
	}
	if len(f.Args) != 1 {
		return nil
	}
	arg := compileNative(f.Args[0])
	if arg == nil {
		return nil
	}
	switch f.Name {
	case "startswith", "endswith":
		suffix := f.Name == "endswith"
		return func(v any) (any, bool) {
			s, ok := v.(string)
			if !ok {
				return nil, false
			}
			a, ok := arg(v)
			if !ok {
				return nil, false
			}
			t, ok := a.(string)
			if !ok {
				return nil, false
			}
			if suffix {
				return strings.HasSuffix(s, t), true
			}
			return strings.HasPrefix(s, t), true
		}
	case "has":
		return func(v any) (any, bool) {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			a, ok := arg(v)
			if !ok {
				return nil, false
			}
			k, ok := a.(string)
			if !ok {
				return nil, false
			}
			_, has := m[k]
			return has, true
		}
	case "index":
		return func(v any) (any, bool) {
			a, ok := arg(v)
			if !ok {
				return nil, false
			}
			switch x := v.(type) {
			case nil:
				return nil, true
			case []any:
				if _, isArray := a.([]any); isArray {
					return nil, false // a subarray: gojq's
				}
				for i, e := range x {
					if gojq.Compare(e, a) == 0 {
						return i, true
					}
				}
				return nil, true
			}
			return nil, false // a string's offsets: gojq's
		}
	}
	return nil
}
