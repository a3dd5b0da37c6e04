package jcs

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/require"
)

func TestMarshal(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"nil", nil, `null`},
		{"true", true, `true`},
		{"false", false, `false`},
		{"string", "héllo", `"héllo"`},
		{"number", json.Number("1.50"), `1.5`},
		{"float", 0.25, `0.25`},
		{"int", 42, `42`},
		{"int64", int64(-7), `-7`},
		{"uint64", uint64(7), `7`},
		{"empty object", map[string]any{}, `{}`},
		{"empty array", []any{}, `[]`},
		{"nil object", map[string]any(nil), `{}`},
		{"nil array", []any(nil), `[]`},
		{"strings", []string{"b", "a"}, `["b","a"]`},
		{"string map", map[string]string{"b": "1", "a": "2"}, `{"a":"2","b":"1"}`},
		{"nested", map[string]any{
			"z": []any{nil, true, map[string]any{"y": 1, "x": "2"}},
			"a": map[string]string{"k": "v"},
		}, `{"a":{"k":"v"},"z":[null,true,{"x":"2","y":1}]}`},
		{"many keys", manyKeys(40), manyKeysWant(40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.v)
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
			require.NoError(t, Check(got))
			// Append adds to what is there.
			got, err = Append([]byte("prefix"), tt.v)
			require.NoError(t, err)
			require.Equal(t, "prefix"+tt.want, string(got))
		})
	}
}

func manyKeys(n int) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = i
	}
	return m
}

func manyKeysWant(n int) string {
	m := manyKeys(n)
	keys := make([]string, 0, n)
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // ASCII: byte order is UTF-16 order
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + k + `":`)
		got, _ := Marshal(m[k])
		b.Write(got)
	}
	b.WriteByte('}')
	return b.String()
}

