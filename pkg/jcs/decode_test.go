package jcs

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{`null`, nil},
		{` true `, true},
		{"\t\r\nfalse\n", false},
		{`"a\"\\\/\b\f\n\r\t\u00e9\u20AC\ud83d\ude00"`, "a\"\\/\b\f\n\r\té€😀"},
		{`"\u0000"`, "\x00"},
		{`"\uDBFF\uDFFF"`, "\U0010ffff"},
		{`"\ufffd"`, "\ufffd"},
		{"\"\u2028\x7f\"", "\u2028\x7f"},
		{`-0.0e-0`, json.Number("-0.0e-0")},
		{`123456789012345678901234567890`, json.Number("123456789012345678901234567890")},
		{`[]`, []any{}},
		{`{}`, map[string]any{}},
		{`[1, "a", [{}]]`, []any{json.Number("1"), "a", []any{map[string]any{}}}},
		{`{"a": {"b": [null]}, "b": 1}`, map[string]any{"a": map[string]any{"b": []any{nil}}, "b": json.Number("1")}},
		{`{"a":1,"A":2,"\u00e9":3,"é":4}`, nil}, // é twice: see below
	}
	tests[len(tests)-1].in = "{\"a\":1,\"A\":2,\"\\u00e9\":3,\"e\u0301\":4}" // NFC and NFD differ
	tests[len(tests)-1].want = map[string]any{"a": json.Number("1"), "A": json.Number("2"), "é": json.Number("3"), "e\u0301": json.Number("4")}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// decodeErrors are texts that Decode and Canonicalize reject, with the
