// Package prompt is the prompt-pack engine (DESIGN.md §9): the rules of a
// pack's files, the hash a plane registers for a pack, and the one way a
// registered pack is loaded, checked against that hash and rendered.
//
// # Layout
//
// A pack is the directory governed_prompts/<PRM-ID>/ of a package of type
// prompt_pack, holding pack.json (schemas/prompt_pack.schema.json:
// prompt_pack_id, version, template, variables, providers, models,
// max_tokens, optional description) and the template file pack.json names
// (Go text/template, rendered with missingkey=error). The directory's name
// is the pack's id. Parse and ParseTemplate are the rules; the package gates
// (internal/gate) run them on every prompt_pack package before install.
//
// # The registered hash
//
// Install writes one row per pack to registries/prompts_registry.csv with
// path governed_prompts/<PRM-ID> (the directory) and sha256 the pack digest
// (Digest): "sha256:" and the SHA-256 of the text sha256sum prints for
// pack.json and then the template, run in the pack's directory:
//
//	<hex of pack.json>  pack.json\n<hex of template>  <template>\n
//
// so `cd governed_prompts/PRM-X && sha256sum pack.json template.txt |
// sha256sum` gives it. A change to either file changes the digest.
//
// # Use (the gateway's API)
//
//	p, err := prompt.Load(root, "PRM-X")  // PROMPT_NOT_FOUND, PROMPT_HASH_MISMATCH, PROMPT_PACK_INVALID
//	r, err := p.Render(vars)             // PROMPT_VARIABLES_INVALID, PROMPT_RENDER_FAILED
//	// r.Text is the prompt; r.PromptPackID, r.Version, r.SHA256 (registered)
//	// and r.TextSHA256 are the evidence (prompts_used); r.Providers,
//	// r.Models and r.MaxTokens are the pack's limits, which the gateway
//	// (internal/llm) holds a call to once its provider and model are
//	// resolved (PROMPT_LIMIT, recorded as LLM_REFUSED).
//
// Load re-reads and re-hashes both files at every call, through os.Root,
// following no link, reading regular files only and at most MaxPackBytes
// and MaxTemplateBytes: a pack edited after install is refused at use.
package prompt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/schemas"
)

// Dir is the governed root prompt packs install under.
const Dir = "governed_prompts"

// PackFile is the name of a pack's description in its directory.
const PackFile = "pack.json"

// PackageType is the manifest package_type of a package of prompt packs.
const PackageType = "prompt_pack"

// SchemaName is pack.json's schema in package schemas.
const SchemaName = "prompt_pack.schema.json"

// Caps on what is read: a pack is small text.
const (
	MaxPackBytes     = 64 << 10
	MaxTemplateBytes = 256 << 10
	// MaxTextBytes caps a rendered text: a template that loops over its
	// variables cannot make the gateway build an unbounded prompt.
	MaxTextBytes = 1 << 20
)

// ValidID reports whether id is a prompt pack id (^PRM-[A-Z0-9-]+$).
// It is checked by hand, not by a regexp compiled at package init: every
// process that links this package (cp-llm, cp-route, cp-mcp) would pay for
// the compile at start-up.
func ValidID(id string) bool {
	rest, ok := strings.CutPrefix(id, "PRM-")
	if !ok || rest == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// PackDir returns the plane-relative directory of pack id.
func PackDir(id string) string { return Dir + "/" + id }

// Spec is the content of a pack.json.
type Spec struct {
	PromptPackID string         `json:"prompt_pack_id"`
	Version      string         `json:"version"`
	Template     string         `json:"template"`
	Variables    map[string]any `json:"variables"`
	Providers    []string       `json:"providers"`
	Models       []string       `json:"models"`
	MaxTokens    int64          `json:"max_tokens"`
	Description  string         `json:"description,omitempty"`

	vars *schema.Schema
}

var packSchema = sync.OnceValues(func() (*schema.Schema, error) {
	return schema.NewCompiler(schemas.FS, schemas.BaseURL).Compile(SchemaName)
})

// Parse checks b as a pack.json: one JSON object, valid against
// schemas/prompt_pack.schema.json, no provider or model listed twice, a
// template name other than pack.json, and a variables schema that package
// schema compiles (every keyword enforced, $ref only inside it). It does
// not check the id against a directory; callers do (see CheckDir).
func Parse(b []byte) (*Spec, error) {
	if len(b) > MaxPackBytes {
		return nil, invalid("", "%d bytes; a pack.json holds at most %d", len(b), MaxPackBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, invalid("", "not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("", "more than one JSON value")
	}
	s, err := packSchema()
	if err != nil {
		return nil, err
	}
	if probs := s.Validate(v); len(probs) > 0 {
		p := probs[0].Path
		if p == "" {
			p = "/"
		}
		return nil, invalid("", "%s: %s (schema %s)", p, probs[0].Message, SchemaName)
	}
	var sp Spec
	dec = json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sp); err != nil {
		return nil, invalid("", "%v", err)
	}
	if sp.Template == PackFile {
		return nil, invalid("", "/template: the template cannot be %s itself", PackFile)
	}
	for _, list := range []struct {
		name string
		vals []string
	}{{"providers", sp.Providers}, {"models", sp.Models}} {
		seen := map[string]bool{}
		for i, x := range list.vals {
			if seen[x] {
				return nil, invalid("", "/%s/%d: %q listed twice", list.name, i, x)
			}
			seen[x] = true
		}
	}
	if sp.vars, err = compileVariables(sp.Variables); err != nil {
		return nil, err
	}
	return &sp, nil
}

// variablesBase is the base URL a variables schema is compiled under: not
// one of the embedded schemas, so a $ref can only point inside it.
const (
	variablesBase = "urn:cp:prompt-variables/"
	variablesName = "variables.schema.json"
)

func compileVariables(m map[string]any) (*schema.Schema, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, invalid("", "/variables: %v", err)
	}
	s, err := schema.CompileDocument(variablesBase, variablesName, b)
	if err != nil {
		return nil, invalid("", "/variables: not a schema the project's validator enforces: %v", err)
	}
	return s, nil
}

// CheckDir checks that sp belongs in the pack directory named dir (its
// last path element): the directory is named after the pack's id.
func (sp *Spec) CheckDir(dir string) error {
	name := dir[strings.LastIndexByte(dir, '/')+1:]
	if name != sp.PromptPackID {
		return invalid(sp.PromptPackID, "%s/%s names prompt_pack_id %s, but its directory is %s: a pack's directory is named after its id",
			dir, PackFile, sp.PromptPackID, name)
	}
	return nil
}

// ParseTemplate parses b as the template named name: UTF-8 text of at most
// MaxTemplateBytes, a Go text/template that parses, with missingkey=error.
func ParseTemplate(name string, b []byte) (*template.Template, error) {
	if len(b) > MaxTemplateBytes {
		return nil, invalid("", "template %s: %d bytes; a template holds at most %d", name, len(b), MaxTemplateBytes)
	}
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return nil, invalid("", "template %s: not UTF-8 text", name)
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, invalid("", "template %s does not parse: %v", name, trimTemplateErr(err))
	}
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		if msg := checkRanges(tt.Root, 0); msg != "" {
			return nil, invalid("", "template %s: %s", name, msg)
		}
	}
	return t, nil
}

