package mcpcmd

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"strings"

	"github.com/control-plane/cp/schemas"
)

// maxRefDepth bounds $ref chains: deeper is a cycle, refused when the
// server starts rather than looped on.
const maxRefDepth = 32

// InputSchema returns the request schema file name of package schemas with
// every $ref resolved in place, so that an MCP client, which fetches no
// other document, sees one self-contained schema: each {"$ref": "F#/P"} is
// replaced by the node P of F (its own $refs resolved against F), with the
// keywords written beside the $ref kept over the referenced ones. The
// inlined nodes lose their $id and $schema (they would change the base of
// what follows), and the top document's $defs are dropped once nothing
// refers to them. The top document keeps its $schema and $id.
func InputSchema(name string) (map[string]any, error) {
	r := resolver{docs: map[string]any{}}
	doc, err := r.doc(name)
	if err != nil {
		return nil, err
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("schema %s: not an object", name)
	}
	out, err := r.resolve(top, name, 0)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	m := out.(map[string]any)
	delete(m, "$defs")
	return m, nil
}

type resolver struct{ docs map[string]any }

// doc returns the decoded schema file name.
func (r *resolver) doc(name string) (any, error) {
	if d, ok := r.docs[name]; ok {
		return d, nil
	}
	b, err := fs.ReadFile(schemas.FS, name)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	var d any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	r.docs[name] = d
	return d, nil
}

// resolve returns a copy of node (read in the file base) with its $refs
// replaced.
func (r *resolver) resolve(node any, base string, depth int) (any, error) {
	if depth > maxRefDepth {
		return nil, fmt.Errorf("$ref chain deeper than %d (a cycle?)", maxRefDepth)
	}
	switch n := node.(type) {
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			x, err := r.resolve(v, base, depth)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		if ref, ok := n["$ref"].(string); ok {
			target, file, err := r.target(ref, base)
			if err != nil {
				return nil, err
			}
			x, err := r.resolve(target, file, depth+1)
			if err != nil {
				return nil, err
			}
			if m, ok := x.(map[string]any); ok {
				maps.Copy(out, m)
				delete(out, "$id")
				delete(out, "$schema")
			} else {
				return nil, fmt.Errorf("$ref %s: not a schema object", ref)
			}
		}
		for k, v := range n {
			if k == "$ref" {
				continue
			}
			x, err := r.resolve(v, base, depth)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	}
	return node, nil
}

// target finds what ref ("F#/P", "#/P" or "F") names, read in base, and
// the file it is in.
func (r *resolver) target(ref, base string) (any, string, error) {
	file, ptr, _ := strings.Cut(ref, "#")
	file = strings.TrimPrefix(file, schemas.BaseURL)
	if file == "" {
		file = base
	}
	if strings.ContainsAny(file, "/:") {
		return nil, "", fmt.Errorf("$ref %s: only the embedded schemas are resolved", ref)
	}
	d, err := r.doc(file)
	if err != nil {
		return nil, "", err
	}
	if ptr == "" {
		return d, file, nil
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, "", fmt.Errorf("$ref %s: not a JSON pointer", ref)
	}
	cur := d
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, "", fmt.Errorf("$ref %s: %q is not in an object", ref, tok)
		}
		if cur, ok = m[tok]; !ok {
			return nil, "", fmt.Errorf("$ref %s: no %q", ref, tok)
		}
	}
	return cur, file, nil
}
