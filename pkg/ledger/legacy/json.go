package legacy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Value is a JSON value as Python's json.loads sees it. Its dynamic type is
// one of: nil (null), bool, Int, float64 (including NaN and ±Inf), string,
// []Value (array) or map[string]Value (object; for a duplicate key the last
// value wins).
//
// A string holding a lone surrogate (from an escape such as "\ud800", which
// Python accepts) keeps it in the 3-byte WTF-8 form, so such a string is not
// valid UTF-8 and Dumps refuses it.
type Value = any

// Int is a JSON integer, kept exactly as Python's int repr writes it: decimal
// digits with an optional leading '-' ("-0" is normalized to "0").
type Int string

// maxDepth bounds array/object nesting. CPython's json raises RecursionError
// near its default recursion limit of 1000, so deeper text cannot come from
// the old writer.
const maxDepth = 1000

// Parse parses data the way Python's json.loads (C scanner, strict mode) does:
// whitespace is only space, tab, CR and LF; NaN, Infinity and -Infinity are
// accepted; a number with a fraction or exponent is a float64 (overflowing to
// ±Inf), any other number is an Int of unbounded size; raw control characters
// inside strings are rejected. data must be valid UTF-8.
func Parse(data []byte) (Value, error) {
	if !utf8.Valid(data) {
		for i := 0; ; {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, fmt.Errorf("invalid UTF-8 byte 0x%02x at offset %d", data[i], i)
			}
			i += n
		}
	}
	p := parser{data: data}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(data) {
		return nil, p.errorf("extra data")
	}
	return v, nil
}

type parser struct {
	data []byte
	pos  int
	buf  []byte
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%s at offset %d", fmt.Sprintf(format, args...), p.pos)
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) literal(word string) bool {
	if len(p.data)-p.pos >= len(word) && string(p.data[p.pos:p.pos+len(word)]) == word {
		p.pos += len(word)
		return true
	}
	return false
}

func (p *parser) value(depth int) (Value, error) {
	if p.pos >= len(p.data) {
		return nil, p.errorf("expecting value")
	}
	switch c := p.data[p.pos]; {
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return nil, p.errorf("nesting deeper than %d", maxDepth)
		}
		if c == '{' {
			return p.object(depth + 1)
		}
		return p.array(depth + 1)
	case c == '"':
		return p.string()
	case c == '-' || c >= '0' && c <= '9':
		if p.literal("-Infinity") {
			return math.Inf(-1), nil
		}
		return p.number()
	case p.literal("null"):
		return nil, nil
	case p.literal("true"):
		return true, nil
	case p.literal("false"):
		return false, nil
	case p.literal("NaN"):
		return math.NaN(), nil
	case p.literal("Infinity"):
		return math.Inf(1), nil
	}
	return nil, p.errorf("expecting value")
}

func (p *parser) object(depth int) (Value, error) {
	p.pos++ // '{'
	obj := map[string]Value{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return obj, nil
	}
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errorf("expecting property name enclosed in double quotes")
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errorf("expecting ':' delimiter")
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		obj[key] = v
		p.skipSpace()
		if p.pos < len(p.data) && p.data[p.pos] == '}' {
			p.pos++
			return obj, nil
		}
		if p.pos >= len(p.data) || p.data[p.pos] != ',' {
			return nil, p.errorf("expecting ',' delimiter")
		}
		p.pos++
		p.skipSpace()
	}
}

func (p *parser) array(depth int) (Value, error) {
	p.pos++ // '['
	arr := []Value{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return arr, nil
	}
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		p.skipSpace()
		if p.pos < len(p.data) && p.data[p.pos] == ']' {
			p.pos++
			return arr, nil
		}
		if p.pos >= len(p.data) || p.data[p.pos] != ',' {
			return nil, p.errorf("expecting ',' delimiter")
		}
		p.pos++
		p.skipSpace()
	}
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?.
func (p *parser) number() (Value, error) {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.data[p.pos] == '-' {
		p.pos++
	}
	if p.pos < len(p.data) && p.data[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, p.errorf("expecting value")
	}
	isFloat := false
	if p.pos+1 < len(p.data) && p.data[p.pos] == '.' && isDigit(p.data[p.pos+1]) {
		p.pos++
		digits()
		isFloat = true
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		save := p.pos
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			p.pos = save // like Python: the exponent is not part of the number
		} else {
			isFloat = true
		}
	}
	lit := string(p.data[start:p.pos])
	if !isFloat {
		if lit == "-0" {
			lit = "0"
		}
		return Int(lit), nil
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, p.errorf("bad number %q", lit)
	}
	return f, nil // out of range: ±Inf or 0, as Python's float()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *parser) string() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	for p.pos < len(p.data) {
		switch c := p.data[p.pos]; {
		case c == '"':
			s := string(p.data[start:p.pos])
			p.pos++
			return s, nil
		case c == '\\':
			return p.escapedString(start)
		case c < 0x20:
			return "", p.errorf("invalid control character")
		}
		p.pos++
	}
	return "", p.errorf("unterminated string")
}

