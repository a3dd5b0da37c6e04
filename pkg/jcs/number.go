package jcs

import (
	"strconv"
)

// canonNumber is a number literal already in canonical form. Canonicalize's
// decoder stores numbers this way so that Append copies them instead of
// parsing them a second time. It is unexported, so callers cannot forge one.
type canonNumber string

// two53 is 2^53: every integer of at most this magnitude is a double.
const two53 = 1 << 53

// maxCanonNumber bounds the length of a canonical number:
// "-1.2345678901234567e-123" and "-0.0000012345678901234567" have 25 bytes.
// A longer literal cannot be canonical, and Check can reject it without
// converting it (which would allocate).
const maxCanonNumber = 32

// appendFloat appends f, which must be finite, as ECMAScript's
// Number.prototype.toString writes it (ECMA-262 Number::toString, the form
// RFC 8785 prescribes).
func appendFloat(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0') // -0 too
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// Shortest digits that round-trip, ties going to the digits closest to f:
	// the same choice ECMAScript makes. b is "d[.ddd]e±x".
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	var digits [17]byte
	digits[0] = b[0]
	k, i := 1, 1
	if b[1] == '.' {
		for i = 2; b[i] != 'e'; i++ {
			digits[k] = b[i]
			k++
		}
	}
	e := 0 // exponent of the 'e' form
	for _, c := range b[i+2:] {
		e = e*10 + int(c-'0')
	}
	if b[i+1] == '-' {
		e = -e
	}
	// In ECMA-262's terms f = 0.d1…dk × 10^n; which notation depends on n.
	switch n := e + 1; {
	case k <= n && n <= 21: // integer: digits then zeros
		dst = append(dst, digits[:k]...)
		for ; k < n; k++ {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21: // point inside the digits
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:k]...)
	case -6 < n && n <= 0: // 0.000ddd, down to 1e-6
		dst = append(dst, '0', '.')
		for ; n < 0; n++ {
			dst = append(dst, '0')
		}
		dst = append(dst, digits[:k]...)
	default: // exponent: d[.ddd]e±x
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:k]...)
		}
		dst = append(dst, 'e')
		if e >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(e), 10)
	}
	return dst
}

// appendInt appends the integer x, refusing it if its nearest double would
// not be written back as the same digits.
func appendInt(dst []byte, x int64) ([]byte, error) {
	if -two53 <= x && x <= two53 {
		return strconv.AppendInt(dst, x, 10), nil
	}
	var buf [24]byte
	return appendBigInt(dst, strconv.AppendInt(buf[:0], x, 10), float64(x))
}

// appendUint is appendInt for uint64.
func appendUint(dst []byte, x uint64) ([]byte, error) {
	if x <= two53 {
		return strconv.AppendUint(dst, x, 10), nil
	}
	var buf [24]byte
	return appendBigInt(dst, strconv.AppendUint(buf[:0], x, 10), float64(x))
}

// appendBigInt appends the decimal text of an integer above 2^53 in
// magnitude, given f, the double nearest to it, provided that text is the
// canonical form of f. Otherwise the integer has no exact canonical form and
// it is an error, not a silent rounding.
func appendBigInt(dst []byte, text []byte, f float64) ([]byte, error) {
	n := len(dst)
	dst = appendFloat(dst, f)
	if string(dst[n:]) != string(text) {
		return dst[:n], valueError(inexactInt)
	}
	return dst, nil
}

const inexactInt = "integer above 2^53 cannot be represented exactly"

// appendNumberLiteral appends the canonical form of the JSON number literal
// lit, as given in a json.Number.
func appendNumberLiteral(dst []byte, lit string) ([]byte, error) {
	end, intLit, fast, reason := scanNumber(lit, 0)
	if reason == "" && end != len(lit) {
		reason = "invalid number"
	}
	if reason != "" {
		return dst, valueError(reason + " in json.Number " + strconv.Quote(lit))
	}
	dst, reason = appendLiteral(dst, lit, intLit, fast)
	if reason != "" {
		return dst, valueError(reason + ": " + lit)
	}
	return dst, nil
}

// appendLiteral appends the canonical form of lit, a valid JSON number
// literal as described by scanNumber, or returns why it has none.
func appendLiteral(dst []byte, lit string, intLit, fast bool) ([]byte, string) {
	if fast {
		return append(dst, lit...), ""
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil { // the syntax is valid, so this is overflow to ±Inf
		return dst, "number out of range"
	}
	n := len(dst)
	dst = appendFloat(dst, f)
	// An integer literal must come back unchanged ("-0" aside): that holds for
	// all magnitudes up to 2^53 and refuses silent rounding above.
	if intLit && f != 0 && string(dst[n:]) != lit {
		return dst[:n], inexactInt
	}
	return dst, ""
}

// scanNumber scans the JSON number literal (RFC 8259 grammar) that starts at
// s[i]. It returns the index just past it, or on a syntax error the offset of
// the offending byte and a reason.
//
// intLit reports that the literal has neither fraction nor exponent. fast
// reports that the literal is canonical, judged from its shape alone, so that
// the usual small numbers need no conversion. That judgement rests on this:
// a decimal of at most 15 significant digits is the shortest decimal that
// rounds to its nearest double (distinct such decimals lie further apart than
// a double's rounding interval, since 10^-15 > 2^-52), so its digits are the
// ones ECMAScript prints. fast is false when in doubt; the caller then
// converts and compares.
func scanNumber[T ~string | ~[]byte](s T, i int) (end int, intLit, fast bool, reason string) {
	n := len(s)
	neg := i < n && s[i] == '-'
	if neg {
		i++
	}
	intStart := i
	switch {
	case i < n && s[i] == '0':
		i++
		if i < n && isDigit(s[i]) {
			return i, false, false, "leading zero in number"
		}
	case i < n && '1' <= s[i] && s[i] <= '9':
		for i++; i < n && isDigit(s[i]); i++ {
		}
	default:
		return i, false, false, "invalid number"
	}
	intDigits := i - intStart
	fracStart, fracDigits := i, 0
	if i < n && s[i] == '.' {
		i++
		fracStart = i
		for ; i < n && isDigit(s[i]); i++ {
		}
		if fracDigits = i - fracStart; fracDigits == 0 {
			return i, false, false, "invalid number: no digits after '.'"
		}
	}
	if i < n && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < n && (s[i] == '+' || s[i] == '-') {
			i++
		}
		expStart := i
		for ; i < n && isDigit(s[i]); i++ {
		}
		if i == expStart {
			return i, false, false, "invalid number: no digits in exponent"
		}
		return i, false, false, "" // canonical exponents depend on the value
	}
	if fracDigits == 0 {
		// Small integers are canonical as written, except "-0".
		return i, true, intDigits <= 15 && !(neg && s[intStart] == '0'), ""
	}
	if s[i-1] == '0' {
		return i, false, false, "" // trailing zero in the fraction
	}
	if s[intStart] != '0' {
		return i, false, intDigits+fracDigits <= 15, ""
	}
	// 0.000ddd: canonical only down to 0.000001, below which ES uses 1e-7.
	z := 0
	for s[fracStart+z] == '0' { // ends: the last digit is not '0'
		z++
	}
	return i, false, z <= 5 && fracDigits-z <= 15, ""
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
