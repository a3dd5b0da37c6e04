package workorder

import "strings"

// Matcher is a scope's path patterns compiled for matching many paths
// (G2 over an install of thousands of files): the patterns are split once
// and indexed by their leading literal segments, so a path is tried only
// against the patterns whose literal prefix it shares. It answers exactly
// as Scope.Covers.
type Matcher struct{ root *matchNode }

type matchNode struct {
	next map[string]*matchNode // by the next literal segment
	rest [][]string            // patterns whose literal prefix ends here: their remaining segments
}

// Matcher compiles the scope's paths.
func (s Scope) Matcher() *Matcher {
	m := &Matcher{root: &matchNode{}}
	for _, p := range s.Paths {
		segs := strings.Split(p, "/")
		n := m.root
		for len(segs) > 0 && segs[0] != "**" && !strings.ContainsAny(segs[0], `*?[\`) {
			if n.next == nil {
				n.next = map[string]*matchNode{}
			}
			c := n.next[segs[0]]
			if c == nil {
				c = &matchNode{}
				n.next[segs[0]] = c
			}
			n, segs = c, segs[1:]
		}
		n.rest = append(n.rest, segs)
	}
	return m
}

// Covers reports whether some pattern of the scope matches name, as
// Scope.Covers does.
func (m *Matcher) Covers(name string) bool {
	ns := strings.Split(name, "/")
	n := m.root
	for i := 0; ; i++ {
		for _, r := range n.rest {
			if matchSegs(r, ns[i:]) {
				return true
			}
		}
		if i == len(ns) {
			return false
		}
		if n = n.next[ns[i]]; n == nil {
			return false
		}
	}
}
