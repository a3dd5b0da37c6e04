package jcs

import (
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// Decode parses data as exactly one JSON text under RFC 8259, strictly: it
// rejects duplicate object keys (compared after unescaping), strings that are
// not valid UTF-8 or whose \u escapes leave a lone surrogate, raw control
// characters in strings, whitespace other than space, tab, CR and LF,
// anything but whitespace after the value, and arrays and objects nested
// deeper than 1000.
//
// Objects become map[string]any, arrays []any, strings string, numbers
// json.Number holding the literal text, and true, false and null become
// true, false and nil: values that Marshal accepts. Decode checks only the
// syntax of numbers; Marshal refuses those that overflow a double or are
// integers it cannot represent exactly. Errors are *Error with the offset in
// data.
func Decode(data []byte) (any, error) {
	d := decoder{data: data}
	v, err := d.text()
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Canonicalize parses data strictly, as Decode does, and returns its
// canonical form. Numbers that have no canonical form (overflowing a double,
// or integers that cannot be represented exactly) are errors too. Errors are
// *Error with the offset in data.
func Canonicalize(data []byte) ([]byte, error) {
	d := decoder{data: data, canon: true}
	v, err := d.text()
	if err != nil {
		return nil, err
	}
	// Canonical text is rarely longer than its source.
	return Append(make([]byte, 0, len(data)), v)
}

// decoder is a recursive-descent parser over data.
type decoder struct {
	data []byte
	// canon makes numbers canonNumber, checked and converted where they are
	// read so that an error can say where.
	canon bool
	buf   []byte // scratch for unescaping strings and converting numbers
}

func (d *decoder) text() (any, *Error) {
	i := d.space(0)
	v, i, err := d.value(i, 0)
	if err != nil {
		return nil, err
	}
	if i = d.space(i); i < len(d.data) {
		return nil, &Error{Offset: i, Reason: "unexpected data after value"}
	}
	return v, nil
}

// space skips the whitespace RFC 8259 allows between tokens.
func (d *decoder) space(i int) int {
	for i < len(d.data) {
		switch d.data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// value parses the value at data[i], at nesting depth depth, and returns it
// with the index just past it.
func (d *decoder) value(i, depth int) (any, int, *Error) {
	if i >= len(d.data) {
		return nil, i, &Error{Offset: i, Reason: "unexpected end of input"}
	}
	switch c := d.data[i]; c {
	case '{', '[':
		if depth >= maxDepth {
			return nil, i, &Error{Offset: i, Reason: "nesting deeper than 1000"}
		}
		if c == '{' {
			return d.object(i, depth)
		}
		return d.array(i, depth)
	case '"':
		return d.string(i)
	case 't':
		return d.literal(i, "true", true)
	case 'f':
		return d.literal(i, "false", false)
	case 'n':
		return d.literal(i, "null", nil)
	}
	return d.number(i)
}

func (d *decoder) literal(i int, name string, v any) (any, int, *Error) {
	if len(d.data)-i < len(name) || string(d.data[i:i+len(name)]) != name {
		return nil, i, &Error{Offset: i, Reason: "invalid literal"}
	}
	return v, i + len(name), nil
}

func (d *decoder) object(i, depth int) (any, int, *Error) {
	m := make(map[string]any)
	i = d.space(i + 1)
	if i < len(d.data) && d.data[i] == '}' {
		return m, i + 1, nil
	}
	for {
		if i >= len(d.data) || d.data[i] != '"' {
			return nil, i, expected(d.data, i, "string key")
		}
		key := i
		k, j, err := d.string(i)
		if err != nil {
			return nil, j, err
		}
		if _, dup := m[k]; dup {
			return nil, key, &Error{Offset: key, Reason: "duplicate key"}
		}
		if j = d.space(j); j >= len(d.data) || d.data[j] != ':' {
			return nil, j, expected(d.data, j, "':'")
		}
		v, j, err := d.value(d.space(j+1), depth+1)
		if err != nil {
			return nil, j, err
		}
		m[k] = v
		if i = d.space(j); i < len(d.data) && d.data[i] == ',' {
			i = d.space(i + 1)
			continue
		}
		if i < len(d.data) && d.data[i] == '}' {
			return m, i + 1, nil
		}
		return nil, i, expected(d.data, i, "',' or '}'")
	}
}

func (d *decoder) array(i, depth int) (any, int, *Error) {
	a := []any{}
	i = d.space(i + 1)
	if i < len(d.data) && d.data[i] == ']' {
		return a, i + 1, nil
	}
	for {
		v, j, err := d.value(i, depth+1)
		if err != nil {
			return nil, j, err
		}
		a = append(a, v)
		if i = d.space(j); i < len(d.data) && d.data[i] == ',' {
			i = d.space(i + 1)
			continue
		}
		if i < len(d.data) && d.data[i] == ']' {
			return a, i + 1, nil
		}
		return nil, i, expected(d.data, i, "',' or ']'")
	}
}

// expected reports that data[i] is not what the grammar requires.
func expected(data []byte, i int, what string) *Error {
	if i >= len(data) {
		return &Error{Offset: i, Reason: "unexpected end of input"}
	}
	return &Error{Offset: i, Reason: "expected " + what}
}

func (d *decoder) number(i int) (any, int, *Error) {
	end, intLit, fast, reason := scanNumber(d.data, i)
	if reason != "" {
		if end == i && !(i < len(d.data) && d.data[i] == '-') {
			reason = "invalid character"
		}
		return nil, end, &Error{Offset: end, Reason: reason}
	}
	lit := string(d.data[i:end])
	if !d.canon {
		return json.Number(lit), end, nil
	}
	if fast {
		return canonNumber(lit), end, nil
	}
	var b []byte
	if b, reason = appendLiteral(d.buf[:0], lit, intLit, false); reason != "" {
		return nil, i, &Error{Offset: i, Reason: reason}
	}
	d.buf = b
	return canonNumber(b), end, nil
}

// string parses the string literal at data[i] == '"'.
func (d *decoder) string(i int) (string, int, *Error) {
	data := d.data
	start := i + 1
	// Most strings have no escapes and are a copy of their source bytes.
	for i = start; i < len(data); {
		if i = skipPlain(data, i); i >= len(data) {
			break
		}
		switch c := data[i]; {
		case c == '"':
			return string(data[start:i]), i + 1, nil
		case c == '\\':
			return d.unescape(start, i)
		case c < ' ':
			return "", i, &Error{Offset: i, Reason: "control character in string"}
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return "", i, &Error{Offset: i, Reason: "invalid UTF-8 in string"}
			}
			i += size
		}
	}
	return "", i, &Error{Offset: i, Reason: "unterminated string"}
}

// unescape finishes parsing the string whose contents start at data[start]
// and whose first escape is at data[i].
func (d *decoder) unescape(start, i int) (string, int, *Error) {
	data := d.data
	b := append(d.buf[:0], data[start:i]...)
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.buf = b // reuse the grown buffer for the next string
			return string(b), i + 1, nil
		case c == '\\':
			if i+1 >= len(data) {
				return "", i + 1, &Error{Offset: i + 1, Reason: "unterminated string"}
			}
			switch e := data[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
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
				r, n, err := d.unicode(i)
				if err != nil {
					return "", i, err
				}
				b = utf8.AppendRune(b, r)
				i += n
				continue
			default:
				return "", i, &Error{Offset: i, Reason: "invalid escape"}
			}
			i += 2
		case c < ' ':
			return "", i, &Error{Offset: i, Reason: "control character in string"}
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return "", i, &Error{Offset: i, Reason: "invalid UTF-8 in string"}
			}
			b = append(b, data[i:i+size]...)
			i += size
		}
	}
	return "", i, &Error{Offset: i, Reason: "unterminated string"}
}

// unicode decodes the \uXXXX escape at data[i], or the pair of them that
// encodes a surrogate pair, returning the rune and the bytes consumed.
func (d *decoder) unicode(i int) (rune, int, *Error) {
	r, ok := hex4(d.data, i+2)
	if !ok {
		return 0, 0, &Error{Offset: i, Reason: "invalid \\u escape"}
	}
	if !utf16.IsSurrogate(r) {
		return r, 6, nil
	}
	if r < 0xDC00 { // high surrogate: a low one must follow
		if len(d.data) >= i+12 && d.data[i+6] == '\\' && d.data[i+7] == 'u' {
			if r2, ok := hex4(d.data, i+8); ok && 0xDC00 <= r2 && r2 <= 0xDFFF {
				return utf16.DecodeRune(r, r2), 12, nil
			}
		}
	}
	return 0, 0, &Error{Offset: i, Reason: "lone surrogate in \\u escape"}
}

// hex4 decodes the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if len(data)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
