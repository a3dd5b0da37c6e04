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
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
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

// Append appends the canonical form of v to dst and returns the extended
// buffer. It accepts the same values as Marshal and fails in the same cases;
// on failure it returns dst with its original length. It does not allocate
// except to grow dst and to sort objects of more than 16 members.
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

// compareKeys orders two valid UTF-8 strings as sequences of UTF-16 code
// units, as RFC 8785 sorts object keys.
//
// Byte order of UTF-8 is code point order, and that agrees with UTF-16 order
// except for one case: U+E000..U+FFFF (lead bytes 0xEE, 0xEF) sort after the
// surrogate pairs that encode U+10000 and up (lead bytes 0xF0..0xF4), since
// surrogates are 0xD800..0xDFFF. At the first differing byte both strings are
// at the same position within a character, so that case shows as one string
// having 0xEE or 0xEF where the other has 0xF0 or more.
func compareKeys[T ~string | ~[]byte](a, b T) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if x, y := a[i], b[i]; x != y {
			return compareUnits(x, y)
		}
	}
	return len(a) - len(b)
}

// compareUnits orders the first differing bytes x != y of two UTF-8 strings
// by the UTF-16 code units they begin (see compareKeys).
func compareUnits(x, y byte) int {
	if x >= 0xEE && y >= 0xEE && (x >= 0xF0) != (y >= 0xF0) {
		return int(y) - int(x)
	}
	return int(x) - int(y)
}

// escapes gives, for each ASCII byte, the escape RFC 8785 writes for it: 0
// for none, 'u' for \u00xx, otherwise the letter following the backslash.
var escapes = func() (t [utf8.RuneSelf]byte) {
	for c := range 0x20 {
		t[c] = 'u'
	}
	t['\b'], t['\t'], t['\n'], t['\f'], t['\r'] = 'b', 't', 'n', 'f', 'r'
	t['"'], t['\\'] = '"', '\\'
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendString appends s to dst as a canonical JSON string literal, quotes
// included, and returns the extended buffer. If s is not valid UTF-8 it
// returns dst unchanged and an *Error whose Offset is that of the first
// invalid byte in s.
func AppendString(dst []byte, s string) ([]byte, error) {
	dst, bad := appendString(dst, s)
	if bad >= 0 {
		return dst, &Error{Offset: bad, Reason: "invalid UTF-8 in string"}
	}
	return dst, nil
}

// appendString is AppendString, reporting the offset of invalid UTF-8 in s
// (or -1) so that each caller can word its own error.
func appendString(dst []byte, s string) ([]byte, int) {
	n := len(dst)
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, to be copied in one append
	for i := 0; i < len(s); {
		if i = skipPlain(s, i); i >= len(s) {
			break
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return dst[:n], i
			}
			i += size
			continue
		}
		e := escapes[c]
		if e == 0 {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if e == 'u' {
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		} else {
			dst = append(dst, '\\', e)
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), -1
}

// Word-at-a-time scanning of string contents: plain ASCII is most of what is
// written and checked, and finding the next byte that needs a closer look
// eight bytes at a time makes a string cost little more than copying it.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// skipPlain returns the index of the first byte at or after s[i] that is a
// control character, '"', '\\' or not ASCII, or an index from which fewer than
// eight bytes remain.
func skipPlain[T ~string | ~[]byte](s T, i int) int {
	for ; i+8 <= len(s); i += 8 {
		w := load64(s[i : i+8])
		// The classic "has a byte less than n" and "has a zero byte" tricks.
		// A flagged byte can make the one above it flagged too, by a borrow,
		// but the lowest flagged byte is always right.
		q, b := w^(lsb*'"'), w^(lsb*'\\')
		if m := ((w-lsb*' ')&^w | (q-lsb)&^q | (b-lsb)&^b | w) & msb; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	return i
}

// load64 returns the eight bytes of s little-endian: one load instruction.
func load64[T ~string | ~[]byte](s T) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// appendValueString is appendString for Marshal's errors, which have no
// offset.
func appendValueString(dst []byte, s string) ([]byte, error) {
	dst, bad := appendString(dst, s)
	if bad >= 0 {
		return dst, valueError("invalid UTF-8 in string " + strconv.QuoteToASCII(s))
	}
	return dst, nil
}
