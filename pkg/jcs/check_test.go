package jcs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// canonicalTexts are accepted by Check.
var canonicalTexts = []string{
	`null`, `true`, `false`, `0`, `-1`, `1.5`, `-0.000001`, `1e-7`, `1e+21`, `5e-324`,
	`123456789012345`, `9007199254740992`, `-9007199254740992`, `9007199254740994`,
	`295147905179352830000`, `100000000000000000000`, `999999999999999900000`,
	`333333333.3333333`, `0.30000000000000004`, `1.7976931348623157e+308`, `-1.2e-100`,
	`""`, `"a"`, `"\"\\\b\t\n\f\r"`, `"\u0000\u000b\u001f"`, "\"/<>&'\x7f\u0080\u2028\u2029€😀\ufffd\"",
	`[]`, `{}`, `[[],{}]`, `[1,"a",null]`, `{"a":{"b":[1,{"c":true}]}}`,
	`{"":1,"a":2,"aa":3,"b":4}`,
	`{"\n":1,"\u001f":2," ":3,"\"":4,"A":5,"\\":6,"a":7}`,           // escaped keys sort by their values
	"{\"\U00010000\":1,\"\U0010ffff\":2,\"\ue000\":3,\"\uffff\":4}", // UTF-16 order
	"{\"e\":1,\"e\u0301\":2,\"\u00e9\":3}",                          // no Unicode normalization
	typical,
}

// typical is a ledger entry of the usual size and shape.
const typical = `{"actor":"alice","decision":"ALLOW","entry_hash":"","event_type":"TOOL_CALL",` +
	`"id":"LED-0123456789abcdef","metadata":{"_session_id":"SES-42","_tier":"ho2","args":["ls","-la"],` +
	`"n":3,"ratio":0.25,"tool":"bash"},"previous_hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",` +
	`"prompts_used":["PRM-001"],"reason":"policy P-7 allows read-only tools","seq":1234,` +
	`"submission_id":"SUB-7","timestamp":"2025-01-02T03:04:05.123456Z"}`

// nonCanonicalTexts are rejected by Check, with the offset of the error.
var nonCanonicalTexts = []struct {
	name, in string
	offset   int
}{
	{"empty", ``, 0},
	{"leading space", ` 1`, 0},
	{"trailing newline", "1\n", 1},
	{"space after colon", `{"a": 1}`, 5},
	{"space after comma", `[1, 2]`, 3},
	{"space before colon", `{"a" :1}`, 4},
	{"space in empty array", `[ ]`, 1},
	{"unsorted keys", `{"b":1,"a":2}`, 7},
	{"duplicate keys", `{"a":1,"a":2}`, 7},
	{"unsorted nested keys", `[{"x":{"b":1,"a":2}}]`, 13},
	{"keys in UTF-8 byte order", "{\"\ue000\":1,\"\U00010000\":2}", 9},
	{"escaped keys unsorted", `{"a":1,"\n":2}`, 7},
	{"escaped keys duplicate", `{"\n":1,"\n":2}`, 8},
	{"escaped \\u0041", `"\u0041"`, 1},
	{"escaped slash", `"\/"`, 1},
	{"uppercase hex", `"\u001F"`, 1},
	{"\\u for short escape", `"\u000a"`, 1},
	{"\\u0022", `"\u0022"`, 1},
	{"escaped non-ASCII", `"\u00e9"`, 1},
	{"escaped DEL", `"\u007f"`, 1},
	{"escaped surrogate pair", `"\ud83d\ude00"`, 1},
	{"short \\u", `"\u00"`, 1},
	{"raw tab", "\"\t\"", 1},
	{"raw control character", "\"\x01\"", 1},
	{"invalid UTF-8", "\"\xff\"", 1},
	{"surrogate in UTF-8", "\"\xed\xa0\x80\"", 1},
	{"unterminated string", `"abc`, 4},
	{"1.0", `1.0`, 0},
	{"1E3", `1E3`, 0},
	{"1e3", `1e3`, 0},
	{"1e+3", `1e+3`, 0},
	{"1e21 without sign", `1e21`, 0},
	{"uppercase exponent", `1E+21`, 0},
	{"-0", `-0`, 0},
	{"01", `01`, 1},
	{"0.0", `0.0`, 0},
	{"trailing fraction zero", `0.50`, 0},
	{"1e-7 in fixed notation", `0.0000001`, 0},
	{"1e-6 in exponent notation", `1e-6`, 0},
	{"integer above 2^53", `9007199254740993`, 0},
	{"big integer not canonical", `18446744073709551616`, 0},
	{"too many digits", `0.30000000000000004441`, 0},
	{"long literal", `0.1000000000000000000000000000000000000000000001`, 0},
	{"overflow", `1e+400`, 0},
	{"underflow", `1e-400`, 0},
	{"+1", `+1`, 0},
	{"trailing data", `{}{}`, 2},
	{"trailing comma", `[1,]`, 3},
	{"missing value", `{"a":}`, 5},
	{"bad literal", `nul`, 0},
	{"too deep", repeat("[", 1001) + repeat("]", 1001), 1000},
}

func repeat(s string, n int) string {
	b := make([]byte, 0, len(s)*n)
	for range n {
		b = append(b, s...)
	}
	return string(b)
}

func TestCheck(t *testing.T) {
	for _, in := range canonicalTexts {
		t.Run(in, func(t *testing.T) {
			require.NoError(t, Check([]byte(in)))
		})
	}
	for _, tt := range nonCanonicalTexts {
		t.Run(tt.name, func(t *testing.T) {
			var e *Error
			require.ErrorAs(t, Check([]byte(tt.in)), &e)
			require.Equal(t, tt.offset, e.Offset, e.Error())
		})
	}
}

// TestCheckCanonicalize checks that Check(x) == nil exactly when
// Canonicalize(x) returns x, on every text the tests know.
func TestCheckCanonicalize(t *testing.T) {
	var texts []string
	texts = append(texts, canonicalTexts...)
	for _, tt := range nonCanonicalTexts {
		texts = append(texts, tt.in)
	}
	for _, tt := range decodeErrors {
		texts = append(texts, tt.in)
	}
	for _, in := range texts {
		checkConsistent(t, []byte(in))
	}
}

// checkConsistent fails t unless Check(in) == nil exactly when Canonicalize
// returns in unchanged.
func checkConsistent(t *testing.T, in []byte) {
	t.Helper()
	err := Check(in)
	out, cerr := Canonicalize(in)
	if same := cerr == nil && string(out) == string(in); (err == nil) != same {
		t.Fatalf("Check(%q) = %v, but Canonicalize = %q, %v", in, err, out, cerr)
	}
}

// TestCheckAllocs checks that Check does not allocate on success.
func TestCheckAllocs(t *testing.T) {
	for _, in := range canonicalTexts {
		data := []byte(in)
		require.Zero(t, testing.AllocsPerRun(10, func() { _ = Check(data) }), "Check(%s) allocates", in)
	}
}

// TestAppendAllocs checks that Append into a large enough buffer does not
// allocate for a typical entry, and Marshal allocates just its result.
func TestAppendAllocs(t *testing.T) {
	v, err := Decode([]byte(typical))
	require.NoError(t, err)
	buf := make([]byte, 0, 1024)
	require.Zero(t, testing.AllocsPerRun(100, func() { _, _ = Append(buf[:0], v) }), "Append allocates")
	require.Equal(t, 1.0, testing.AllocsPerRun(100, func() { _, _ = Marshal(v) }), "Marshal allocations")
}
