// Package jcs implements the JSON Canonicalization Scheme (JCS) of RFC 8785:
// the one byte sequence for a JSON value that the ledger hashes and signs.
//
// The canonical form has no insignificant whitespace; object members are
// sorted by their keys compared as arrays of UTF-16 code units; strings escape
// only '"', '\\' and the control characters below U+0020 (as \b \t \n \f \r or
// \u00xx with lowercase hex) and write everything else as raw UTF-8; numbers
// are IEEE-754 doubles written as ECMAScript's Number.prototype.toString
// writes them.
//
// One policy goes beyond RFC 8785 so that the ledger never changes a number
// silently: an integer literal (no fraction, no exponent) is refused unless
// its text survives the round trip through a double unchanged. Every integer
// of magnitude up to 2^53 does; above 2^53 only the literals that are already
// the canonical text of a double do (such as 9007199254740994 or
// 295147905179352830000), so 9007199254740993 or 12345678901234567890 are
// errors rather than being rounded. Literals with a fraction or an exponent
// are rounded to the nearest double, as RFC 8785 requires.
//
// Marshal and Append write canonical bytes for decoded Go values, Decode
// parses JSON strictly, Canonicalize does both, and Check verifies without
// allocating that bytes are already canonical. For every data,
// Check(data) == nil exactly when Canonicalize(data) returns data unchanged.
package jcs

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
)

// maxDepth bounds the nesting of arrays and objects, in Decode, Check and
// Marshal alike, so that all three agree on what is acceptable and none can
// be driven into unbounded recursion.
const maxDepth = 1000

// Error describes invalid or non-canonical input.
type Error struct {
	// Offset is the byte offset in the input text at which the problem was
	// found. For AppendString it is the offset within the string; for Marshal
	// and Append, whose input is a Go value rather than text, it is -1.
	Offset int
	// Reason says what is wrong, in lower case, e.g. "duplicate key".
	Reason string
}

// Error returns "jcs: offset N: reason", or "jcs: reason" when Offset is -1.
func (e *Error) Error() string {
	if e.Offset < 0 {
		return "jcs: " + e.Reason
	}
	return "jcs: offset " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// valueError reports a problem with a Go value given to Marshal or Append.
func valueError(reason string) *Error { return &Error{Offset: -1, Reason: reason} }

// bufPool holds scratch buffers for Marshal, so that it makes a single
// allocation of the exact result size whatever the size of the value.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Marshal returns the canonical form of v, a value as decoded by encoding/json
// with UseNumber or by Decode: nil, bool, string, json.Number, float64, int,
// int64, uint64, map[string]any, []any, []string or map[string]string, nested
// to a depth of at most 1000.
//
// It returns an *Error (with Offset -1) for any other type, for a string that
// is not valid UTF-8, for a json.Number that is not a JSON number literal or
// whose value overflows a double, for NaN and ±Inf, and for an integer
// (json.Number without fraction or exponent, int, int64, uint64) that a double
// does not hold exactly as written (see the package comment).
func Marshal(v any) ([]byte, error) {
	bp := bufPool.Get().(*[]byte)
	b, err := Append((*bp)[:0], v)
	var out []byte
	if err == nil {
		out = slices.Clone(b)
	}
	if cap(b) <= 64<<10 { // don't let one huge value pin memory in the pool
		*bp = b
		bufPool.Put(bp)
	}
	return out, err
}

// Raw is a value already in canonical form, to be embedded in a larger
// value without being encoded again: Append copies its bytes. Only
// MarshalRaw makes one, from a value Marshal accepts, so a Raw holds
// canonical JSON whatever the caller does; the zero Raw is null.
type Raw struct {
	b     []byte
	depth int // the arrays and objects nested in it, so that an enclosing value keeps maxDepth
}

// MarshalRaw returns v's canonical form (Marshal) as a Raw.
func MarshalRaw(v any) (Raw, error) {
	b, err := Marshal(v)
	if err != nil {
		return Raw{}, err
	}
	return Raw{b: b, depth: nesting(b)}, nil
}

// Bytes returns the canonical bytes (null for the zero Raw). The caller
// must not modify them.
func (r Raw) Bytes() []byte {
	if r.b == nil {
		return []byte("null")
	}
	return r.b
}

// IsObject reports whether r holds an object (without allocating, as
// Bytes may for the zero Raw).
func (r Raw) IsObject() bool { return len(r.b) > 0 && r.b[0] == '{' }

// MarshalJSON returns the canonical bytes, so encoding/json writes a Raw
// as the value it holds.
func (r Raw) MarshalJSON() ([]byte, error) { return r.Bytes(), nil }

// nesting returns how deep arrays and objects nest in canonical JSON b.
func nesting(b []byte) int {
	depth, most := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '[', '{':
			if depth++; depth > most {
				most = depth
			}
		case ']', '}':
			depth--
		}
	}
	return most
}

