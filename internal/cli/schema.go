package cli

import (
	"io/fs"
	"sync"

	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/schemas"
)

// The embedded schemas' $refs resolve when a request first reaches them
// (schema.Compiler.LazyRefs): a request compiles only the definitions its
// members use. TestSchemasCompile resolves every one of them.
var (
	schemaMu       sync.Mutex
	schemaCompiler = schema.NewCompiler(schemas.FS, schemas.BaseURL).LazyRefs()
	schemaCache    = map[string]*schema.Schema{}
)

// compileSchema compiles one embedded schema (and what it references) on
// first use; a process compiles only the schema of the verb it runs.
func compileSchema(name string) (*schema.Schema, error) {
	if name == "" {
		return nil, Errorf(ExitInternal, "INTERNAL", "verb has no request schema")
	}
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemaCache[name]; ok {
		return s, nil
	}
	s, err := schemaCompiler.Compile(name)
	if err != nil {
		return nil, Errorf(ExitInternal, "INTERNAL", "compiling schema %s: %v", name, err)
	}
	schemaCache[name] = s
	return s, nil
}

// SchemaNames lists the embedded schema files.
func SchemaNames() ([]string, error) {
	return fs.Glob(schemas.FS, "*.json")
}

// validate checks req against the verb's schema; a violation is exit 3 with
// each failing location in details.
func validate(s *schema.Schema, verb *Verb, req Request) error {
	problems := s.Validate(map[string]any(req))
	if len(problems) == 0 {
		return nil
	}
	details := make([]any, len(problems))
	for i, p := range problems {
		details[i] = map[string]any{"path": p.Path, "message": p.Message}
	}
	first := problems[0]
	for _, p := range problems {
		if p.Broken { // the embedded schema's fault, not the request's
			return Errorf(ExitInternal, "INTERNAL", "%s request: schema %s cannot judge it: %s", verb.Name, verb.Schema, p.Message).
				WithDetails(map[string]any{"schema": verb.Schema, "problems": details})
		}
	}
	loc := first.Path
	if loc == "" {
		loc = "/"
	}
	return Invalidf("SCHEMA_VIOLATION", "%s request: %s: %s", verb.Name, loc, first.Message).
		WithDetails(map[string]any{"schema": verb.Schema, "problems": details})
}
