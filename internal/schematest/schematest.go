// Package schematest compiles the embedded schemas with
// santhosh-tekuri/jsonschema/v6, the reference implementation that
// pkg/schema's compiled validator must agree with. Only tests import it:
// the binaries never link v6.
package schematest

import (
	"strings"
	"sync"

	"github.com/control-plane/cp/schemas"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var (
	mu    sync.Mutex
	cache = map[string]*jsonschema.Schema{}
)

// Oracle returns the v6 compilation (draft 2020-12) of the named embedded
// schema, compiled once per process.
func Oracle(name string) (*jsonschema.Schema, error) {
	mu.Lock()
	defer mu.Unlock()
	if s, ok := cache[name]; ok {
		return s, nil
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(jsonschema.SchemeURLLoader{"https": loader{}})
	s, err := c.Compile(schemas.BaseURL + name)
	if err != nil {
		return nil, err
	}
	cache[name] = s
	return s, nil
}

// loader serves schema $ids from the embedded files only: no network.
type loader struct{}

func (loader) Load(url string) (any, error) {
	f, err := schemas.FS.Open(strings.TrimPrefix(url, schemas.BaseURL))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return jsonschema.UnmarshalJSON(f)
}