// offset of the error.
var decodeErrors = []struct {
	name, in string
	offset   int
}{
	{"empty", ``, 0},
	{"only whitespace", "  \n", 3},
	{"duplicate key", `{"a":1,"a":2}`, 7},
	{"duplicate after unescaping", `{"a":1,"\u0061":2}`, 7},
	{"nested duplicate", `[{"x":{"k":1,"k":1}}]`, 13},
	{"invalid UTF-8", "\"a\xffb\"", 2},
	{"invalid UTF-8 after escape", "\"\\n\xc3\"", 3},
	{"overlong UTF-8", "\"\xc0\xaf\"", 1},
	{"UTF-8 surrogate", "\"\xed\xa0\x80\"", 1},
	{"UTF-8 in a key", "{\"\xfe\":1}", 2},
	{"lone high surrogate", `"\ud800"`, 1},
	{"lone high surrogate, then text", `"\ud800abcdef"`, 1},
	{"high surrogate, then BMP escape", `"\ud800\u0041"`, 1},
	{"two high surrogates", `"\ud800\ud800"`, 1},
	{"lone low surrogate", `"x\udc00"`, 2},
	{"reversed pair", `"\ude00\ud83d"`, 1},
	{"short \\u", `"\u12"`, 1},
	{"bad hex", `"\u12g4"`, 1},
	{"bad escape", `"\a"`, 1},
	{"escaped quote last", `"\"`, 3},
	{"backslash at end", `"\`, 2},
	{"raw control character", "\"a\tb\"", 2},
	{"raw newline", "\"\n\"", 1},
	{"raw NUL", "\"\x00\"", 1},
	{"unterminated string", `"abc`, 4},
	{"trailing data", `{} x`, 3},
	{"two values", `1 2`, 2},
	{"trailing comma in array", `[1,]`, 3},
	{"trailing comma in object", `{"a":1,}`, 7},
	{"missing colon", `{"a" 1}`, 5},
	{"missing comma", `[1 2]`, 3},
	{"non-string key", `{1:2}`, 1},
	{"single quotes", `'a'`, 0},
	{"unterminated array", `[1`, 2},
	{"unterminated object", `{"a":1`, 6},
	{"bad literal", `tru`, 0},
	{"capitalised literal", `True`, 0},
	{"NaN", `NaN`, 0},
	{"leading zero", `01`, 1},
	{"plus sign", `+1`, 0},
	{"bare minus", `[-]`, 2},
	{"no fraction digits", `1.`, 2},
	{"no exponent digits", `1e+`, 3},
	{"BOM", "\ufeff1", 0},
	{"form feed as whitespace", "\f1", 0},
	{"non-breaking space as whitespace", "\u00a01", 0},
	{"comment", `1 // x`, 2},
}

func TestDecodeErrors(t *testing.T) {
	for _, tt := range decodeErrors {
		t.Run(tt.name, func(t *testing.T) {
			for name, f := range map[string]func([]byte) (any, error){
				"Decode":       Decode,
				"Canonicalize": func(b []byte) (any, error) { return Canonicalize(b) },
			} {
				v, err := f([]byte(tt.in))
				var e *Error
				require.ErrorAs(t, err, &e, "%s(%q) = %v", name, tt.in, v)
				require.Equal(t, tt.offset, e.Offset, "%s(%q): %v", name, tt.in, err)
			}
		})
	}
}

func TestDecodeDepth(t *testing.T) {
	for _, tt := range []struct {
		depth int
		ok    bool
	}{{1, true}, {1000, true}, {1001, false}, {100000, false}} {
		for _, open := range []string{"[", `{"a":`} {
			closing := map[string]string{"[": "]", `{"a":`: "}"}[open]
			in := []byte(strings.Repeat(open, tt.depth) + "1" + strings.Repeat(closing, tt.depth))
			_, err := Decode(in)
			_, cerr := Canonicalize(in)
			kerr := Check(in)
			for _, err := range []error{err, cerr, kerr} {
				if tt.ok {
					require.NoError(t, err, "depth %d of %s", tt.depth, open)
				} else {
					require.Error(t, err, "depth %d of %s", tt.depth, open)
				}
			}
		}
	}
}

// TestCanonicalizeRFC8785 checks the example of RFC 8785 §3.2.2 and others.
func TestCanonicalize(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"RFC 8785 3.2.2", `{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`, `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{"whitespace", " [ 1 , { \"b\" : 2 , \"a\" : [ ] } ] ", `[1,{"a":[],"b":2}]`},
		{"escapes made minimal", `"\u0041\/\u00e9\u001F\u007f\u2028\uD83D\uDE00"`, "\"A/é\\u001f\x7f\u2028😀\""},
		{"short escapes", `"\u0008\u0009\u000a\u000c\u000d\u000b"`, `"\b\t\n\f\r\u000b"`},
		{"keys compared unescaped", `{"b":1,"\u0061":2,"\n":3}`, `{"\n":3,"a":2,"b":1}`},
		{"scalar", `"x"`, `"x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
			require.NoError(t, Check(got))
		})
	}
}

// TestCanonicalizeNode checks testdata/documents.jsonl, made by a reference
// JCS in JavaScript (JSON.parse, then JSON.stringify for strings and numbers
// and the default sort for keys) from random texts spelled with random
// whitespace and escapes. Each line is a JSON array [input, canonical].
// Set JCS_DOCUMENTS to the path of more such lines to check them too.
func TestCanonicalizeNode(t *testing.T) {
	files := []string{"testdata/documents.jsonl"}
	if p := os.Getenv("JCS_DOCUMENTS"); p != "" {
		files = append(files, p)
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(name)
			require.NoError(t, err)
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			n := 0
			for sc.Scan() {
				var pair [2]string
				require.NoError(t, json.Unmarshal(sc.Bytes(), &pair))
				in, want := pair[0], pair[1]
				got, err := Canonicalize([]byte(in))
				if err != nil || string(got) != want {
					t.Fatalf("line %d: Canonicalize(%s)\n= %s, %v\nwant %s", n+1, in, got, err, want)
				}
				if err := Check(got); err != nil {
					t.Fatalf("line %d: Check(%s): %v", n+1, got, err)
				}
				if err := Check([]byte(in)); (err == nil) != (in == want) {
					t.Fatalf("line %d: Check(%s): %v", n+1, in, err)
				}
				n++
			}
			require.NoError(t, sc.Err())
			require.Greater(t, n, 100)
		})
	}
}
