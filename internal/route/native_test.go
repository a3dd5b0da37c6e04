package route

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/itchyny/gojq"
	"github.com/stretchr/testify/require"
)

// nativeExprs are rule shapes: those the native form models, and others
// it must leave to gojq.
var nativeExprs = []string{
	`.intent == "deploy"`,
	`.intent != "deploy"`,
	`.intent == "deploy" and (.variables.service // "") != ""`,
	`.intent == "deploy" or .intent == "ship"`,
	`(.tags // []) | index("billing") != null`,
	`(.text // "") | endswith("?")`,
	`(.text // "") | startswith("wh")`,
	`.text | endswith("?")`,
	`(.variables.n // 0) > 1000000000`,
	`.variables.n >= 3`, `.variables.n < 3.5`, `.variables.n <= 1e2`, `.n == 3.0`, `.n == 30e-1`,
	`.n > 100000000000000000000`, `.n == 1E400`,
	`.user == null`, `.flag == true`, `.flag == false`, `.flag`, `.flag | not`, `.a.b.c == "x"`,
	`has("intent")`, `.variables | has("n")`, `.tags | index("x") == 0`, `.tags | index(["x"]) == 0`,
	`.text | index("e") == 2`, `. == {}`, `.tags == []`, `.user < "m"`, `.x // .y // false`,
	`"\u00e9" == .text`, `"a\"b" == .text`, `"\(.x)" == "1"`,
	`.intent | test("dep")`, `.x? // false`, `.tags[0] == "x"`, `def f: .a; f == 1`, `.a as $x | $x == 1`,
	`[.tags[]] | length > 1`, `(.n | tostring) == "3"`, `-1 < .n`, `.tags | contains(["x"])`,
	`.["intent"] == "deploy"`, `."intent" == "deploy"`, `if .a then true else false end`,
	`.n`, `.intent`, `.missing`, `null`, `.tags | index("x")`, `empty`, `error("x")`, `true, false`,
}

// nativeRequests exercise every type at every path the expressions read.
var nativeRequests = []string{
	`{}`,
	`{"intent":"deploy","variables":{"service":"api","n":3},"user":"mallory","text":"where is it?","tags":["billing","x"]}`,
	`{"intent":"ship","variables":{"service":"","n":1000000000000},"text":"hello","tags":["x"],"flag":true,"n":3}`,
	`{"intent":3,"variables":"s","text":7,"tags":"billing","flag":false,"n":3.0,"a":{"b":{"c":"x"}},"x":1}`,
	`{"intent":null,"variables":[1],"text":["?"],"tags":{"a":1},"flag":null,"n":"3","a":{"b":[1]},"y":true}`,
	`{"intent":["deploy"],"variables":null,"text":"é","tags":[["x"],"x"],"n":1e400,"a":"s","user":"a"}`,
	`{"intent":{"a":1},"variables":{"n":null},"text":"a\"b","tags":[],"n":100000000000000000000,"a":{"b":{"c":1}},"user":"z"}`,
	`{"intent":"deploy","variables":{"service":"api","n":-0.5},"tags":[null,false,1,"x"],"n":-3,"user":1}`,
}

// TestNativeAsGojq holds the native form to gojq: wherever it answers,
// gojq gives exactly that one value.
func TestNativeAsGojq(t *testing.T) {
	for _, src := range nativeExprs {
		for _, rs := range nativeRequests {
			checkNative(t, src, decode(t, rs))
		}
	}
}

