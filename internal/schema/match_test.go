package schema

import (
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/schemas"
)

// embeddedPatterns returns every pattern of the embedded schemas.
func embeddedPatterns(t testing.TB) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if p, ok := x["pattern"].(string); ok && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	names, err := fs.Glob(schemas.FS, "*.json")
	require.NoError(t, err)
	for _, n := range names {
		b, err := fs.ReadFile(schemas.FS, n)
		require.NoError(t, err)
		var v any
		require.NoError(t, json.Unmarshal(b, &v), n)
		walk(v)
	}
	require.NotEmpty(t, out)
	return out
}

// trickyPatterns are shapes the set matcher takes, beyond the schemas'.
var trickyPatterns = []string{
	``, `^`, `$`, `^$`, `a`, `^a`, `a$`, `abc`, `^abc$`, `a|b`, `^a|b$`, `^(a|bc)$`, `(a|)`, `x?`, `^x?$`,
	`[^a]`, `.`, `^.$`, `^.*$`, `.+`, `^.{2,3}$`, `(?s).`, `(?s)^.*$`, `[\s\S]`, `\d+`, `\w{3}`,
	`^[a-c]{0,0}$`, `^[a-c]{2}$`, `^[a-c]{2,}$`, `^a{0,3}b$`, `a*a*b`, `^a*a*$`, `(ab)?c`, `^(ab)?(cd)?$`,
	`^(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?$`, `^é+$`, `^[é-ü]$`, `\x{FFFD}`, `^\n$`, `^[^\n]*$`,
	`(?:ab|a)(?:bc|c)`, `^(a?){3}$`, `(?U)a+`, `a+?b`, `^(?:x|y|z)+$`,
}

// patternInputs are strings for pattern p: the tricky alphabet, pieces
// of the pattern itself, and random mixes of them.
func patternInputs(p string, r *rand.Rand) []string {
	alpha := []string{"", "a", "b", "c", "x", "0", "1", "9", "-", "_", ".", "/", "+", "=", " ", "\n", "\t", "é", "ü",
		"\xff", "\xe2\x82", "A", "Z", "sha256:", "PKG-", "WO-", "SES-", "f", "RSV-", "LED-", "VER-", "T", ":", "@", ">=", ","}
	for _, c := range p {
		alpha = append(alpha, string(c))
	}
	ins := append([]string(nil), alpha...)
	ins = append(ins, strings.Repeat("a", 64), strings.Repeat("0", 64), "sha256:"+strings.Repeat("0a", 32),
		"sha256:"+strings.Repeat("0a", 32)+"\n", "SES-20261206-0a1b2c3d", "WO-20261206-001", "0.25", "12.000001",
		"http://localhost:11434", "local-openai", "OPENAI_API_KEY", "PKG-X-1@>=1.2.3-rc.1,<2.0.0", "2026-12-06T12:00:00.5+01:00")
	for range 300 {
		var b strings.Builder
		for k := r.IntN(12); k >= 0; k-- {
			b.WriteString(alpha[r.IntN(len(alpha))])
		}
		ins = append(ins, b.String())
	}
	return ins
}

// TestSetMatcherAgrees holds the set matcher to regexp.MatchString on
// every pattern of the embedded schemas it takes and on tricky ones, and
// requires it to take the patterns of the files a gateway reads at every
// call (providers.schema.json) and the hashes.
func TestSetMatcherAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	taken := map[string]bool{}
	for _, p := range append(embeddedPatterns(t), trickyPatterns...) {
		re, err := syntax.Parse(p, syntax.Perl)
		require.NoError(t, err, p)
		m := newSetMatcher(re)
		if m == nil {
			continue
		}
		taken[p] = true
		want := regexp.MustCompile(p)
		for _, s := range patternInputs(p, r) {
			require.Equal(t, want.MatchString(s), m.match(s), "pattern %q on %q", p, s)
		}
	}
	for _, p := range []string{`^[a-z][a-z0-9_-]{0,63}$`, `^(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?$`, `^https?://[^\s]+$`,
		`^[A-Z_][A-Z0-9_]{0,127}$`, `^[^\s]+$`, `^sha256:[0-9a-f]{64}$`, `^[0-9a-f]{64}$`, `^SES-[0-9]{8}-[0-9a-f]{8}$`} {
		require.True(t, taken[p], "%s is evaluated without regexp", p)
	}
	// What it does not take goes to regexp, unchanged.
	for _, p := range []string{`(?i)abc`, `(?m)^a$`, `\bx`, `(ab)+`, `(a|b){2,3}`, `^[A-Za-z0-9]+(, *[A-Za-z0-9]+)*$`} {
		re, err := syntax.Parse(p, syntax.Perl)
		require.NoError(t, err, p)
		require.Nil(t, newSetMatcher(re), p)
	}
}