func TestMarshalErrors(t *testing.T) {
	deep := any(nil)
	for range 1001 {
		deep = []any{deep}
	}
	tests := []struct {
		name string
		v    any
	}{
		{"unsupported type", float32(1)},
		{"struct", struct{}{}},
		{"nested unsupported", map[string]any{"a": []any{1, int32(2)}}},
		{"invalid UTF-8 value", map[string]any{"a": "\xff"}},
		{"invalid UTF-8 key", map[string]any{"\xff": 1}},
		{"invalid UTF-8 in []string", []string{"ok", "\xc3"}},
		{"invalid UTF-8 in map[string]string", map[string]string{"a": "\xed\xa0\x80"}}, // a surrogate
		{"invalid json.Number", json.Number("1.")},
		{"inexact integer", json.Number("9007199254740993")},
		{"too deep", deep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Append([]byte("keep"), tt.v)
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, -1, e.Offset)
			require.NotEmpty(t, e.Reason)
			require.Equal(t, "keep", string(got), "Append must leave dst as it was")
		})
	}
	// The innermost container counts too, whatever its type.
	for _, inner := range []any{[]any{}, map[string]any{}, []string{}, map[string]string{}} {
		for _, depth := range []int{1000, 1001} {
			v := inner
			for range depth - 1 {
				v = []any{v}
			}
			got, err := Marshal(v)
			if depth > 1000 {
				require.Error(t, err, "%T at depth %d", inner, depth)
				continue
			}
			require.NoError(t, err, "%T at depth %d", inner, depth)
			require.NoError(t, Check(got))
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{"\b\t\n\f\r", `"\b\t\n\f\r"`},
		{"\x00\x01\x07\x0b\x0e\x1f", `"\u0000\u0001\u0007\u000b\u000e\u001f"`},
		{"\x1a", `"\u001a"`},
		{" !#$%&'()*+,-./", `" !#$%&'()*+,-./"`},
		{"</script>&", `"</script>&"`},
		{"\x7f", "\"\x7f\""},
		{"\u0080\u00ff", "\"\u0080\u00ff\""},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"€😀\U0010ffff\ufffd", "\"€😀\U0010ffff\ufffd\""},
		{"a\"b\\c\nd", `"a\"b\\c\nd"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got, err := AppendString([]byte("x"), tt.in)
			require.NoError(t, err)
			require.Equal(t, "x"+tt.want, string(got))
			require.NoError(t, Check(got[1:]))
		})
	}
}

func TestAppendStringInvalid(t *testing.T) {
	tests := []struct {
		in     string
		offset int
	}{
		{"\xff", 0},
		{"ab\x80", 2},
		{"é\xc3", 2},            // truncated
		{"\xc0\xaf", 0},         // overlong '/'
		{"x\xed\xa0\x80", 1},    // surrogate U+D800
		{"\xf4\x90\x80\x80", 0}, // above U+10FFFF
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := AppendString([]byte("x"), tt.in)
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tt.offset, e.Offset)
			require.Equal(t, "x", string(got), "AppendString must leave dst as it was")
		})
	}
}

// TestSortUTF16 checks the key order of RFC 8785 §3.2.3 and the cases where
// UTF-16 order differs from UTF-8 byte order.
func TestSortUTF16(t *testing.T) {
	tests := []struct {
		name string
		keys []string // in the expected order
	}{
		{"RFC 8785 3.2.3", []string{"\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"}},
		{"supplementary before U+E000", []string{"\U00010000", "\U0010ffff", "\ue000", "\uffff"}},
		{"BMP below surrogates first", []string{"\ud7ff", "\U00010000", "\ue000"}},
		{"prefix first", []string{"", "a", "ab", "b"}},
		{"after common prefix", []string{"x\U0001f600", "x\uff01", "x\uff01a"}},
		{"ASCII", []string{"A", "Z", "_", "a", "z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]any{}
			var want strings.Builder
			want.WriteByte('{')
			for i, k := range tt.keys {
				m[k] = i
				if i > 0 {
					want.WriteByte(',')
				}
				b, _ := AppendString(nil, k)
				want.Write(b)
				want.WriteString(":" + string(rune('0'+i)))
			}
			want.WriteByte('}')
			got, err := Marshal(m)
			require.NoError(t, err)
			require.Equal(t, want.String(), string(got))
			require.NoError(t, Check(got))
		})
	}
	// RFC 8785 §3.2.3 in full.
	in := `{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",` +
		`"\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`
	want := "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\"," +
		"\"\u20ac\":\"Euro Sign\",\"\U0001f600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"
	got, err := Canonicalize([]byte(in))
	require.NoError(t, err)
	require.Equal(t, want, string(got))
}

// TestCompareKeys checks compareKeys against comparing UTF-16 code units
// directly, on random strings drawn from the interesting ranges.
func TestCompareKeys(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	runes := []rune{0, '\b', '\n', 0x1a, 0x1f, ' ', '"', '\\', 'a', 'b', 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xefff, 0xf000, 0xfb33, 0xffff,
		0x10000, 0x1f600, 0x1f601, 0x10ffff}
	str := func() string {
		s := make([]rune, r.IntN(4))
		for i := range s {
			s[i] = runes[r.IntN(len(runes))]
		}
		return string(s)
	}
	sign := func(x int) int { return min(max(x, -1), 1) }
	for range 100000 {
		a, b := str(), str()
		want := slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
		if got := sign(compareKeys(a, b)); got != want {
			t.Fatalf("compareKeys(%+q, %+q) = %d, want %d", a, b, got, want)
		}
		ea, _ := AppendString(nil, a)
		eb, _ := AppendString(nil, b)
		if got := sign(compareEscaped(ea[1:len(ea)-1], eb[1:len(eb)-1])); got != want {
			t.Fatalf("compareEscaped(%s, %s) = %d, want %d", ea, eb, got, want)
		}
	}
}

// TestMarshalCheckRandom checks, on random values, what the ledger relies
// on: whatever Marshal writes, Check accepts and Canonicalize leaves alone,
// and it decodes to the value written.
func TestMarshalCheckRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	runes := []rune{0, '\b', '\t', '\n', 0x0b, '\f', '\r', 0x1f, ' ', '"', '/', '\\', 'a', 'z', 0x7f, 0x80,
		0xe9, 0x2028, 0xd7ff, 0xe000, 0xfb33, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff}
	str := func() string {
		s := make([]rune, r.IntN(5))
		for i := range s {
			s[i] = runes[r.IntN(len(runes))]
		}
		return string(s)
	}
	var value func(depth int) any
	value = func(depth int) any {
		switch k := r.IntN(12); {
		case k == 0:
			return nil
		case k == 1:
			return r.IntN(2) == 0
		case k == 2:
			return str()
		case k == 3:
			for {
				if f := math.Float64frombits(r.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
					return f
				}
			}
		case k == 4:
			return float64(r.IntN(2000)-1000) / 8
		case k == 5:
			return r.Int64N(2*two53+1) - two53
		case k == 6:
			return []string{str(), str()}
		case k == 7:
			return map[string]string{str(): str()}
		case depth > 4:
			return str()
		case k <= 9:
			a := make([]any, r.IntN(4))
			for i := range a {
				a[i] = value(depth + 1)
			}
			return a
		default:
			m := map[string]any{}
			n := r.IntN(8)
			if depth == 0 && r.IntN(4) == 0 {
				n = 17 + r.IntN(30) // sorted by slices.SortFunc
			}
			for range n {
				m[str()] = value(depth + 1)
			}
			return m
		}
	}
	for range 10000 {
		v := value(0)
		out, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", v, err)
		}
		if err := Check(out); err != nil {
			t.Fatalf("Check(%s): %v", out, err)
		}
		if again, err := Canonicalize(out); err != nil || string(again) != string(out) {
			t.Fatalf("Canonicalize(%s) = %s, %v", out, again, err)
		}
		back, err := Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := Marshal(back); err != nil || string(again) != string(out) {
			t.Fatalf("Marshal(Decode(%s)) = %s, %v", out, again, err)
		}
	}
}

// TestSkipPlain checks the word-at-a-time scan against a byte-at-a-time one:
// it must never pass a byte that needs a closer look.
func TestSkipPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	alphabet := []byte{'a', ' ', '~', 0x7f, 0, 0x1f, '"', '\\', 0x80, 0xff, '!', '#', '[', ']'}
	for range 200000 {
		s := make([]byte, r.IntN(20))
		for i := range s {
			if r.IntN(4) == 0 {
				s[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				s[i] = 'a'
			}
		}
		i := r.IntN(len(s) + 1)
		want := i
		for want < len(s) && s[want] < 0x80 && escapes[s[want]] == 0 {
			want++
		}
		got := skipPlain(string(s), i)
		if got < i || got > want {
			t.Fatalf("skipPlain(%q, %d) = %d, want %d (or less, but not below %d)", s, i, got, want, i)
		}
		if got2 := skipPlain(s, i); got2 != got {
			t.Fatalf("skipPlain differs for string and []byte")
		}
	}
}
