package schema

import "regexp/syntax"

// simplePattern is a pattern of the one shape most schemas here use,
// matched without compiling a regexp: anchored at both ends (^...$), a
// sequence of ASCII literals and ASCII character classes, each repeated
// a fixed or bounded number of times, such as ^sha256:[0-9a-f]{64}$,
// ^WO-[0-9]{8}-[0-9]{3}$ or ^PKG-[A-Z0-9-]+$. regexp.Compile of such a
// pattern is most of a request's validation (the {64} alone is 64
// instructions), and every process pays it again.
//
// It is taken only where one greedy pass decides the match exactly as
// the regexp would: an item repeated a variable number of times is the
// last one, or is followed by an item repeated a fixed number of times
// (at least once) whose characters it cannot match, so that no match
// ever needs to give characters back. Every other pattern keeps
// regexp (FuzzSimplePattern holds the two to the same answers).
type simplePattern []simpleItem

// simpleItem is one character set, matched min to max times (max -1:
// unbounded).
type simpleItem struct {
	set      [2]uint64 // ASCII bit set
	min, max int
}

func (it *simpleItem) has(c byte) bool {
	return c < 128 && it.set[c>>6]&(1<<(c&63)) != 0
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
	// No backtracking: a variable item is last, or followed by a fixed
	// one it cannot eat into.
	for i, it := range p {
		if it.min == it.max || i == len(p)-1 {
			continue
		}
		next := p[i+1]
		if next.min != next.max || next.min < 1 || it.set[0]&next.set[0] != 0 || it.set[1]&next.set[1] != 0 {
			return nil
		}
	}
	return p
}

func literalItem(r rune) (simpleItem, bool) {
	if r < 0 || r >= 128 {
		return simpleItem{}, false
	}
	var it simpleItem
	it.set[r>>6] |= 1 << (r & 63)
	it.min, it.max = 1, 1
	return it, true
}

// classItem is a class of ASCII characters only (a class reaching
// beyond ASCII, as a negated one does, keeps regexp).
func classItem(re *syntax.Regexp) (simpleItem, bool) {
	var it simpleItem
	for i := 0; i+1 < len(re.Rune); i += 2 {
		lo, hi := re.Rune[i], re.Rune[i+1]
		if lo < 0 || hi >= 128 || lo > hi {
			return simpleItem{}, false
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
		for i < len(s) && (it.max < 0 || n < it.max) && it.has(s[i]) {
			i++
			n++
		}
		if n < it.min {
			return false
		}
	}
	return i == len(s)
}