// escapedString continues a string that has an escape at p.pos.
func (p *parser) escapedString(start int) (string, error) {
	b := append(p.buf[:0], p.data[start:p.pos]...)
	defer func() { p.buf = b }()
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(b), nil
		case c < 0x20:
			return "", p.errorf("invalid control character")
		case c != '\\':
			b = append(b, c)
			p.pos++
			continue
		}
		p.pos++
		if p.pos >= len(p.data) {
			break
		}
		esc := p.data[p.pos]
		p.pos++
		switch esc {
		case '"', '\\', '/':
			b = append(b, esc)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4(p.pos)
			if !ok {
				return "", p.errorf("invalid \\uXXXX escape")
			}
			p.pos += 4
			if r >= 0xd800 && r < 0xdc00 && p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
				r2, ok := p.hex4(p.pos + 2)
				if !ok {
					return "", p.errorf("invalid \\uXXXX escape")
				}
				if r2 >= 0xdc00 && r2 < 0xe000 {
					r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
					p.pos += 6
				}
			}
			b = appendRuneWTF8(b, r)
		default:
			p.pos--
			return "", p.errorf("invalid \\escape")
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *parser) hex4(i int) (rune, bool) {
	if i+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// appendRuneWTF8 is utf8.AppendRune, except that a surrogate code point is
// written in its 3-byte form instead of as U+FFFD.
func appendRuneWTF8(b []byte, r rune) []byte {
	if r >= 0xd800 && r < 0xe000 {
		return append(b, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
	}
	return utf8.AppendRune(b, r)
}

// Dumps returns the bytes that Python's
// json.dumps(v, sort_keys=True, ensure_ascii=False).encode("utf-8") gives for
// v, a value produced by Parse: separators ", " and ": "; object keys sorted
// by code point at every depth; strings raw except that '"' and '\' are
// escaped and U+0000..U+001F are written as \n \r \t \b \f or \u00xx;
// integers exact; floats as Python's repr (1.0, 0.95, 1e-05, 1e+16) and
// NaN, Infinity, -Infinity as those words. It fails if a string holds a lone
// surrogate, as Python's encode does.
func Dumps(v Value) ([]byte, error) {
	return appendDumps(nil, v)
}

func appendDumps(b []byte, v Value) ([]byte, error) {
	var err error
	switch v := v.(type) {
	case nil:
		b = append(b, "null"...)
	case bool:
		b = strconv.AppendBool(b, v)
	case Int:
		b = append(b, v...)
	case float64:
		b = appendFloat(b, v)
	case string:
		b, err = appendString(b, v)
	case []Value:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ", "...)
			}
			if b, err = appendDumps(b, e); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	case map[string]Value:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // byte order of UTF-8 (and WTF-8) is code point order
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ", "...)
			}
			if b, err = appendString(b, k); err != nil {
				return nil, err
			}
			b = append(b, ": "...)
			if b, err = appendDumps(b, v[k]); err != nil {
				return nil, err
			}
		}
		b = append(b, '}')
	default:
		return nil, fmt.Errorf("legacy: cannot dump %T", v)
	}
	return b, err
}

// appendString writes s as Python's ensure_ascii=False encoder does: only
// '"', '\\' and U+0000..U+001F are escaped.
func appendString(b []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, surrogateError(s)
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"'), nil
}

func surrogateError(s string) error {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == 0xed && s[i+1] >= 0xa0 {
			r := rune(s[i]&0x0f)<<12 | rune(s[i+1]&0x3f)<<6 | rune(s[i+2]&0x3f)
			return fmt.Errorf("text cannot be UTF-8 encoded: lone surrogate \\u%04x", r)
		}
	}
	return errors.New("text cannot be UTF-8 encoded: invalid string")
}

// appendFloat writes f as Python's float repr: shortest round-trip digits,
// exponent form when the decimal exponent is < -4 or >= 16.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	case f == 0:
		if math.Signbit(f) {
			return append(b, "-0.0"...)
		}
		return append(b, "0.0"...)
	}
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64) // [-]d[.ddd]e±XX, like repr
	if f < 0 {
		b = append(b, '-')
		e = e[1:]
	}
	ei := slices.Index(e, 'e')
	exp, _ := strconv.Atoi(string(e[ei+1:]))
	if exp < -4 || exp >= 16 {
		return append(b, e...)
	}
	var dbuf [32]byte
	digits := append(dbuf[:0], e[0])
	if ei > 1 {
		digits = append(digits, e[2:ei]...) // drop the '.'
	}
	if exp < 0 {
		b = append(b, "0."...)
		for range -exp - 1 {
			b = append(b, '0')
		}
		return append(b, digits...)
	}
	if len(digits) <= exp+1 {
		b = append(b, digits...)
		for range exp + 1 - len(digits) {
			b = append(b, '0')
		}
		return append(b, ".0"...)
	}
	b = append(b, digits[:exp+1]...)
	b = append(b, '.')
	return append(b, digits[exp+1:]...)
}
