package jcs

import (
	"bufio"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNumberRFC8785 checks the IEEE-754 → text table of RFC 8785 Appendix B.
func TestNumberRFC8785(t *testing.T) {
	tests := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"},
		{0x8000000000000000, "0"}, // -0
		{0x0000000000000001, "5e-324"},
		{0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"},
		{0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"},
		{0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
		{0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"},
		{0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"},
		{0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			checkNumberText(t, math.Float64frombits(tt.bits), tt.want)
		})
	}
}

// TestNumberES checks values around ECMAScript's notation thresholds; the
// expected strings are what node's String(x) prints.
func TestNumberES(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{1e21, "1e+21"},
		{1e20, "100000000000000000000"},
		{123456789012345680000, "123456789012345680000"},
		{1e-7, "1e-7"},
		{1.5e-7, "1.5e-7"},
		{1e-6, "0.000001"},
		{0.000001234, "0.000001234"},
		{333333333.3333333, "333333333.3333333"},
		{5e-324, "5e-324"},
		{3 * 5e-324, "1.5e-323"},
		{1.7976931348623157e+308, "1.7976931348623157e+308"},
		{9007199254740992, "9007199254740992"},
		{0.30000000000000004, "0.30000000000000004"}, // 0.1+0.2 in doubles
		{100, "100"},
		{-1, "-1"},
		{1.5, "1.5"},
		{4.35, "4.35"},
		{0.002, "0.002"},
		{1e30, "1e+30"},
		{1e-27, "1e-27"},
		{1e300, "1e+300"},
		{-1e-300, "-1e-300"},
		{1.2e-100, "1.2e-100"},
		{123e18, "123000000000000000000"},
		{123e19, "1.23e+21"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			checkNumberText(t, tt.f, tt.want)
		})
	}
}

// checkNumberText checks that f is written as want, that want is canonical,
// and that the literal want canonicalizes to itself.
func checkNumberText(t *testing.T, f float64, want string) {
	t.Helper()
	got, err := Marshal(f)
	require.NoError(t, err)
	require.Equal(t, want, string(got), "Marshal(%v)", f)
	require.NoError(t, Check(got))
	got, err = Canonicalize(got)
	require.NoError(t, err)
	require.Equal(t, want, string(got))
	back, err := strconv.ParseFloat(want, 64)
	require.NoError(t, err)
	require.True(t, back == f, "%s reads back as %v, want %v", want, back, f) // -0 is written 0
}

// TestNumberNode checks the committed vectors of testdata/es6numbers.txt,
// made by node's String(x) for doubles of every kind: "hex bits,text" a line,
// the format of the large es6testfile used by other JCS implementations. Set
// JCS_ES6_NUMBERS to the path of such a file to check it too.
func TestNumberNode(t *testing.T) {
	files := []string{"testdata/es6numbers.txt"}
	if p := os.Getenv("JCS_ES6_NUMBERS"); p != "" {
		files = append(files, p)
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(name)
			require.NoError(t, err)
			defer f.Close()
			sc := bufio.NewScanner(f)
			n := 0
			var buf []byte
			for sc.Scan() {
				hex, want, _ := strings.Cut(sc.Text(), ",")
				bits, err := strconv.ParseUint(hex, 16, 64)
				if err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				x := math.Float64frombits(bits)
				if buf = appendFloat(buf[:0], x); string(buf) != want {
					t.Fatalf("%s: got %s, want %s", hex, buf, want)
				}
				if len(want) > maxCanonNumber {
					t.Fatalf("%s is longer than maxCanonNumber", want)
				}
				if err := Check([]byte(want)); err != nil {
					t.Fatalf("Check(%s): %v", want, err)
				}
				n++
			}
			require.NoError(t, sc.Err())
			require.Greater(t, n, 1000)
		})
	}
}

