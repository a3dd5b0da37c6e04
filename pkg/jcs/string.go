package jcs

import (
	"math/bits"
	"strconv"
	"unicode/utf8"
)

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
		i = skipPlain(s, i)
		for i < len(s) && s[i] < utf8.RuneSelf && escapes[s[i]] == 0 {
			i++ // what skipPlain leaves: short strings, false alarms
		}
		if i >= len(s) {
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
// control character, '"', '\\' or not ASCII, or len(s) if there is none.
// Near the end of s it may stop early, at a plain byte, so callers must
// look at the byte it stops at.
func skipPlain[T ~string | ~[]byte](s T, i int) int {
	for ; i+8 <= len(s); i += 8 {
		if m := specials(load64(s[i : i+8])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	if i < len(s) && len(s) >= 8 {
		// Test the last eight bytes, ignoring those before i. A byte before
		// i may flag bytes above it (see specials): a stop too early.
		k := i - (len(s) - 8)
		if m := specials(load64(s[len(s)-8:])) >> (8 * k); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		return len(s)
	}
	return i
}

// specials has the top bit set in each byte of w that is a control
// character, '"', '\\' or not ASCII, by the classic "has a byte less than n"
// and "has a zero byte" tricks. A borrow may also set it in bytes above one of
// those, but never in the lowest byte that has it set unless that is one.
func specials(w uint64) uint64 {
	q, b := w^(lsb*'"'), w^(lsb*'\\')
	return ((w-lsb*' ')&^w | (q-lsb)&^q | (b-lsb)&^b | w) & msb
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
		return dst, valueError("invalid UTF-8 in string, at byte " + strconv.Itoa(bad))
	}
	return dst, nil
}
