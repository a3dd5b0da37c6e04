// Package price turns the decimal prices of config/providers.json into
// exact integers and gives the cost of a call in integer micro-USD
// (DESIGN.md §9). No floating point is involved anywhere.
//
// A price is a decimal string in USD per million tokens with at most six
// fractional digits ("3", "0.25", "15.000001"). One millionth of a USD per
// million tokens is the unit of a Rate, so a Rate is also exactly the
// number of micro-USD one token costs, times one million:
//
//	cost in micro-USD = tokens × rate / 1,000,000
//
// Rounding rule: the cost of one call is rounded up once, over the sum of
// its input and output parts: ceil((in×input + out×output) / 10⁶). A call
// is never charged less than it cost, and at most one micro-USD more.
package price

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// MaxPriceDigits bounds the integer part of a price: 9 digits (under a
// billion USD per million tokens), as the providers schema does.
const MaxPriceDigits = 9

// MaxFractionDigits is the finest price step: 0.000001 USD per million
// tokens.
const MaxFractionDigits = 6

// Rate is a price in millionths of a USD per million tokens.
type Rate int64

// Rates are a model's input and output prices.
type Rates struct {
	Input  Rate `json:"input"`
	Output Rate `json:"output"`
}

// ErrOverflow is a cost too large for an int64 of micro-USD.
var ErrOverflow = errors.New("cost overflows int64 micro-USD")

// ParseError is a price string that is not a decimal of the accepted form.
type ParseError struct {
	Price  string
	Reason string
}

func (e *ParseError) Error() string { return fmt.Sprintf("price %q: %s", e.Price, e.Reason) }

// Parse reads a price in USD per million tokens: digits, optionally a dot
// and one to six digits; no sign, exponent, spaces or leading zeros
// ("0.5" yes, "00.5", ".5", "5.", "+5", "1e3" no).
func Parse(s string) (Rate, error) {
	fail := func(reason string) (Rate, error) { return 0, &ParseError{Price: s, Reason: reason} }
	intPart, frac, dotted := s, "", false
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac, dotted = s[:i], s[i+1:], true
			break
		}
	}
	switch {
	case intPart == "":
		return fail("no integer part")
	case len(intPart) > MaxPriceDigits:
		return fail(fmt.Sprintf("more than %d integer digits", MaxPriceDigits))
	case len(intPart) > 1 && intPart[0] == '0':
		return fail("leading zero")
	case dotted && frac == "":
		return fail("no digits after the dot")
	case len(frac) > MaxFractionDigits:
		return fail(fmt.Sprintf("more than %d fractional digits", MaxFractionDigits))
	}
	var r int64
	for _, c := range []byte(intPart) {
		if c < '0' || c > '9' {
			return fail("not a decimal number")
		}
		r = r*10 + int64(c-'0')
	}
	for i := 0; i < MaxFractionDigits; i++ {
		d := int64(0)
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return fail("not a decimal number")
			}
			d = int64(c - '0')
		}
		r = r*10 + d
	}
	return Rate(r), nil
}

// String returns the shortest decimal form of r in USD per million tokens.
func (r Rate) String() string {
	whole, frac := int64(r)/1_000_000, int64(r)%1_000_000
	if frac == 0 {
		return fmt.Sprint(whole)
	}
	s := fmt.Sprintf("%d.%06d", whole, frac)
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	return s
}

// ParseRates parses a model's input and output prices.
func ParseRates(input, output string) (Rates, error) {
	in, err := Parse(input)
	if err != nil {
		return Rates{}, err
	}
	out, err := Parse(output)
	if err != nil {
		return Rates{}, err
	}
	return Rates{Input: in, Output: out}, nil
}

// Cost returns the cost in micro-USD of a call that used in input and out
// output tokens at rates r, rounded up once (see the package comment). It
// fails on negative token counts or rates, and with ErrOverflow on a cost
// beyond an int64.
func Cost(in, out int64, r Rates) (int64, error) {
	if in < 0 || out < 0 {
		return 0, fmt.Errorf("negative token count (%d input, %d output)", in, out)
	}
	if r.Input < 0 || r.Output < 0 {
		return 0, fmt.Errorf("negative rate")
	}
	hi1, lo1 := bits.Mul64(uint64(in), uint64(r.Input))
	hi2, lo2 := bits.Mul64(uint64(out), uint64(r.Output))
	lo, carry := bits.Add64(lo1, lo2, 0)
	hi, carry := bits.Add64(hi1, hi2, carry)
	if carry != 0 || hi >= 1_000_000 {
		return 0, ErrOverflow
	}
	q, rem := bits.Div64(hi, lo, 1_000_000)
	if q > math.MaxInt64 || (rem != 0 && q == math.MaxInt64) {
		return 0, ErrOverflow
	}
	if rem != 0 {
		q++ // the rounding rule: up
	}
	return int64(q), nil
}