// TestNumberLiteral checks how number literals canonicalize, including the
// policy on integers beyond 2^53.
func TestNumberLiteral(t *testing.T) {
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"0", "0"},
		{"-0", "0"},
		{"-0.0", "0"},
		{"0e10", "0"},
		{"1.0", "1"},
		{"1E3", "1000"},
		{"1e+3", "1000"},
		{"10e-1", "1"},
		{"4.50", "4.5"},
		{"2e-3", "0.002"},
		{"1E30", "1e+30"},
		{"0.000000000000000000000000001", "1e-27"},
		{"333333333.33333329", "333333333.3333333"},
		{"0.1e1", "1"},
		{"1e-400", "0"},  // underflow rounds to 0 as RFC 8785 says
		{"-1e-400", "0"}, // and -0 is written 0
		{"1e400", ""},    // overflow has no double
		{"-1.8e308", ""}, // nor here
		{"1.8e308", ""},  // nor here
		{"1.7976931348623157e308", "1.7976931348623157e+308"},
		{"123456789012345678", ""}, // rounds to 123456789012345680: refused
		{"9007199254740992", "9007199254740992"},
		{"-9007199254740992", "-9007199254740992"},
		{"9007199254740993", ""}, // 2^53+1 rounds to 2^53
		{"-9007199254740993", ""},
		{"9007199254740994", "9007199254740994"}, // exactly a double, written so
		{"9007199254740995", ""},
		{"18446744073709551615", ""}, // 2^64-1
		{"18446744073709551616", ""}, // 2^64 is exact, but its canonical text is 18446744073709552000
		{"18446744073709552000", "18446744073709552000"},
		{"295147905179352830000", "295147905179352830000"}, // RFC 8785's text for 2^68
		{"100000000000000000000", "100000000000000000000"},
		{"1000000000000000000000", ""},                  // 1e21 is written 1e+21, so this integer is not kept
		{"9007199254740993.0", "9007199254740992"},      // not an integer literal: rounded
		{"9.007199254740993e15", "9007199254740992"},    // nor this one
		{"123456789012345678e0", "123456789012345680"},  // nor this one
		{"0.30000000000000004", "0.30000000000000004"},  // 17 digits
		{"0.300000000000000040", "0.30000000000000004"}, // trailing zero
		{"0.0000010", "0.000001"},
		{"0.0000001", "1e-7"},
		{"-0.0000033333333333333333", "-0.0000033333333333333333"},
		{"123456789012345.6", "123456789012345.6"},
		{"1234567890123456.7", "1234567890123456.8"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			got2, err2 := Marshal(json.Number(tt.in))
			if tt.want == "" {
				require.Error(t, err, "Canonicalize gave %s", got)
				require.Error(t, err2, "Marshal gave %s", got2)
				require.Error(t, Check([]byte(tt.in)))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
			require.NoError(t, err2)
			require.Equal(t, tt.want, string(got2))
			require.Equal(t, tt.in == tt.want, Check([]byte(tt.in)) == nil, "Check(%s)", tt.in)
		})
	}
}

// TestNumberInvalid checks literals outside the JSON grammar.
func TestNumberInvalid(t *testing.T) {
	for _, in := range []string{"", "-", "+1", "01", "-01", "00", ".5", "1.", "1.e5", "1e", "1e+", "--1",
		"0x10", "1_000", "Infinity", "NaN", "1.5.5", "١"} {
		t.Run(in, func(t *testing.T) {
			_, err := Marshal(json.Number(in))
			require.Error(t, err)
			_, err = Canonicalize([]byte(in))
			require.Error(t, err)
			require.Error(t, Check([]byte(in)))
		})
	}
	// Whitespace is fine around a JSON text, not in a json.Number.
	for _, in := range []string{"1 ", " 1", "1\n"} {
		_, err := Marshal(json.Number(in))
		require.Error(t, err, "Marshal(json.Number(%q))", in)
	}
}

// TestMarshalIntegers checks the Go integer types against the same policy.
func TestMarshalIntegers(t *testing.T) {
	tests := []struct {
		v    any
		want string // "" means an error
	}{
		{0, "0"},
		{-1, "-1"},
		{int64(two53), "9007199254740992"},
		{int64(-two53), "-9007199254740992"},
		{int64(two53 + 1), ""},
		{int64(two53 + 2), "9007199254740994"},
		{int64(math.MaxInt64), ""},
		{int64(math.MinInt64), ""}, // -2^63 is exact, but written -9223372036854776000
		{int64(1e18), "1000000000000000000"},
		{uint64(two53), "9007199254740992"},
		{uint64(two53 + 1), ""},
		{uint64(math.MaxUint64), ""},
		{uint64(18446744073709552000 - 2048), ""},
		{uint64(1e19), "10000000000000000000"},
		{math.MaxInt32, "2147483647"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.want), func(t *testing.T) {
			got, err := Marshal(tt.v)
			if tt.want == "" {
				require.Error(t, err, "got %s", got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
		})
	}
}

// TestMarshalNonFinite checks that NaN and ±Inf are refused.
func TestMarshalNonFinite(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, err := Marshal(map[string]any{"x": []any{f}})
		var e *Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, -1, e.Offset)
	}
}

// TestScanNumberFast checks that the shape-only judgement of scanNumber never
// calls a literal canonical that conversion would not, on random literals.
func TestScanNumberFast(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		return string(b)
	}
	fast := 0
	for range 200000 {
		var lit string
		switch r.IntN(3) {
		case 0:
			lit = strconv.Itoa(r.IntN(10)) + "." + digits(1+r.IntN(18))
		case 1:
			lit = strconv.FormatUint(r.Uint64()>>r.IntN(64), 10) + "." + digits(1+r.IntN(8))
		default:
			lit = strconv.FormatUint(r.Uint64()>>r.IntN(64), 10)
		}
		if r.IntN(2) == 0 {
			lit = "-" + lit
		}
		end, intLit, isFast, reason := scanNumber(lit, 0)
		if reason != "" || end != len(lit) {
			continue // e.g. a leading zero
		}
		f, _ := strconv.ParseFloat(lit, 64)
		if isFast {
			fast++
			if string(appendFloat(nil, f)) != lit {
				t.Fatalf("%s judged canonical, but it is %s", lit, appendFloat(nil, f))
			}
		}
		want, reason := appendLiteral(nil, lit, intLit, false)
		got, reason2 := appendLiteral(nil, lit, intLit, isFast)
		if string(got) != string(want) || reason != reason2 {
			t.Fatalf("%s: fast path gives %s %q, slow path %s %q", lit, got, reason2, want, reason)
		}
	}
	if fast < 10000 {
		t.Fatalf("only %d literals took the fast path", fast)
	}
}