// Append appends the canonical form of v to dst and returns the extended
// buffer. It accepts the same values as Marshal and fails in the same cases;
// on failure it returns dst with its original length. It allocates only to
// grow dst, to sort objects of more than 16 members and to report an error.
func Append(dst []byte, v any) ([]byte, error) {
	n := len(dst)
	dst, err := appendValue(dst, v, 0)
	if err != nil {
		return dst[:n], err
	}
	return dst, nil
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case string:
		return appendValueString(dst, x)
	case canonNumber:
		return append(dst, x...), nil
	case Raw:
		if depth+x.depth > maxDepth {
			return dst, valueError("nesting deeper than 1000")
		}
		if x.b == nil {
			return append(dst, "null"...), nil
		}
		return append(dst, x.b...), nil
	case json.Number:
		return appendNumberLiteral(dst, string(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return dst, valueError("NaN or infinite number")
		}
		return appendFloat(dst, x), nil
	case int:
		return appendInt(dst, int64(x))
	case int64:
		return appendInt(dst, x)
	case uint64:
		return appendUint(dst, x)
	case map[string]any:
		if depth >= maxDepth {
			return dst, valueError("nesting deeper than 1000")
		}
		return appendObject(dst, x, depth)
	case []any:
		if depth >= maxDepth {
			return dst, valueError("nesting deeper than 1000")
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case []string:
		if depth >= maxDepth {
			return dst, valueError("nesting deeper than 1000")
		}
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValueString(dst, s); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]string:
		if depth >= maxDepth {
			return dst, valueError("nesting deeper than 1000")
		}
		return appendStringMap(dst, x)
	}
	return dst, valueError(fmt.Sprintf("unsupported type %T", v))
}

// member is one object member, collected so that members can be sorted
// without a second map lookup per key.
type member[V any] struct {
	key string
	val V
}

// sortMembers sorts by key in UTF-16 order. Objects are small, so insertion
// sort (no allocation, no indirect calls) beats a general sort.
func sortMembers[V any](ms []member[V]) {
	if len(ms) > 16 {
		slices.SortFunc(ms, func(a, b member[V]) int { return compareKeys(a.key, b.key) })
		return
	}
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && compareKeys(ms[j-1].key, ms[j].key) > 0; j-- {
			ms[j-1], ms[j] = ms[j], ms[j-1]
		}
	}
}

func appendObject(dst []byte, m map[string]any, depth int) ([]byte, error) {
	var buf [16]member[any] // on the stack: ordinary objects cost no allocation
	ms := buf[:0]
	for k, v := range m {
		ms = append(ms, member[any]{k, v})
	}
	sortMembers(ms)
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendValueString(dst, m.key); err != nil {
			return dst, err
		}
		dst = append(dst, ':')
		if dst, err = appendValue(dst, m.val, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendStringMap(dst []byte, m map[string]string) ([]byte, error) {
	var buf [16]member[string]
	ms := buf[:0]
	for k, v := range m {
		ms = append(ms, member[string]{k, v})
	}
	sortMembers(ms)
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendValueString(dst, m.key); err != nil {
			return dst, err
		}
		dst = append(dst, ':')
		if dst, err = appendValueString(dst, m.val); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}
