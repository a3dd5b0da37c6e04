package price

import (
	"errors"
	"math"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for s, want := range map[string]Rate{
		"0": 0, "3": 3_000_000, "0.25": 250_000, "15.000001": 15_000_001, "0.000001": 1,
		"999999999.999999": 999_999_999_999_999, "10.5": 10_500_000, "1.100000": 1_100_000,
	} {
		got, err := Parse(s)
		require.NoError(t, err, s)
		require.Equal(t, want, got, s)
	}
	for _, s := range []string{"", ".5", "5.", "00.5", "01", "+5", "-1", "1e3", " 1", "1 ", "1.0000001",
		"1000000000", "1,5", "0x10", "1..2", "1.2.3", "١", "NaN", "Inf"} {
		_, err := Parse(s)
		var pe *ParseError
		require.ErrorAs(t, err, &pe, "%q must be refused", s)
	}
}

func TestRateString(t *testing.T) {
	for _, s := range []string{"0", "3", "0.25", "15.000001", "999999999.999999", "10.5"} {
		r, err := Parse(s)
		require.NoError(t, err)
		require.Equal(t, s, r.String())
	}
}

// The rounding rule: one ceil per call, over the sum of both parts.
func TestCost(t *testing.T) {
	r, err := ParseRates("3", "15")
	require.NoError(t, err)
	for _, c := range []struct {
		in, out, want int64
	}{
		{0, 0, 0},
		{1_000_000, 0, 3_000_000}, // a million input tokens at $3: $3
		{0, 1_000_000, 15_000_000},
		{1000, 500, 10_500}, // 3000 + 7500 micro-USD exactly
		{1, 0, 3},           // 3 micro-USD a token at $3/Mtok
	} {
		got, err := Cost(c.in, c.out, r)
		require.NoError(t, err)
		require.Equal(t, c.want, got, "%d in, %d out", c.in, c.out)
	}
	tiny, err := ParseRates("0.000001", "0.000001")
	require.NoError(t, err)
	got, err := Cost(1, 0, tiny)
	require.NoError(t, err)
	require.Equal(t, int64(1), got, "a millionth of a micro-USD is charged as one: up")
	got, err = Cost(1, 1, tiny)
	require.NoError(t, err)
	require.Equal(t, int64(1), got, "one rounding for the sum, not one per part")
	got, err = Cost(500_000, 500_000, tiny)
	require.NoError(t, err)
	require.Equal(t, int64(1), got, "exactly one micro-USD is not rounded further")
	got, err = Cost(500_001, 500_000, tiny)
	require.NoError(t, err)
	require.Equal(t, int64(2), got)

	_, err = Cost(-1, 0, r)
	require.Error(t, err)
	_, err = Cost(0, 0, Rates{Input: -1})
	require.Error(t, err)
	huge := Rates{Input: 999_999_999_999_999, Output: 999_999_999_999_999}
	_, err = Cost(math.MaxInt64, math.MaxInt64, huge)
	require.True(t, errors.Is(err, ErrOverflow))
	// The largest cost that fits is exact.
	got, err = Cost(math.MaxInt64, 0, Rates{Input: 1_000_000})
	require.NoError(t, err)
	require.Equal(t, int64(math.MaxInt64), got)
	_, err = Cost(math.MaxInt64, 1, Rates{Input: 1_000_000, Output: 1})
	require.True(t, errors.Is(err, ErrOverflow), "one part in a million past the largest int64 is refused, not wrapped")
}

// bigCost is the rule in math/big: the oracle the fuzzer compares with.
func bigCost(in, out int64, r Rates) *big.Int {
	sum := new(big.Int).Mul(big.NewInt(in), big.NewInt(int64(r.Input)))
	sum.Add(sum, new(big.Int).Mul(big.NewInt(out), big.NewInt(int64(r.Output))))
	q, m := new(big.Int).QuoRem(sum, big.NewInt(1_000_000), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

// FuzzParse holds Parse to never panicking, to accepting only what
// round-trips through String (canonical forms up to trailing fractional
// zeros), and Cost to agreeing with math/big or reporting overflow.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "3", "0.25", "15.000001", "999999999.999999", "1.100000", "00.1", "1e3", ""} {
		f.Add(s, int64(1000), int64(500))
	}
	f.Fuzz(func(t *testing.T, s string, in, out int64) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r < 0 || r > 999_999_999_999_999 {
			t.Fatalf("%q parsed to %d, out of range", s, r)
		}
		back, err := Parse(r.String())
		if err != nil || back != r {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, r, r.String(), back, err)
		}
		if in < 0 || out < 0 {
			return
		}
		rates := Rates{Input: r, Output: r / 3}
		got, err := Cost(in, out, rates)
		want := bigCost(in, out, rates)
		if errors.Is(err, ErrOverflow) {
			if want.IsInt64() {
				t.Fatalf("overflow reported for %s", want)
			}
			return
		}
		if err != nil || !want.IsInt64() || want.Int64() != got {
			t.Fatalf("Cost(%d, %d, %v) = %d, %v; want %s", in, out, rates, got, err, want)
		}
	})
}