// MaxRangeDepth bounds how deeply a template's range actions nest.
const MaxRangeDepth = 3

// checkRanges bounds the work a render can do without writing (output is
// capped by MaxTextBytes, loops that write nothing are not): a range goes
// over a variable's value only (.items, $.a.b, $x), never over a number
// or a function's result ({{range 1000000000}}, {{range len .s}}), and
// ranges nest at most MaxRangeDepth deep, so the iterations are bounded
// by the size of the variables.
func checkRanges(n parse.Node, depth int) string {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return ""
		}
		for _, c := range n.Nodes {
			if msg := checkRanges(c, depth); msg != "" {
				return msg
			}
		}
	case *parse.RangeNode:
		if depth+1 > MaxRangeDepth {
			return fmt.Sprintf("range actions nest more than %d deep", MaxRangeDepth)
		}
		cmds := n.Pipe.Cmds
		if len(cmds) != 1 || len(cmds[0].Args) != 1 {
			return fmt.Sprintf("{{range %s}}: a range goes over a variable's value (.items, $.items, $x), not a function's result", n.Pipe)
		}
		switch cmds[0].Args[0].(type) {
		case *parse.FieldNode, *parse.VariableNode, *parse.ChainNode, *parse.DotNode:
		default:
			return fmt.Sprintf("{{range %s}}: a range goes over a variable's value (.items, $.items, $x), not a number or a function's result", n.Pipe)
		}
		if msg := checkRanges(n.List, depth+1); msg != "" {
			return msg
		}
		return checkRanges(n.ElseList, depth)
	case *parse.IfNode:
		if msg := checkRanges(n.List, depth); msg != "" {
			return msg
		}
		return checkRanges(n.ElseList, depth)
	case *parse.WithNode:
		if msg := checkRanges(n.List, depth); msg != "" {
			return msg
		}
		return checkRanges(n.ElseList, depth)
	case *parse.TemplateNode:
		// {{template "x"}} runs another template of the same file, which
		// is checked on its own; its ranges nest under this one's, so a
		// call from inside a range is refused rather than counted.
		if depth > 0 {
			return fmt.Sprintf("{{template %q}} inside a range: call templates outside range actions", n.Name)
		}
	}
	return ""
}

// trimTemplateErr drops text/template's "template: " prefix.
func trimTemplateErr(err error) string {
	return strings.TrimPrefix(err.Error(), "template: ")
}

// Digest returns the pack digest of a pack whose pack.json hashes to
// packSHA and whose template, named tmplName, hashes to tmplSHA (both
// "sha256:<hex>"): see the package doc.
func Digest(packSHA, tmplName, tmplSHA string) (string, error) {
	ph, ok1 := strings.CutPrefix(packSHA, "sha256:")
	th, ok2 := strings.CutPrefix(tmplSHA, "sha256:")
	if !ok1 || !ok2 || len(ph) != 64 || len(th) != 64 {
		return "", errors.New("prompt: digest of hashes that are not sha256:<hex>")
	}
	if strings.ContainsAny(tmplName, "\\\n/") || tmplName == "" {
		return "", fmt.Errorf("prompt: template name %q cannot be digested", tmplName)
	}
	h := sha256.Sum256([]byte(ph + "  " + PackFile + "\n" + th + "  " + tmplName + "\n"))
	return "sha256:" + hex.EncodeToString(h[:]), nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

func invalid(id, format string, args ...any) *Error {
	return newErr(CodeInvalid, id, "", "", format, args...)
}
