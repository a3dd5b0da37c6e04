package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/control-plane/cp/schemas"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var printer = message.NewPrinter(language.English)

// embeddedLoader serves schema $ids from the embedded schemas.FS; any other
// URL is refused, so validation never touches the network.
type embeddedLoader struct{}

func (embeddedLoader) Load(url string) (any, error) {
	name, ok := strings.CutPrefix(url, schemas.BaseURL)
	if !ok {
		return nil, fmt.Errorf("schema %s is not embedded", url)
	}
	f, err := schemas.FS.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return jsonschema.UnmarshalJSON(f)
}

var (
	schemaMu    sync.Mutex
	schemaCache = map[string]*jsonschema.Schema{}
)

// compileSchema compiles one embedded schema (and what it references) on
// first use; a process compiles only the schema of the verb it runs.
func compileSchema(name string) (*jsonschema.Schema, error) {
	if name == "" {
		return nil, Errorf(ExitInternal, "INTERNAL", "verb has no request schema")
	}
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemaCache[name]; ok {
		return s, nil
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(embeddedLoader{})
	s, err := c.Compile(schemas.BaseURL + name)
	if err != nil {
		return nil, Errorf(ExitInternal, "INTERNAL", "compiling schema %s: %v", name, err)
	}
	schemaCache[name] = s
	return s, nil
}

// CompileSchema exposes schema compilation to tests that check every
// embedded schema compiles.
func CompileSchema(name string) error {
	_, err := compileSchema(name)
	return err
}

// SchemaNames lists the embedded schema files.
func SchemaNames() ([]string, error) {
	return fs.Glob(schemas.FS, "*.json")
}

// validate checks req against the verb's schema; a violation is exit 3 with
// each failing location in details.
func validate(s *jsonschema.Schema, verb *Verb, req Request) error {
	err := s.Validate(map[string]any(req))
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return Errorf(ExitInternal, "INTERNAL", "validating request: %v", err)
	}
	var problems []any
	var first string
	for _, leaf := range leaves(ve) {
		loc := "/" + strings.Join(leaf.InstanceLocation, "/")
		msg := leaf.ErrorKind.LocalizedString(printer)
		if first == "" {
			first = loc + ": " + msg
		}
		problems = append(problems, map[string]any{"path": loc, "message": msg})
	}
	return Invalidf("SCHEMA_VIOLATION", "%s request: %s", verb.Name, first).
		WithDetails(map[string]any{"schema": verb.Schema, "problems": problems})
}

func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return []*jsonschema.ValidationError{ve}
	}
	var out []*jsonschema.ValidationError
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}