// TestNativeShapes holds the rule shapes of the README and the
// benchmarks to the native form: they must not fall back to gojq's
// interpreter for want of a model.
func TestNativeShapes(t *testing.T) {
	for _, src := range []string{
		`.intent == "deploy"`, `.user == "mallory"`, `.intent == "deploy" or .intent == "ship"`,
		`.intent == "deploy" and (.variables.service // "") != ""`, `(.tags // []) | index("billing") != null`,
		`(.text // "") | endswith("?")`, `(.variables.n // 0) > 1000000000`, `has("x") | not`,
	} {
		q, err := gojq.Parse(src)
		require.NoError(t, err)
		require.NotNil(t, compileNative(q), "%s has no native form", src)
	}
	for _, src := range []string{`def f: .a; f == 1`, `.x? // false`, `.intent | test("d")`, `"\(.x)" == "1"`, `.a as $x | $x`} {
		q, err := gojq.Parse(src)
		require.NoError(t, err)
		require.Nil(t, compileNative(q), "%s is outside the modelled subset", src)
	}
}

func checkNative(t *testing.T, src string, req any) {
	t.Helper()
	q, err := gojq.Parse(src)
	if err != nil {
		return
	}
	n := compileNative(q)
	if n == nil {
		return
	}
	code, err := gojq.Compile(q)
	require.NoError(t, err, "%s has a native form: it must compile (compileExpr compiles it lazily)", src)
	got, ok := n(req)
	if !ok {
		return
	}
	it := code.RunWithContext(context.Background(), req)
	want, has := it.Next()
	require.True(t, has, "%s over %v: native %v, gojq no value", src, req, got)
	if e, isErr := want.(error); isErr {
		t.Fatalf("%s over %v: native %v, gojq error %v", src, req, got, e)
	}
	require.Equal(t, gojq.TypeOf(want), gojq.TypeOf(got), "%s over %v: native %v, gojq %v", src, req, got, want)
	require.Zero(t, gojq.Compare(want, got), "%s over %v: native %v, gojq %v", src, req, got, want)
	if b, isBool := got.(bool); isBool {
		require.Equal(t, want, b, "%s over %v", src, req)
	}
	_, more := it.Next()
	require.False(t, more, "%s over %v: gojq yields more than one value", src, req)
}

// FuzzNative holds the native form to gojq over arbitrary expressions and
// requests.
func FuzzNative(f *testing.F) {
	for i, src := range nativeExprs {
		f.Add(src, nativeRequests[i%len(nativeRequests)])
	}
	f.Fuzz(func(t *testing.T, src, rs string) {
		v, err := jcs.Decode([]byte(rs))
		if err != nil {
			return
		}
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%s over %s: panic %v", src, rs, r)
			}
		}()
		checkNative(t, src, v)
	})
}

func BenchmarkNative(b *testing.B) {
	req := decode(b, `{"intent":"chat","user":"u1","text":"where?","variables":{"service":"api","n":3}}`)
	for _, src := range []string{`.intent == "deploy" and (.variables.service // "") != ""`, `(.tags // []) | index("billing") != null`} {
		q, _ := gojq.Parse(src)
		code, _ := gojq.Compile(q)
		n := compileNative(q)
		b.Run(fmt.Sprintf("native/%s", src), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n(req)
			}
		})
		b.Run(fmt.Sprintf("gojq/%s", src), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				code.RunWithContext(context.Background(), req).Next()
			}
		})
	}
}

// TestConfidenceDecimal holds the hand-written check to the grammar it
// replaced: ^(0(\.[0-9]{1,18})?|1(\.0{1,18})?)$.
func TestConfidenceDecimal(t *testing.T) {
	re := regexp.MustCompile(`^(0(\.[0-9]{1,18})?|1(\.0{1,18})?)$`)
	for _, s := range []string{"", "0", "1", "2", "0.", "1.", "0.8", "0.79", "1.0", "1.00", "1.01", "0.123456789012345678", "0.1234567890123456789",
		"1.000000000000000000", "1.0000000000000000000", "00", "01", "10", ".8", "0.8 ", " 0.8", "0,8", "0.-1", "0.8e1", "1e0", "0.x", "-0", "0.08"} {
		require.Equal(t, re.MatchString(s), Confidence(s).decimal(), "%q", s)
	}
}
