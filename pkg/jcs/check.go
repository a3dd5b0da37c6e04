package jcs

import (
	"strconv"
	"unicode/utf8"
)

// Check reports whether data is exactly the canonical form of some JSON
// value: it returns nil if so, and otherwise an *Error giving the offset of
// the first offending byte and the reason, such as whitespace, keys out of
// order or duplicated, a non-minimal escape (\u0041, \/, uppercase hex), a
// number not written canonically (1.0, 1E3, -0, 01, 9007199254740993),
// invalid UTF-8 or data after the value.
//
// Check(data) == nil exactly when Canonicalize(data) succeeds and returns
// data unchanged, but Check is a single pass over data that allocates only
// to report an error.
func Check(data []byte) error {
	end, err := checkValue(data, 0, 0)
	if err != nil {
		return err
	}
	if end < len(data) {
		return unexpected(data, end, "end of input")
	}
	return nil
}

// CheckAt is Check for one value inside a larger text, for scanners that
// walk a known structure and want each value checked in the same pass: it
// checks that the value starting at data[i] is in canonical form and
// returns the index just past it. depth is the value's nesting depth in the
// whole text (0 for the top-level value, 1 for a member of a top-level
// object), so that the nesting limit is Check's.
func CheckAt(data []byte, i, depth int) (int, error) {
	end, err := checkValue(data, i, depth)
	if err != nil {
		return end, err
	}
	return end, nil
}

// unexpected reports that data[i] is not what canonical form requires there.
func unexpected(data []byte, i int, want string) *Error {
	if i >= len(data) {
		return &Error{Offset: i, Reason: "unexpected end of input"}
	}
	switch data[i] {
	case ' ', '\t', '\n', '\r':
		return &Error{Offset: i, Reason: "whitespace"}
	}
	return &Error{Offset: i, Reason: "expected " + want}
}

// checkValue checks the value at data[i], at nesting depth depth, and
// returns the index just past it.
func checkValue(data []byte, i, depth int) (int, *Error) {
	if i >= len(data) {
		return i, unexpected(data, i, "value")
	}
	switch data[i] {
	case '{':
		return checkObject(data, i, depth)
	case '[':
		return checkArray(data, i, depth)
	case '"':
		end, _, err := checkString(data, i)
		return end, err
	case 't':
		return checkLiteral(data, i, "true")
	case 'f':
		return checkLiteral(data, i, "false")
	case 'n':
		return checkLiteral(data, i, "null")
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return checkNumber(data, i)
	}
	return i, unexpected(data, i, "value")
}

func checkLiteral(data []byte, i int, name string) (int, *Error) {
	if len(data)-i < len(name) || string(data[i:i+len(name)]) != name {
		return i, &Error{Offset: i, Reason: "invalid literal"}
	}
	return i + len(name), nil
}

func checkObject(data []byte, i, depth int) (int, *Error) {
	if depth >= maxDepth {
		return i, &Error{Offset: i, Reason: "nesting deeper than 1000"}
	}
	i++
	if i < len(data) && data[i] == '}' {
		return i + 1, nil
	}
	// The previous key's contents, data[prev:prevEnd]; escaped tells whether
	// it holds escapes and so must be decoded to be compared.
	prev, prevEnd, prevEscaped := -1, -1, false
	for {
		if i >= len(data) || data[i] != '"' {
			return i, unexpected(data, i, "string key")
		}
		end, escaped, err := checkString(data, i)
		if err != nil {
			return end, err
		}
		if prev >= 0 {
			var c int
			if escaped || prevEscaped {
				c = compareEscaped(data[prev:prevEnd], data[i+1:end-1])
			} else {
				c = compareKeys(data[prev:prevEnd], data[i+1:end-1])
			}
			if c == 0 {
				return i, &Error{Offset: i, Reason: "duplicate key"}
			}
			if c > 0 {
				return i, &Error{Offset: i, Reason: "keys not sorted"}
			}
		}
		prev, prevEnd, prevEscaped = i+1, end-1, escaped
		if end >= len(data) || data[end] != ':' {
			return end, unexpected(data, end, "':'")
		}
		if i, err = checkValue(data, end+1, depth+1); err != nil {
			return i, err
		}
		if i < len(data) && data[i] == ',' {
			i++
			continue
		}
		if i < len(data) && data[i] == '}' {
			return i + 1, nil
		}
		return i, unexpected(data, i, "',' or '}'")
	}
}

