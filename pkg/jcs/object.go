package jcs

// Object builds a canonical JSON object member by member, for a writer
// that knows its members' keys in canonical order already: no map is
// made, iterated or sorted. Each key must sort after the one before it
// (compared as Marshal sorts them); a key out of order or repeated, or a
// value Marshal refuses, is an error that Raw reports, and nothing after
// it is written. What Raw returns is therefore canonical by construction,
// as MarshalRaw's is. The zero Object is an empty object; Raw ends it.
type Object struct {
	b     []byte
	last  string
	n     int
	depth int
	err   error
}

// Grow makes room for n more bytes.
func (o *Object) Grow(n int) {
	if cap(o.b)-len(o.b) < n {
		nb := make([]byte, len(o.b), len(o.b)+n)
		copy(nb, o.b)
		o.b = nb
	}
}

// key writes k, checked to sort after the previous key.
func (o *Object) key(k string) bool {
	if o.err != nil {
		return false
	}
	if o.n > 0 && compareKeys(o.last, k) >= 0 {
		o.err = valueError("object member " + quoteKey(k) + " out of order after " + quoteKey(o.last))
		return false
	}
	if o.n == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	n := len(o.b)
	var err error
	if o.b, err = appendValueString(o.b, k); err != nil {
		o.b, o.err = o.b[:n], err
		return false
	}
	o.b = append(o.b, ':')
	o.last = k
	o.n++
	return true
}

// Add appends the member k: v (v any value Marshal accepts).
func (o *Object) Add(k string, v any) {
	mark := len(o.b)
	if !o.key(k) {
		return
	}
	var err error
	if o.b, err = appendValue(o.b, v, 1); err != nil {
		o.b, o.err = o.b[:mark], err
		return
	}
	if r, ok := v.(Raw); ok {
		o.depth = max(o.depth, r.depth)
	} else if _, ok := v.(string); !ok {
		o.depth = max(o.depth, nesting(o.b[mark:])) // rare: the writer's nested values are Raws
	}
}

// AddString appends the member k: s.
func (o *Object) AddString(k, s string) {
	mark := len(o.b)
	if !o.key(k) {
		return
	}
	var err error
	if o.b, err = appendValueString(o.b, s); err != nil {
		o.b, o.err = o.b[:mark], err
	}
}

// AddInt appends the member k: i (beyond 2^53 only what Marshal accepts).
func (o *Object) AddInt(k string, i int64) {
	mark := len(o.b)
	if !o.key(k) {
		return
	}
	var err error
	if o.b, err = appendInt(o.b, i); err != nil {
		o.b, o.err = o.b[:mark], err
	}
}

// Raw ends the object and returns it, or the first error met building
// it. Nothing may be added after: an Add is then an error.
func (o *Object) Raw() (Raw, error) {
	if o.err != nil {
		return Raw{}, o.err
	}
	if o.n < 0 {
		return Raw{}, valueError("object already ended")
	}
	if o.n == 0 {
		o.b = append(o.b, '{')
	}
	o.b = append(o.b, '}')
	o.n = -1
	o.err = valueError("object already ended")
	return Raw{b: o.b[:len(o.b):len(o.b)], depth: o.depth + 1}, nil
}

func quoteKey(k string) string {
	b, _ := appendString(nil, k)
	return string(b)
}
