package schema

import (
	"regexp"
	"regexp/syntax"
	"testing"

	"github.com/stretchr/testify/require"
)

// simplePatterns are patterns of the shapes the fast path must get right,
// those it takes and those it must leave to regexp.
var simplePatterns = []string{
	`^sha256:[0-9a-f]{64}$`, `^[0-9a-f]{64}$`, `^WO-[0-9]{8}-[0-9]{3}$`, `^SES-[0-9]{8}-[0-9a-f]{8}$`,
	`^PKG-[A-Z0-9-]+$`, `^[a-z][a-z0-9_-]{0,63}$`, `^[A-Z_][A-Z0-9_]{0,127}$`, `^[a-z][a-z0-9_.-]*$`,
	`^0[0-7]{3}$`, `^LED-[0-9a-f]{16}$`, `^cp_[a-z0-9_]+$`, `^[a-z0-9][a-z0-9_-]{0,63}/$`, `^a?b$`, `^a*b$`,
	`^[0-9]{2,}x$`, `^x{0}y$`, `\A[ab]{2}\z`, `^[^\s]+$`, `^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$`, `^https?://[^\s]+$`,
	`^[^+\s]+$`, `^[a-z]+[0-9]?$`, `^a+[b-c]*d$`, `^[^a]*b?[^ab]$`, `^[\x00-\x{10FFFF}]{2}$`, `^[^é]+$`, `^[a-z]*[0-9]?[a-z]$`,
	// Left to regexp: unanchored, alternation, backtracking, non-ASCII,
	// negated classes, case folding, groups.
	`^VER-`, `\.jsonl$`, `^(FMWK|SPEC|PKG|PRM)-[A-Z0-9-]+$`, `^[^/].*\.jsonl$`, `^[a-z]*[a-z]$`,
	`^[^\s]+$`, `^é+$`, `(?i)^abc$`, `^(ab)+$`, `^[a-z]+[0-9]?$`, `^[a-z]+a$`, `^([0-9a-f]{64})?$`,
	`^[0-9]*:[0-9]*$|^[0-9]+$`, `^a+[b-c]*d$`,
}

func simpleOf(t testing.TB, p string) simplePattern {
	re, err := syntax.Parse(p, syntax.Perl)
	require.NoError(t, err, p)
	return newSimplePattern(re)
}

// The patterns our schemas hold most take the fast path; the ones that
// could need backtracking, or reach beyond ASCII, do not.
func TestSimplePatternShapes(t *testing.T) {
	for _, p := range []string{`^sha256:[0-9a-f]{64}$`, `^WO-[0-9]{8}-[0-9]{3}$`, `^SES-[0-9]{8}-[0-9a-f]{8}$`, `^PKG-[A-Z0-9-]+$`, `^[a-z][a-z0-9_-]{0,63}$`, `^[0-9]*:[0-9]$`,
		`^[^\s]+$`, `^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$`, `^https?://[^\s]+$`, `^[a-z]+[0-9]?$`, `^a+[b-c]*d$`} {
		require.NotNil(t, simpleOf(t, p), p)
	}
	for _, p := range []string{`^VER-`, `\.jsonl$`, `^[a-z]*[a-z]$`, `^é+$`, `^[^é]+$`, `(?i)^abc$`, `^(ab)+$`, `^[a-z]+a$`, `^[a-z]*[0-9]?[a-z]$`, `^[^a]+é$`, `^[0-9]*:[0-9]*$|^[0-9]+$`, `^[^/].*\.jsonl$`} {
		require.Nil(t, simpleOf(t, p), p)
	}
}

func TestSimplePatternMatches(t *testing.T) {
	h := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{`^sha256:[0-9a-f]{64}$`, "sha256:" + h, true},
		{`^sha256:[0-9a-f]{64}$`, "sha256:" + h + "0", false},
		{`^sha256:[0-9a-f]{64}$`, "sha256:" + h[1:], false},
		{`^sha256:[0-9a-f]{64}$`, "sha256:" + h + "\n", false},
		{`^sha256:[0-9a-f]{64}$`, "SHA256:" + h, false},
		{`^PKG-[A-Z0-9-]+$`, "PKG-", false},
		{`^PKG-[A-Z0-9-]+$`, "PKG-A-1", true},
		{`^PKG-[A-Z0-9-]+$`, "PKG-A-1é", false},
		{`^[a-z][a-z0-9_-]{0,63}$`, "a", true},
		{`^[0-9]*:[0-9]$`, ":1", true},
		{`^[0-9]*:[0-9]$`, "12:", false},
		{`^[^+\s]+$`, "opsé\xff", true},
		{`^[^+\s]+$`, "ops+x", false},
		{`^[^+\s]+$`, "ops\u2028", true},
		{`^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$`, "ops+0a0b0c0d+AbC/+==", true},
		{`^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$`, "ops+0a0b0c0d+AbC/+==a", false},
		{`^[a-z]+[0-9]?$`, "ab1", true},
		{`^[a-z]+[0-9]?$`, "ab12", false},
	} {
		sp := simpleOf(t, tc.p)
		require.NotNil(t, sp, tc.p)
		require.Equal(t, tc.want, sp.match(tc.s), "%s on %q", tc.p, tc.s)
		require.Equal(t, tc.want, regexp.MustCompile(tc.p).MatchString(tc.s), "regexp %s on %q", tc.p, tc.s)
	}
}

// FuzzSimplePattern holds the fast path to regexp's answer for every
// pattern it takes, on any string.
func FuzzSimplePattern(f *testing.F) {
	for i, p := range simplePatterns {
		for _, s := range []string{"", "sha256:0123", "WO-20261206-001", "SES-20261206-0a0b0c0d", "PKG-A", "abc", "0755", "a/", "aab", "\xff", "é", "ops+0a0b0c0d+AbC/+==", "a\u00a0b", "ab1", "é\xffb"} {
			f.Add(p, s)
		}
		f.Add(p, p[min(1, len(p)):])
		_ = i
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		re, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			return
		}
		sp := newSimplePattern(re)
		if sp == nil {
			return
		}
		rx, err := regexp.Compile(p)
		if err != nil {
			t.Fatalf("%q parses and has a simple form, but does not compile: %v", p, err)
		}
		if got, want := sp.match(s), rx.MatchString(s); got != want {
			t.Fatalf("pattern %q on %q: simple %v, regexp %v", p, s, got, want)
		}
	})
}

// Every simple pattern above against every string of up to four
// characters over an alphabet that exercises its items' edges: the same
// answers as regexp.
func TestSimplePatternExhaustive(t *testing.T) {
	alphabet := []string{"a", "b", "0", "+", " ", "=", "/", ":", "-", "é", "\xff", "x", "1"}
	var strs []string
	var grow func(prefix string, n int)
	grow = func(prefix string, n int) {
		strs = append(strs, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			grow(prefix+c, n-1)
		}
	}
	grow("", 4)
	for _, p := range simplePatterns {
		sp := simpleOf(t, p)
		if sp == nil {
			continue
		}
		rx := regexp.MustCompile(p)
		for _, s := range strs {
			if got, want := sp.match(s), rx.MatchString(s); got != want {
				t.Fatalf("pattern %q on %q: simple %v, regexp %v", p, s, got, want)
			}
		}
	}
}