func checkArray(data []byte, i, depth int) (int, *Error) {
	if depth >= maxDepth {
		return i, &Error{Offset: i, Reason: "nesting deeper than 1000"}
	}
	i++
	if i < len(data) && data[i] == ']' {
		return i + 1, nil
	}
	for {
		var err *Error
		if i, err = checkValue(data, i, depth+1); err != nil {
			return i, err
		}
		if i < len(data) && data[i] == ',' {
			i++
			continue
		}
		if i < len(data) && data[i] == ']' {
			return i + 1, nil
		}
		return i, unexpected(data, i, "',' or ']'")
	}
}

// checkNumber checks the number at data[i]. Most numbers are judged
// canonical from their shape (see scanNumber); the rest are converted to a
// double and back, and must come back unchanged.
func checkNumber(data []byte, i int) (int, *Error) {
	end, intLit, fast, reason := scanNumber(data, i)
	if reason != "" {
		return end, &Error{Offset: end, Reason: reason}
	}
	if fast {
		return end, nil
	}
	lit := data[i:end]
	if len(lit) <= maxCanonNumber {
		// string(lit) does not escape, so the conversion uses a stack buffer.
		if f, err := strconv.ParseFloat(string(lit), 64); err == nil {
			var buf [maxCanonNumber]byte
			if string(appendFloat(buf[:0], f)) == string(lit) {
				return end, nil
			}
		}
	}
	// Not canonical: say why, allocating as needed.
	want, reason := appendLiteral(nil, string(lit), intLit, false)
	if reason == "" {
		reason = "number not in canonical form (want " + string(want) + ")"
	}
	return i, &Error{Offset: i, Reason: reason}
}

// checkString checks the canonical string literal at data[i] == '"' and
// returns the index just past it and whether it holds any escape.
func checkString(data []byte, i int) (end int, escaped bool, err *Error) {
	for i++; i < len(data); {
		if i = skipPlain(data, i); i >= len(data) {
			break
		}
		c := data[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return i, false, &Error{Offset: i, Reason: "invalid UTF-8 in string"}
			}
			i += size
			continue
		}
		switch escapes[c] {
		case 0:
			i++
		case '"':
			return i + 1, escaped, nil
		case '\\':
			n := checkEscape(data, i)
			if n == 0 {
				return i, false, &Error{Offset: i, Reason: "non-canonical or invalid escape"}
			}
			i += n
			escaped = true
		default:
			return i, false, &Error{Offset: i, Reason: "unescaped control character in string"}
		}
	}
	return i, false, &Error{Offset: i, Reason: "unterminated string"}
}

// checkEscape returns the length of the canonical escape at data[i] == '\\',
// or 0 if there is none: \uXXXX is canonical only for the control characters
// that have no short form, in lowercase hex.
func checkEscape(data []byte, i int) int {
	if i+1 >= len(data) {
		return 0
	}
	switch data[i+1] {
	case '"', '\\', 'b', 't', 'n', 'f', 'r':
		return 2
	case 'u':
		if len(data)-i < 6 || data[i+2] != '0' || data[i+3] != '0' {
			return 0
		}
		hi, lo := data[i+4], unhex(data[i+5])
		if (hi != '0' && hi != '1') || lo > 0xF || escapes[(hi-'0')<<4|lo] != 'u' {
			return 0
		}
		return 6
	}
	return 0
}

// unhex returns the value of the lowercase hex digit c, or 0xFF.
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 0xFF
}

// compareEscaped is compareKeys for the contents of two canonical string
// literals, at least one of which holds escapes. Canonical escapes stand for
// single ASCII bytes, so the decoded strings are compared a byte at a time.
func compareEscaped(a, b []byte) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		x, ni := unescapeByte(a, i)
		y, nj := unescapeByte(b, j)
		if x != y {
			return compareUnits(x, y)
		}
		i, j = ni, nj
	}
	switch {
	case i < len(a):
		return 1
	case j < len(b):
		return -1
	}
	return 0
}

// unescapeByte decodes the byte at s[i] of a canonical string's contents,
// returning it and the index of the next.
func unescapeByte(s []byte, i int) (byte, int) {
	if s[i] != '\\' {
		return s[i], i + 1
	}
	switch e := s[i+1]; e {
	case 'u':
		return unhex(s[i+4])<<4 | unhex(s[i+5]), i + 6
	case 'b':
		return '\b', i + 2
	case 't':
		return '\t', i + 2
	case 'n':
		return '\n', i + 2
	case 'f':
		return '\f', i + 2
	case 'r':
		return '\r', i + 2
	default: // '"' or '\\'
		return e, i + 2
	}
}
