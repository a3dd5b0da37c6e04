package schema

import (
	"regexp/syntax"
	"unicode/utf8"
)

// A setMatcher answers regexp.MatchString for the patterns schemas use
// (anchored sequences of literals and character classes, counted
// repetitions of one character, optional groups, alternations) without
// compiling them: regexp.Compile expands a counted repetition into as many
// copies of its operand and then analyses the program, so the five patterns
// of providers.schema.json cost a process about 0.5 ms (`^[a-z][a-z0-9_-]{0,63}$`
// alone is 64 nested alternatives), and every hash pattern
// (`^sha256:[0-9a-f]{64}$`) its own share. It evaluates the parsed tree
// directly over the set of positions a match can reach: a node takes the
// positions it may start at and returns those it may end at, so a string of
// n runes costs O(n) per node of the tree, whatever the counts.
//
// It is the same relation as regexp's (TestSetMatcherAgrees and
// FuzzSetMatcher hold it to regexp.MatchString): an unanchored search, ^
// and $ at the ends of the text only (syntax.Perl without (?m): Go's $ is
// \z), runes decoded as regexp decodes them (an invalid byte is U+FFFD of
// width 1). A tree with anything else (case folding, line or word
// anchors, a repetition of more than one character other than ?) is not
// taken: the pattern goes to regexp as before.
type setMatcher struct{ re *syntax.Regexp }

// newSetMatcher returns the matcher of re, or nil when re uses what it
// does not evaluate.
func newSetMatcher(re *syntax.Regexp) *setMatcher {
	if !setSupported(re) {
		return nil
	}
	return &setMatcher{re: re}
}

// oneRune reports whether re matches exactly one rune (a class, a single
// literal rune, any character).
func oneRune(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpLiteral:
		return len(re.Rune) == 1 && re.Flags&syntax.FoldCase == 0
	}
	return false
}

func setSupported(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpEmptyMatch, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpLiteral:
		return re.Flags&syntax.FoldCase == 0
	case syntax.OpStar, syntax.OpPlus:
		return oneRune(re.Sub[0])
	case syntax.OpRepeat:
		return oneRune(re.Sub[0]) && re.Min >= 0 && (re.Max == -1 || re.Max >= re.Min)
	case syntax.OpQuest, syntax.OpCapture:
		return setSupported(re.Sub[0])
	case syntax.OpConcat, syntax.OpAlternate:
		for _, s := range re.Sub {
			if !setSupported(s) {
				return false
			}
		}
		return true
	}
	return false
}

// maxSetInput is the longest string the set matcher takes: it holds a
// few words per rune per node, where regexp's machine holds its program's
// threads; a longer string goes to regexp (pattern.match).
const maxSetInput = 4096

// match reports whether s holds a match of the pattern (anywhere, as
// regexp.MatchString). s is at most maxSetInput bytes.
func (m *setMatcher) match(s string) bool {
	rs := make([]rune, 0, len(s))
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		rs = append(rs, r)
		i += w
	}
	start := make([]bool, len(rs)+1)
	for i := range start {
		start[i] = true
	}
	for _, ok := range eval(m.re, rs, start) {
		if ok {
			return true
		}
	}
	return false
}

// eval returns the positions (rune indexes, 0..len(rs)) where a match of
// re can end, given those in from where it can start. from is not
// changed.
func eval(re *syntax.Regexp, rs []rune, from []bool) []bool {
	n := len(rs)
	to := make([]bool, n+1)
	switch re.Op {
	case syntax.OpNoMatch:
	case syntax.OpEmptyMatch:
		copy(to, from)
	case syntax.OpBeginText:
		to[0] = from[0]
	case syntax.OpEndText:
		to[n] = from[n]
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		for p := range n {
			if from[p] && runeIn(re, rs[p]) {
				to[p+1] = true
			}
		}
	case syntax.OpLiteral:
		k := len(re.Rune)
		for p := 0; p+k <= n; p++ {
			if from[p] && runesAt(rs, p, re.Rune) {
				to[p+k] = true
			}
		}
	case syntax.OpCapture:
		return eval(re.Sub[0], rs, from)
	case syntax.OpConcat:
		cur := from
		for _, sub := range re.Sub {
			cur = eval(sub, rs, cur)
		}
		copy(to, cur)
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			for p, ok := range eval(sub, rs, from) {
				to[p] = to[p] || ok
			}
		}
	case syntax.OpQuest:
		copy(to, eval(re.Sub[0], rs, from))
		for p, ok := range from {
			to[p] = to[p] || ok
		}
	case syntax.OpStar:
		repeatRune(re.Sub[0], 0, -1, rs, from, to)
	case syntax.OpPlus:
		repeatRune(re.Sub[0], 1, -1, rs, from, to)
	case syntax.OpRepeat:
		repeatRune(re.Sub[0], re.Min, re.Max, rs, from, to)
	default:
		panic("schema: setMatcher given an unsupported pattern") // setSupported keeps these out
	}
	return to
}

// repeatRune sets in to the ends of min to max (-1: no limit) repetitions
// of the one-rune node sub from the starts in from: from p, every end
// from p+min to p+min(max, run), run being how many runes from p sub
// matches in a row. Ranges are marked through a difference array: O(n).
func repeatRune(sub *syntax.Regexp, lo, hi int, rs []rune, from, to []bool) {
	n := len(rs)
	run := make([]int, n+1) // run[p]: sub matches rs[p], rs[p+1], ..., run[p] of them
	for p := n - 1; p >= 0; p-- {
		if runeIn(sub, rs[p]) {
			run[p] = run[p+1] + 1
		}
	}
	diff := make([]int, n+2)
	for p, ok := range from {
		if !ok || run[p] < lo {
			continue
		}
		last := run[p]
		if hi >= 0 && hi < last {
			last = hi
		}
		diff[p+lo]++
		diff[p+last+1]--
	}
	c := 0
	for p := 0; p <= n; p++ {
		c += diff[p]
		to[p] = c > 0
	}
}

// runeIn reports whether the one-rune node re matches r.
func runeIn(re *syntax.Regexp, r rune) bool {
	switch re.Op {
	case syntax.OpAnyChar:
		return true
	case syntax.OpAnyCharNotNL:
		return r != '\n'
	case syntax.OpLiteral:
		return r == re.Rune[0]
	}
	for i := 0; i+1 < len(re.Rune); i += 2 { // OpCharClass: sorted [lo, hi] pairs
		if r < re.Rune[i] {
			return false
		}
		if r <= re.Rune[i+1] {
			return true
		}
	}
	return false
}

func runesAt(rs []rune, p int, lit []rune) bool {
	for i, r := range lit {
		if rs[p+i] != r {
			return false
		}
	}
	return true
}
