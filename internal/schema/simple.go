package schema

import (
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// simplePattern is a pattern of the one shape most schemas here use,
// matched without compiling a regexp: anchored at both ends (^...$), a
// sequence of ASCII literals and character classes (of ASCII characters,
// or of every character but some ASCII ones, as [^+\s]), each repeated a
// fixed or bounded number of times, such as ^sha256:[0-9a-f]{64}$,
// ^WO-[0-9]{8}-[0-9]{3}$ or ^PKG-[A-Z0-9-]+$. regexp.Compile of such a
// pattern is most of a request's validation (the {64} alone is 64
// instructions), and every process pays it again.
//
// It is taken only where one greedy pass decides the match exactly as
// the regexp would: an item repeated a variable number of times shares
// no character with any item after it, up to and including the next one
// that must match at least once, so that no match ever needs to give
// characters back. Every other pattern keeps regexp (FuzzSimplePattern
// holds the two to the same answers).
type simplePattern []simpleItem

// simpleItem is one character set, matched min to max times (max -1:
// unbounded).
type simpleItem struct {
	set      [2]uint64 // ASCII bit set
	other    bool      // every character beyond ASCII is in the set too
	min, max int
}

// at returns the width of the character at s[i] when the set holds it,
// else 0. Beyond ASCII it decodes as regexp does (a byte that is not
// UTF-8 is one U+FFFD).
func (it *simpleItem) at(s string, i int) int {
	if c := s[i]; c < utf8.RuneSelf {
		if it.set[c>>6]&(1<<(c&63)) != 0 {
			return 1
		}
		return 0
	}
	if !it.other {
		return 0
	}
	_, w := utf8.DecodeRuneInString(s[i:])
	return w
}

// disjoint reports whether no character is in both sets.
func (it *simpleItem) disjoint(o *simpleItem) bool {
	return it.set[0]&o.set[0] == 0 && it.set[1]&o.set[1] == 0 && !(it.other && o.other)
}

// newSimplePattern returns re's simple form, or nil when it has none.
func newSimplePattern(re *syntax.Regexp) simplePattern {
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 {
		return nil
	}
	subs := re.Sub
	if subs[0].Op != syntax.OpBeginText || subs[len(subs)-1].Op != syntax.OpEndText {
		return nil
	}
	var p simplePattern
	for _, s := range subs[1 : len(subs)-1] {
		if s.Flags&syntax.FoldCase != 0 {
			return nil
		}
		switch s.Op {
		case syntax.OpLiteral:
			for _, r := range s.Rune {
				it, ok := literalItem(r)
				if !ok {
					return nil
				}
				p = append(p, it)
			}
			continue
		case syntax.OpCharClass:
			it, ok := classItem(s)
			if !ok {
				return nil
			}
			p = append(p, it)
			continue
		}
		// A repetition of one character or one class.
		var min, max int
		switch s.Op {
		case syntax.OpStar:
			min, max = 0, -1
		case syntax.OpPlus:
			min, max = 1, -1
		case syntax.OpQuest:
			min, max = 0, 1
		case syntax.OpRepeat:
			min, max = s.Min, s.Max
		default:
			return nil
		}
		if len(s.Sub) != 1 || s.Sub[0].Flags&syntax.FoldCase != 0 {
			return nil
		}
		var it simpleItem
		var ok bool
		switch sub := s.Sub[0]; {
		case sub.Op == syntax.OpCharClass:
			it, ok = classItem(sub)
		case sub.Op == syntax.OpLiteral && len(sub.Rune) == 1:
			it, ok = literalItem(sub.Rune[0])
		}
		if !ok || min < 0 || max != -1 && max < min {
			return nil
		}
		it.min, it.max = min, max
		p = append(p, it)
	}
	// No backtracking: a variable item shares no character with the
	// items after it, up to and including the first that must match at
	// least once (the one a shorter run would hand its characters to).
	for i := range p {
		if p[i].min == p[i].max {
			continue
		}
		for k := i + 1; k < len(p); k++ {
			if !p[i].disjoint(&p[k]) {
				return nil
			}
			if p[k].min >= 1 {
				break
			}
		}
	}
	return p
}

func literalItem(r rune) (simpleItem, bool) {
	if r < 0 || r >= utf8.RuneSelf {
		return simpleItem{}, false
	}
	var it simpleItem
	it.set[r>>6] |= 1 << (r & 63)
	it.min, it.max = 1, 1
	return it, true
}

// classItem is a class of ASCII characters, or of every character beyond
// ASCII and some ASCII ones (a negated class of ASCII characters); any
// other class keeps regexp.
func classItem(re *syntax.Regexp) (simpleItem, bool) {
	var it simpleItem
	for i := 0; i+1 < len(re.Rune); i += 2 {
		lo, hi := re.Rune[i], re.Rune[i+1]
		if lo < 0 || lo > hi {
			return simpleItem{}, false
		}
		if hi >= utf8.RuneSelf {
			// Only as the class's last range, and reaching the last
			// rune: every character beyond ASCII.
			if i+2 != len(re.Rune) || hi != unicode.MaxRune || lo > utf8.RuneSelf {
				return simpleItem{}, false
			}
			it.other, hi = true, utf8.RuneSelf-1
		}
		for c := lo; c <= hi; c++ {
			it.set[c>>6] |= 1 << (c & 63)
		}
	}
	it.min, it.max = 1, 1
	return it, true
}

// match reports whether s matches p, as the regexp of the same pattern
// would.
func (p simplePattern) match(s string) bool {
	i := 0
	for k := range p {
		it := &p[k]
		n := 0
		for i < len(s) && (it.max < 0 || n < it.max) {
			w := it.at(s, i)
			if w == 0 {
				break
			}
			i += w
			n++
		}
		if n < it.min {
			return false
		}
	}
	return i == len(s)
}
