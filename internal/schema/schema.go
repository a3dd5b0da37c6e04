// Package schema validates decoded JSON values against JSON Schema draft
// 2020-12, restricted to the keywords Control Plane's own schemas use.
//
// Why not a general validator at run time: every binary validates every
// request, a single-entry append must cost within 2 ms of a bare process,
// and the append stream validates hundreds of thousands of requests a
// second. A general validator compiles its metaschemas at start-up and walks
// generic structures per request; this package compiles one schema on first
// use into a tree of small checks. Its semantics are pinned to
// santhosh-tekuri/jsonschema/v6 by tests: every embedded schema must compile
// under v6, and differential fuzzing checks both accept exactly the same
// instances.
//
// Supported keywords: $schema $id $ref $defs $comment title description
// default examples deprecated format (annotation only, as in draft 2020-12)
// type enum const properties required additionalProperties items minItems
// maxItems pattern minLength maxLength minimum maximum oneOf anyOf allOf not.
// Any other keyword is a compile error: a schema this package cannot enforce
// fully is refused, never partly applied.
//
// Values are those of encoding/json with UseNumber or pkg/jcs.Decode: nil,
// bool, string, json.Number, []any, map[string]any (float64 and int also
// work).
package schema

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"math/big"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/control-plane/cp/pkg/jcs"
)

// Schema is a compiled schema.
type Schema struct {
	url   string
	bool_ *bool // a boolean schema

	types     []string
	enum      []any
	constV    *any
	props     map[string]*Schema
	propOrder []string
	required  []string
	addlProps *Schema
	items     *Schema
	minItems  *int
	maxItems  *int
	pattern   *pattern
	minLength *int
	maxLength *int
	minimum   *big.Rat
	maximum   *big.Rat
	oneOf     []*Schema
	anyOf     []*Schema
	allOf     []*Schema
	not       *Schema
	ref       *Schema
	refURL    string

	// A $ref of a compiler with LazyRefs resolves on first use: lazy is
	// that compiler, refOnce guards ref and refErr.
	lazy    *Compiler
	refOnce sync.Once
	refErr  error
}

// Compiler compiles schemas from a file system of schema files whose $id is
// base + file name.
type Compiler struct {
	fsys  fs.FS
	base  string
	lazy  bool
	mu    sync.Mutex // Compile and lazy $refs: docs and nodes
	docs  map[string]any
	nodes map[string]*Schema // by absolute URL with JSON-pointer fragment
}

// NewCompiler returns a compiler over fsys.
func NewCompiler(fsys fs.FS, base string) *Compiler {
	return &Compiler{fsys: fsys, base: base, docs: map[string]any{}, nodes: map[string]*Schema{}}
}