// A schema's pattern answers the same through the set matcher as through
// regexp, in a compiled schema.
func TestPatternSetMatcher(t *testing.T) {
	s, err := compile(t, `{"type":"string","pattern":"^[a-z][a-z0-9_-]{0,63}$"}`)
	require.NoError(t, err)
	require.NotNil(t, s.pattern.set)
	require.Empty(t, s.Validate("local-openai"))
	require.NotEmpty(t, s.Validate("Local"))
	require.NotEmpty(t, s.Validate("a"+strings.Repeat("b", 64)))
	require.Empty(t, s.Validate("a"+strings.Repeat("b", 63)))
	require.Nil(t, s.pattern.re, "never compiled")
}

// TestPatternCompiledWhenUsedOften: past setUses matches a pattern is
// compiled (a stream's requests), with the same answers.
func TestPatternCompiledWhenUsedOften(t *testing.T) {
	s, err := compile(t, `{"type":"string","pattern":"^sha256:[0-9a-f]{64}$"}`)
	require.NoError(t, err)
	good, bad := "sha256:"+strings.Repeat("ab", 32), "sha256:"+strings.Repeat("AB", 32)
	for i := range 2 * setUses {
		require.Empty(t, s.Validate(good), "match %d", i)
		require.NotEmpty(t, s.Validate(bad), "match %d", i)
		require.Equal(t, i >= setUses/2, s.pattern.re != nil, "after %d matches", 2*i+2)
	}
}

// BenchmarkPatternMatch: one match of a hash pattern by the set matcher
// and by the compiled regexp (what setUses trades).
func BenchmarkPatternMatch(b *testing.B) {
	const p = `^sha256:[0-9a-f]{64}$`
	in := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	re, err := syntax.Parse(p, syntax.Perl)
	require.NoError(b, err)
	b.Run("set", func(b *testing.B) {
		m := newSetMatcher(re)
		for b.Loop() {
			if !m.match(in) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("regexp", func(b *testing.B) {
		r := regexp.MustCompile(p)
		for b.Loop() {
			if !r.MatchString(in) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("compile", func(b *testing.B) {
		for b.Loop() {
			regexp.MustCompile(p)
		}
	})
}

func FuzzSetMatcher(f *testing.F) {
	for _, p := range append(embeddedPatterns(f), trickyPatterns...) {
		f.Add(p, "")
		f.Add(p, "sha256:"+strings.Repeat("0a", 32))
		f.Add(p, "a-b_c 9é\n")
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		re, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			return
		}
		m := newSetMatcher(re)
		if m == nil {
			return
		}
		want, err := regexp.Compile(p)
		if err != nil {
			return
		}
		if got := m.match(s); got != want.MatchString(s) {
			t.Fatalf("pattern %q on %q: set matcher %v, regexp %v", p, s, got, !got)
		}
	})
}

// A string longer than maxSetInput goes to regexp, with the same answer.
func TestPatternLongInput(t *testing.T) {
	s, err := compile(t, `{"type":"string","pattern":"^[a-z]+$"}`)
	require.NoError(t, err)
	require.Empty(t, s.Validate(strings.Repeat("a", maxSetInput)))
	require.Nil(t, s.pattern.re)
	require.Empty(t, s.Validate(strings.Repeat("a", maxSetInput+1)))
	require.NotNil(t, s.pattern.re, "compiled for the long string")
	require.NotEmpty(t, s.Validate(strings.Repeat("a", maxSetInput)+"B"))
}