// CompileDocument compiles the one schema document doc (a caller's, not
// an embedded file), under the URL base+name: a $ref can point only inside
// it.
func CompileDocument(base, name string, doc []byte) (*Schema, error) {
	v, err := jcs.Decode(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	c := NewCompiler(nil, base)
	c.docs[base+name] = v
	return c.Compile(name)
}

// LazyRefs makes c resolve each $ref when a validation first reaches it,
// not when the schema compiles: a request's schema then decodes and
// compiles only the referenced documents and definitions its instance
// uses (a one-entry append's request names none of cp-ledger.defs.json's:
// half the bytes its compile decoded). A $ref that does not resolve or
// compile then fails the validation that reaches it (fail closed), not
// Compile; Resolve resolves them all at once, as a test of embedded
// schemas must. It returns c.
func (c *Compiler) LazyRefs() *Compiler {
	c.lazy = true
	return c
}

// Compile compiles the schema in the named file.
func (c *Compiler) Compile(name string) (*Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.node(c.base + name)
	if err != nil {
		return nil, err
	}
	if !c.lazy {
		if err := s.cycles(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// cycles returns an error if a $ref reachable from s leads back to where
// it started without descending into the instance (through $ref, allOf,
// anyOf, oneOf and not alone): validating anything against it would never
// end. $refs not yet resolved (LazyRefs) are not followed.
func (s *Schema) cycles() error {
	const visiting, done = 1, 2
	state := map[*Schema]int{}
	var inPlace func(n *Schema) error
	inPlace = func(n *Schema) error {
		switch state[n] {
		case visiting:
			return fmt.Errorf("%s: a $ref cycle that consumes no instance (validation would never end)", n.url)
		case done:
			return nil
		}
		state[n] = visiting
		kids := append(append(append([]*Schema{n.not}, n.allOf...), n.anyOf...), n.oneOf...)
		if n.refURL != "" && (n.lazy == nil || n.resolved()) {
			kids = append(kids, n.ref)
		}
		for _, k := range kids {
			if k != nil {
				if err := inPlace(k); err != nil {
					return err
				}
			}
		}
		state[n] = done
		return nil
	}
	seen := map[*Schema]bool{}
	var all func(n *Schema) error
	all = func(n *Schema) error {
		if n == nil || seen[n] {
			return nil
		}
		seen[n] = true
		if err := inPlace(n); err != nil {
			return err
		}
		kids := append(append(append([]*Schema{n.not, n.addlProps, n.items}, n.allOf...), n.anyOf...), n.oneOf...)
		for _, k := range n.propOrder {
			kids = append(kids, n.props[k])
		}
		if n.refURL != "" && (n.lazy == nil || n.resolved()) {
			kids = append(kids, n.ref)
		}
		for _, k := range kids {
			if err := all(k); err != nil {
				return err
			}
		}
		return nil
	}
	return all(s)
}

func (c *Compiler) doc(url string) (any, error) {
	if d, ok := c.docs[url]; ok {
		return d, nil
	}
	name, ok := strings.CutPrefix(url, c.base)
	if !ok || c.fsys == nil {
		return nil, fmt.Errorf("schema %s is not embedded", url)
	}
	b, err := fs.ReadFile(c.fsys, name)
	if err != nil {
		return nil, err
	}
	// pkg/jcs's decoder, not encoding/json's: a process that validates one
	// request (one append) would otherwise page in encoding/json's
	// reflection-driven decoder for this alone.
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	c.docs[url] = v
	return v, nil
}

// node compiles the schema at url (document URL, optionally with a
// "#/json/pointer" fragment).
func (c *Compiler) node(url string) (*Schema, error) {
	if s, ok := c.nodes[url]; ok {
		return s, nil
	}
	docURL, frag, _ := strings.Cut(url, "#")
	d, err := c.doc(docURL)
	if err != nil {
		return nil, err
	}
	v := d
	if frag != "" {
		for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: pointer does not resolve", url)
			}
			if v, ok = m[tok]; !ok {
				return nil, fmt.Errorf("%s: pointer does not resolve", url)
			}
		}
	}
	s := &Schema{url: url}
	c.nodes[url] = s // before compiling children: $ref cycles resolve to it
	if err := c.compile(s, v, docURL, url); err != nil {
		delete(c.nodes, url) // never handed out half compiled
		return nil, err
	}
	return s, nil
}

// target returns the schema s's $ref names, resolving it first if its
// compiler resolves refs lazily.
func (s *Schema) target() (*Schema, error) {
	if s.lazy == nil {
		return s.ref, nil
	}
	s.refOnce.Do(func() {
		c := s.lazy
		c.mu.Lock()
		defer c.mu.Unlock()
		s.ref, s.refErr = c.node(s.refURL)
	})
	return s.ref, s.refErr
}

// Resolve resolves every $ref reachable from s now (see LazyRefs) and
// returns the first that does not resolve or compile, or a cycle of them
// that consumes no instance.
func (s *Schema) Resolve() error {
	if err := s.resolve(map[*Schema]bool{}); err != nil {
		return err
	}
	return s.cycles()
}

// resolved reports whether a lazy $ref was resolved already (without
// resolving it).
func (s *Schema) resolved() bool {
	if s.lazy == nil {
		return true
	}
	s.lazy.mu.Lock()
	defer s.lazy.mu.Unlock()
	return s.ref != nil
}

func (s *Schema) resolve(seen map[*Schema]bool) error {
	if s == nil || seen[s] {
		return nil
	}
	seen[s] = true
	kids := []*Schema{s.addlProps, s.items, s.not}
	if s.refURL != "" {
		ref, err := s.target()
		if err != nil {
			return fmt.Errorf("%s: $ref %s: %w", s.url, s.refURL, err)
		}
		kids = append(kids, ref)
	}
	for _, k := range s.propOrder {
		kids = append(kids, s.props[k])
	}
	kids = append(append(append(kids, s.oneOf...), s.anyOf...), s.allOf...)
	for _, k := range kids {
		if err := k.resolve(seen); err != nil {
			return err
		}
	}
	return nil
}

func (c *Compiler) compile(s *Schema, v any, docURL, at string) error {
	if b, ok := v.(bool); ok {
		s.bool_ = &b
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: a schema must be an object or a boolean", at)
	}
	sub := func(key string, val any) (*Schema, error) {
		child := &Schema{url: at + "/" + key}
		return child, c.compile(child, val, docURL, child.url)
	}
	subs := func(key string, val any) ([]*Schema, error) {
		arr, ok := val.([]any)
		if !ok || len(arr) == 0 {
			return nil, fmt.Errorf("%s/%s: want a non-empty array of schemas", at, key)
		}
		out := make([]*Schema, len(arr))
		for i, x := range arr {
			var err error
			if out[i], err = sub(fmt.Sprintf("%s/%d", key, i), x); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	nonNeg := func(key string, val any) (*int, error) {
		n, ok := val.(json.Number)
		i, err := strconv.Atoi(string(n))
		if !ok || err != nil || i < 0 {
			return nil, fmt.Errorf("%s/%s: want a non-negative integer", at, key)
		}
		return &i, nil
	}
	for _, key := range sortedKeys(m) {
		val := m[key]
		var err error
		switch key {
		case "$schema":
			if val != "https://json-schema.org/draft/2020-12/schema" {
				return fmt.Errorf("%s: only draft 2020-12 is supported", at)
			}
		case "$id", "$comment", "title", "description", "default", "examples", "deprecated", "format", "$defs":
			// annotations; $defs are compiled when referenced
		case "$ref":
			ref, ok := val.(string)
			if !ok {
				return fmt.Errorf("%s/$ref: want a string", at)
			}
			target := ref
			if strings.HasPrefix(ref, "#") {
				target = docURL + ref
			} else if !strings.Contains(ref, "://") {
				target = c.base + ref
			}
			s.refURL = target
		case "type":
			switch t := val.(type) {
			case string:
				s.types = []string{t}
			case []any:
				for _, x := range t {
					xs, ok := x.(string)
					if !ok {
						return fmt.Errorf("%s/type: want strings", at)
					}
					s.types = append(s.types, xs)
				}
			default:
				return fmt.Errorf("%s/type: want a string or an array", at)
			}
			for _, t := range s.types {
				if !slices.Contains([]string{"null", "boolean", "object", "array", "number", "integer", "string"}, t) {
					return fmt.Errorf("%s/type: unknown type %q", at, t)
				}
			}
		case "enum":
			arr, ok := val.([]any)
			if !ok {
				return fmt.Errorf("%s/enum: want an array", at)
			}
			s.enum = arr
		case "const":
			cv := val
			s.constV = &cv
		case "properties":
			pm, ok := val.(map[string]any)
			if !ok {
				return fmt.Errorf("%s/properties: want an object", at)
			}
			s.props = map[string]*Schema{}
			for _, k := range sortedKeys(pm) {
				if s.props[k], err = sub("properties/"+k, pm[k]); err != nil {
					return err
				}
				s.propOrder = append(s.propOrder, k)
			}
		case "required":
			arr, ok := val.([]any)
			if !ok {
				return fmt.Errorf("%s/required: want an array", at)
			}
			for _, x := range arr {
				xs, ok := x.(string)
				if !ok {
					return fmt.Errorf("%s/required: want strings", at)
				}
				s.required = append(s.required, xs)
			}
		case "additionalProperties":
			s.addlProps, err = sub(key, val)
		case "items":
			s.items, err = sub(key, val)
		case "not":
			s.not, err = sub(key, val)
		case "minItems":
			s.minItems, err = nonNeg(key, val)
		case "maxItems":
			s.maxItems, err = nonNeg(key, val)
		case "minLength":
			s.minLength, err = nonNeg(key, val)
		case "maxLength":
			s.maxLength, err = nonNeg(key, val)
		case "pattern":
			p, ok := val.(string)
			if !ok {
				return fmt.Errorf("%s/pattern: want a string", at)
			}
			re, perr := syntax.Parse(p, syntax.Perl)
			if perr != nil {
				return fmt.Errorf("%s/pattern: %v", at, perr)
			}
			s.pattern = &pattern{src: p, set: newSetMatcher(re)}
		case "minimum", "maximum":
			r, ok := numberRat(val)
			if !ok {
				return fmt.Errorf("%s/%s: want a number", at, key)
			}
			if key == "minimum" {
				s.minimum = r
			} else {
				s.maximum = r
			}
		case "oneOf":
			s.oneOf, err = subs(key, val)
		case "anyOf":
			s.anyOf, err = subs(key, val)
		case "allOf":
			s.allOf, err = subs(key, val)
		default:
			return fmt.Errorf("%s: keyword %q is not supported by package schema", at, key)
		}
		if err != nil {
			return err
		}
	}
	if s.refURL != "" {
		if c.lazy {
			s.lazy = c
			return nil
		}
		ref, err := c.node(s.refURL)
		if err != nil {
			return err
		}
		s.ref = ref
	}
	return nil
}

// Problem is one reason an instance is invalid.
type Problem struct {
	Path    string `json:"path"` // JSON pointer into the instance
	Message string `json:"message"`
	// Broken marks a fault of the schema found while validating (a lazy
	// $ref that does not resolve, a pattern that does not compile), not of
	// the instance: the instance is refused, whatever encloses the fault
	// (not, anyOf, oneOf), because nothing can say it is valid.
	Broken bool `json:"-"`
}

// Validate reports the problems of v against s; none means valid. It stops
// collecting after a few problems.
func (s *Schema) Validate(v any) []Problem {
	w := walker{}
	w.own = cost{left: baseSteps, root: v}
	w.cost = &w.own
	s.check(v, &w)
	return w.problems
}

// A validation's steps (schema nodes applied to instance values) are
// bounded by its instance's size: a schema whose branches multiply (a
// oneOf of two $refs to the next of sixty definitions: 2^60 steps) would
// otherwise take for ever, and a request may bring its own schema. A
// schema that needs more is a fault (Problem.Broken). A $ref chain that
// does not descend into the instance is bounded too (a cycle that escaped
// the compile-time check: a lazy $ref).
const (
	baseSteps       = 1 << 16
	stepsPerNode    = 1 << 10
	maxCountedNodes = 1 << 20
	maxRefChain     = 128
)

type cost struct {
	left      int
	root      any  // the instance, counted (nodes) only if baseSteps run out
	grown     bool // left grew by the instance's size
	exhausted bool
}

// spend takes one step, and reports false once the budget is spent.
func (c *cost) spend() bool {
	if c.left--; c.left >= 0 {
		return true
	}
	if !c.grown {
		c.grown = true
		c.left += stepsPerNode * nodes(c.root, maxCountedNodes)
		return c.left >= 0
	}
	return false
}

// nodes counts v's values, up to most.
func nodes(v any, most int) int {
	n := 1
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if n >= most {
				break
			}
			n += nodes(e, most-n)
		}
	case []any:
		for _, e := range x {
			if n >= most {
				break
			}
			n += nodes(e, most-n)
		}
	}
	return n
}

// Valid reports whether v is valid against s.
func (s *Schema) Valid(v any) bool {
	return len(s.Validate(v)) == 0
}

const maxProblems = 8

// walker holds a validation's instance path as a stack, built into a JSON
// pointer only when a problem is reported: a valid request allocates
// nothing for paths.
type walker struct {
	path     []string
	stack    [16]string
	problems []Problem
	broken   *Problem // the first schema fault met (see Problem.Broken)
	cost     *cost    // shared with sub-validations
	own      cost     // the top-level walker's
	refs     int      // $refs followed since the last descent into the instance
	// yesNo marks a sub-validation whose problems only say whether there
	// are any (validIn): a failure there is counted, not described, so
	// that a oneOf's failing branches build no message that is dropped.
	yesNo bool
}

// push descends into member or item k of the instance; it returns the
// count of $refs followed at the level left, for pop.
func (w *walker) push(k string) (refs int) {
	if w.path == nil {
		w.path = w.stack[:0]
	}
	w.path = append(w.path, k)
	refs, w.refs = w.refs, 0
	return refs
}

func (w *walker) pop(refs int) {
	w.path = w.path[:len(w.path)-1]
	w.refs = refs
}

func (w *walker) fail(format string, args ...any) {
	if w.yesNo {
		if len(w.problems) == 0 {
			w.problems = append(w.problems, Problem{Message: "invalid"})
		}
		return
	}
	if len(w.problems) < maxProblems {
		var b strings.Builder
		for _, k := range w.path {
			b.WriteString("/" + escape(k))
		}
		w.problems = append(w.problems, Problem{Path: b.String(), Message: fmt.Sprintf(format, args...)})
	}
}

// fault records a fault of the schema itself: a problem marked Broken,
// kept past maxProblems, and carried out of every sub-validation.
func (w *walker) fault(format string, args ...any) {
	var b strings.Builder
	for _, k := range w.path {
		b.WriteString("/" + escape(k))
	}
	p := Problem{Path: b.String(), Message: fmt.Sprintf(format, args...), Broken: true}
	w.problems = append(w.problems, p)
	if w.broken == nil {
		w.broken = &p
	}
}

// validIn reports whether v is valid against s for a keyword that only
// asks yes or no (anyOf, oneOf, not); a schema fault met on the way is
// not a "no" but a fault of the enclosing validation too (fail closed).
func (s *Schema) validIn(v any, w *walker) bool {
	sub := walker{cost: w.cost, refs: w.refs, yesNo: true}
	s.check(v, &sub)
	if sub.broken != nil {
		if w.broken == nil {
			w.fault("%s", sub.broken.Message)
		}
		return false
	}
	return len(sub.problems) == 0
}

func (s *Schema) check(v any, w *walker) {
	if w.cost == nil {
		w.own = cost{left: baseSteps, root: v}
		w.cost = &w.own
	}
	if w.cost.exhausted {
		return
	}
	if !w.cost.spend() {
		w.cost.exhausted = true
		w.fault("validation takes more steps than its instance's size allows: the schema's branches multiply")
		return
	}
	if s.bool_ != nil {
		if !*s.bool_ {
			w.fail("not allowed")
		}
		return
	}
	if s.refURL != "" {
		if ref, err := s.target(); err != nil {
			w.fault("schema error: $ref %s: %v", s.refURL, err)
		} else if w.refs >= maxRefChain {
			w.fault("schema error: $ref %s: more than %d $refs without descending into the instance (a $ref cycle)", s.refURL, maxRefChain)
		} else {
			w.refs++
			ref.check(v, w)
			w.refs--
		}
	}
	if len(s.types) > 0 {
		ok := false
		for _, t := range s.types {
			if hasType(v, t) {
				ok = true
				break
			}
		}
		if !ok {
			w.fail("want %s, got %s", strings.Join(s.types, " or "), kind(v))
			return
		}
	}
	if s.enum != nil && !slices.ContainsFunc(s.enum, func(e any) bool { return equal(e, v) }) {
		w.fail("value is not one of the allowed values")
	}
	if s.constV != nil && !equal(*s.constV, v) {
		w.fail("value is not the allowed constant")
	}
	switch x := v.(type) {
	case map[string]any:
		for _, r := range s.required {
			if _, ok := x[r]; !ok {
				w.fail("missing property %q", r)
			}
		}
		if s.props != nil || s.addlProps != nil {
			for k, val := range x {
				if p, ok := s.props[k]; ok {
					refs := w.push(k)
					p.check(val, w)
					w.pop(refs)
				} else if s.addlProps != nil {
					refs := w.push(k)
					if s.addlProps.bool_ != nil && !*s.addlProps.bool_ {
						w.fail("unknown property %q", k)
					} else {
						s.addlProps.check(val, w)
					}
					w.pop(refs)
				}
			}
		}
	case []any:
		if s.minItems != nil && len(x) < *s.minItems {
			w.fail("want at least %d items, got %d", *s.minItems, len(x))
		}
		if s.maxItems != nil && len(x) > *s.maxItems {
			w.fail("want at most %d items, got %d", *s.maxItems, len(x))
		}
		if s.items != nil {
			for i, item := range x {
				refs := w.push(strconv.Itoa(i))
				s.items.check(item, w)
				w.pop(refs)
			}
		}
	case string:
		if s.minLength != nil || s.maxLength != nil {
			n := utf8.RuneCountInString(x)
			if s.minLength != nil && n < *s.minLength {
				w.fail("want at least %d characters, got %d", *s.minLength, n)
			}
			if s.maxLength != nil && n > *s.maxLength {
				w.fail("want at most %d characters, got %d", *s.maxLength, n)
			}
		}
		if s.pattern != nil {
			if ok, err := s.pattern.match(x); err != nil {
				w.fault("pattern %s: %v", s.pattern.src, err) // fail closed
			} else if !ok {
				w.fail("does not match pattern %s", s.pattern.src)
			}
		}
	default:
		if s.minimum != nil || s.maximum != nil {
			if r, ok := numberRat(v); ok {
				if s.minimum != nil && r.Cmp(s.minimum) < 0 {
					w.fail("want at least %s", s.minimum.RatString())
				}
				if s.maximum != nil && r.Cmp(s.maximum) > 0 {
					w.fail("want at most %s", s.maximum.RatString())
				}
			}
		}
	}
	for _, a := range s.allOf {
		a.check(v, w)
	}
	if s.anyOf != nil {
		// The first branch that matches ends the search, as before; a
		// broken branch reached on the way fails the validation.
		ok := slices.ContainsFunc(s.anyOf, func(a *Schema) bool { return a.validIn(v, w) })
		if !ok && w.broken == nil {
			w.fail("matches none of anyOf")
		}
	}
	if s.oneOf != nil {
		n := 0
		for _, o := range s.oneOf {
			if o.validIn(v, w) {
				n++
			}
		}
		if n != 1 && w.broken == nil {
			w.fail("matches %d of oneOf, want exactly 1", n)
		}
	}
	if s.not != nil && s.not.validIn(v, w) {
		w.fail("matches a schema it must not")
	}
}

func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

func hasType(v any, t string) bool {
	switch t {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := numberRat(v)
		return ok
	case "integer":
		r, ok := numberRat(v)
		return ok && r.IsInt()
	}
	return false
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	}
	if _, ok := numberRat(v); ok {
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// numberRat returns a JSON number's exact value.
func numberRat(v any) (*big.Rat, bool) {
	switch n := v.(type) {
	case json.Number:
		// Plain integers are the common case; avoid big.Rat parsing cost
		// for them.
		if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
			return new(big.Rat).SetInt64(i), true
		}
		r, ok := new(big.Rat).SetString(string(n))
		return r, ok
	case float64:
		r := new(big.Rat)
		if r.SetFloat64(n) == nil {
			return nil, false
		}
		return r, true
	case int:
		return new(big.Rat).SetInt64(int64(n)), true
	case int64:
		return new(big.Rat).SetInt64(n), true
	}
	return nil, false
}

// equal is JSON equality: numbers by value, objects by members.
func equal(a, b any) bool {
	if ra, ok := numberRat(a); ok {
		rb, ok := numberRat(b)
		return ok && ra.Cmp(rb) == 0
	}
	switch x := a.(type) {
	case nil, bool, string:
		return a == b
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	}
	return false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pattern is a schema's pattern, compiled on its first match rather than
// with the schema: a request compiles the whole schema of its operation,
// and the patterns of the members it does not hold would otherwise cost
// each process their compilation (regexp.Compile is about ten times
// syntax.Parse, and a few patterns came to 0.05 ms of a one-entry append).
// Compile still parses it, so a bad pattern is a compile error as before.
// A process that matches a pattern a few times never compiles it: set,
// when the parsed pattern is one it evaluates (match.go), answers the same
// as regexp would, without compiling, for the first setUses matches; a
// pattern matched more often than that (a stream of requests) is compiled
// then, since a compiled regexp matches several times faster and without
// allocating.
type pattern struct {
	src  string
	set  *setMatcher
	uses atomic.Int32
	once sync.Once
	re   *regexp.Regexp
	err  error
}

// setUses is how many matches of a pattern the set matcher answers before
// the pattern is compiled (BenchmarkPatternMatch, a hash pattern: 3.5 µs a
// match by the set matcher, 1.2 µs compiled, 59 µs to compile, at load ~2).
const setUses = 16

func (p *pattern) match(s string) (bool, error) {
	if p.set != nil && len(s) <= maxSetInput && p.uses.Load() < setUses {
		p.uses.Add(1)
		return p.set.match(s), nil
	}
	p.once.Do(func() { p.re, p.err = regexp.Compile(p.src) })
	if p.err != nil {
		return false, p.err
	}
	return p.re.MatchString(s), nil
}
