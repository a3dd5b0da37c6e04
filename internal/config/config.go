// Package config reads the plane's operator configuration (DESIGN.md §4):
// config/governance.json, config/providers.json, config/router_policy.json
// and config/policy.cedar. These files are governed but not kernel: they
// arrive only in a package of type config, which the operator stages, signs
// and installs like any other, so a change passes the gates, is recorded
// and can be rolled back.
//
// Each loader returns the active value and its Source: the package that
// installed the file, its path and its hash; or, when the file is absent
// and no installed package owns it, the built-in default (Source.Package
// ""). Anything else fails closed, never falling back to the default: a
// file present but owned by no package, one whose bytes differ from what
// its package installed, a missing file that a package owns, a symlink
// where a file or config/ should be, an unreadable registry, or content
// that does not validate (Validate) is an *Error.
//
// Validate is also what the package gates run on a config package's
// assets before anything is installed (internal/gate), so what a loader
// accepts and what an install accepts are one rule.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/control-plane/cp/internal/auth"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/control-plane/cp/internal/llm/price"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/schemas"
)

// The operator configuration files, by plane-relative path.
const (
	GovernancePath   = "config/governance.json"
	ProvidersPath    = "config/providers.json"
	RouterPolicyPath = "config/router_policy.json"
	PolicyPath       = "config/policy.cedar"
)

// Paths lists every operator configuration file, sorted: the only assets a
// config package may hold, and files no other package may hold.
var Paths = []string{GovernancePath, PolicyPath, ProvidersPath, RouterPolicyPath}

// PackageType is the manifest package_type of a config package.
const PackageType = "config"

// MaxFileBytes caps one operator configuration file.
const MaxFileBytes = 1 << 20

// schemaNames are the embedded schemas of the JSON files.
var schemaNames = map[string]string{
	GovernancePath:   "governance.schema.json",
	ProvidersPath:    "providers.schema.json",
	RouterPolicyPath: "router_policy.schema.json",
}

// Source says where an active configuration came from.
type Source struct {
	// Package is the installed package that owns the file; "" means the
	// built-in default is in force.
	Package string `json:"package"`
	// Path is the file's plane-relative path (also for a default: where
	// the file would be).
	Path string `json:"path"`
	// SHA256 is "sha256:" + hex of the bytes in force (the default's
	// bytes, for a default).
	SHA256 string `json:"sha256"`
}

// Default reports whether the built-in default is in force.
func (s Source) Default() bool { return s.Package == "" }

// GovernanceDoc is config/governance.json.
type GovernanceDoc struct {
	// WorkOrders is "optional" or "required".
	WorkOrders string `json:"work_orders"`
}

// WorkOrdersRequired reports whether install, rollback and register need a
// work order.
func (g *GovernanceDoc) WorkOrdersRequired() bool { return g.WorkOrders == "required" }

// ProvidersDoc is config/providers.json.
type ProvidersDoc struct {
	DefaultProvider string     `json:"default_provider"`
	Providers       []Provider `json:"providers"`
	Caps            *Caps      `json:"caps,omitempty"`
}

// Provider is one LLM provider the gateway may call.
type Provider struct {
	ID        string  `json:"id"`
	Type      string  `json:"type"` // anthropic, openai or mock
	BaseURL   string  `json:"base_url,omitempty"`
	APIKeyEnv string  `json:"api_key_env,omitempty"`
	Models    []Model `json:"models"`
}

// Model is one model of a provider and its price: decimal strings in USD
// per million tokens.
type Model struct {
	ID        string `json:"id"`
	InputUSD  string `json:"input_usd_per_mtok"`
	OutputUSD string `json:"output_usd_per_mtok"`
	MaxTokens int64  `json:"max_tokens,omitempty"`
}

// Caps are optional spending caps, in integer micro-USD.
type Caps struct {
	PlaneMicroUSD *int64           `json:"plane_micro_usd,omitempty"`
	Providers     map[string]int64 `json:"providers,omitempty"`
	Subjects      map[string]int64 `json:"subjects,omitempty"`
}

// Provider returns the provider with id, or nil.
func (p *ProvidersDoc) Provider(id string) *Provider {
	for i := range p.Providers {
		if p.Providers[i].ID == id {
			return &p.Providers[i]
		}
	}
	return nil
}

// RouterPolicyDoc is config/router_policy.json.
type RouterPolicyDoc struct {
	Routes       []Route     `json:"routes,omitempty"`
	Deny         []DenyRule  `json:"deny,omitempty"`
	Limits       *Limits     `json:"limits,omitempty"`
	Classifier   *Classifier `json:"classifier,omitempty"`
	DefaultRoute Target      `json:"default_route"`
}

// Target is where a request goes: a handler, a mode and a prompt pack.
type Target struct {
	Handler      string `json:"handler"`
	Mode         string `json:"mode"` // tools_first or llm_assisted
	PromptPackID string `json:"prompt_pack_id,omitempty"`
}

// Route is one ordered rule: When is a gojq boolean expression over the
// request (compiled and vetted by cp-route when it loads the policy).
type Route struct {
	Name                 string   `json:"name,omitempty"`
	When                 string   `json:"when"`
	Handler              string   `json:"handler"`
	Mode                 string   `json:"mode"`
	PromptPackID         string   `json:"prompt_pack_id,omitempty"`
	RequiredCapabilities []string `json:"required_capabilities,omitempty"`
}

// DenyRule refuses the requests its When matches.
type DenyRule struct {
	When   string `json:"when"`
	Reason string `json:"reason"`
}

// Limits are per-session limits.
type Limits struct {
	LLMCallsPerSession *int64 `json:"llm_calls_per_session,omitempty"`
}

// Classifier is the in-process classification of requests no route
// matches.
type Classifier struct {
	PromptPackID string       `json:"prompt_pack_id"`
	Threshold    *json.Number `json:"threshold,omitempty"`
}

// The built-in defaults (DESIGN.md §4): the mock provider, the default
// route only, work orders optional, no extra policies. cp-pkg init-config
// writes exactly these bytes.
var (
	DefaultGovernance = []byte(`{
  "work_orders": "optional"
}
`)
	DefaultProviders = []byte(`{
  "default_provider": "mock",
  "providers": [
    {
      "id": "mock",
      "type": "mock",
      "models": [
        {"id": "mock-1", "input_usd_per_mtok": "0", "output_usd_per_mtok": "0"}
      ]
    }
  ]
}
`)
	DefaultRouterPolicy = []byte(`{
  "routes": [],
  "deny": [],
  "default_route": {"handler": "default", "mode": "tools_first"}
}
`)
	// DefaultPolicy holds no policy: only comments, with an example forbid.
	DefaultPolicy = []byte(`// config/policy.cedar: Cedar forbid policies evaluated after the built-in
// table of DESIGN.md §8. They can only tighten it: a request the table allows
// may be refused here; nothing the table refuses can be allowed. A file that
// does not parse refuses every mutating request (POLICY_INVALID).
//
// This file holds no policy yet. An example, to uncomment and adapt:
//
// forbid (
//   principal,
//   action == Action::"append",
//   resource
// ) when {
//   context.role == "worker" && context.event_type == "DEPLOY"
// };
`)
)

// Defaults returns the default bytes of each operator configuration file,
// by path.
func Defaults() map[string][]byte {
	return map[string][]byte{GovernancePath: DefaultGovernance, ProvidersPath: DefaultProviders,
		RouterPolicyPath: DefaultRouterPolicy, PolicyPath: DefaultPolicy}
}

// Error is an operator configuration file that cannot be used. Its Code is
// CONFIG_INVALID.
type Error struct {
	Path   string // plane-relative path
	Reason string
	// Err is the underlying error, if any (an unreadable file).
	Err error
}

func (e *Error) Error() string { return e.Path + ": " + e.Reason }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Code returns CONFIG_INVALID.
func (e *Error) Code() string { return "CONFIG_INVALID" }

// ErrorDetails names the file.
func (e *Error) ErrorDetails() map[string]any { return map[string]any{"path": e.Path} }

// ErrorHint says how operator configuration changes.
func (e *Error) ErrorHint() string {
	return "operator configuration changes only through a config package: cp-pkg init-config, stage, sign, cp-install install (or cp-install rollback)"
}

func invalid(path, format string, args ...any) *Error {
	return &Error{Path: path, Reason: fmt.Sprintf(format, args...)}
}

var compiled sync.Map // schema name → *schema.Schema

func schemaFor(name string) (*schema.Schema, error) {
	if s, ok := compiled.Load(name); ok {
		return s.(*schema.Schema), nil
	}
	s, err := schema.NewCompiler(schemas.FS, schemas.BaseURL).Compile(name)
	if err != nil {
		return nil, err
	}
	compiled.Store(name, s)
	return s, nil
}

// Validate checks b as the content of the operator configuration file at
// path (one of Paths): JSON files against their schema (with unknown
// fields refused) and the rules a schema cannot say (unique provider ids,
// a default provider that is listed); policy.cedar as UTF-8 text without
// NUL bytes, then as Cedar forbid policies (auth.ParsePolicy). Any other path is an
// error.
func Validate(path string, b []byte) error {
	_, err := parse(path, b)
	return err
}

func parse(path string, b []byte) (any, error) {
	if len(b) > MaxFileBytes {
		return nil, invalid(path, "%d bytes; an operator configuration file holds at most %d", len(b), MaxFileBytes)
	}
	if path == PolicyPath {
		if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
			return nil, invalid(path, "not UTF-8 text")
		}
		// The firewall's own parser judges it (forbid policies only), so
		// a policy that installs is one the firewall loads.
		if err := auth.ParsePolicy(b).Invalid(); err != nil {
			return nil, &Error{Path: path, Reason: err.Error(), Err: err}
		}
		return string(b), nil
	}
	name, ok := schemaNames[path]
	if !ok {
		return nil, invalid(path, "not an operator configuration file (%s)", strings.Join(Paths, ", "))
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, invalid(path, "not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid(path, "more than one JSON value")
	}
	// A providers.json or router_policy.json of the plain shape is valid
	// without its schema, which a gateway or cp-route process would
	// otherwise compile at every call (plainProviders,
	// plainRouterPolicy); any other file is judged by the schema.
	if !(path == ProvidersPath && plainProviders(v) || path == RouterPolicyPath && plainRouterPolicy(v)) {
		s, err := schemaFor(name)
		if err != nil {
			return nil, err
		}
		if probs := s.Validate(v); len(probs) > 0 {
			return nil, invalid(path, "%s: %s (schema %s)", pointer(probs[0].Path), probs[0].Message, name)
		}
	}
	switch path {
	case GovernancePath:
		var d GovernanceDoc
		return &d, strict(path, b, &d)
	case ProvidersPath:
		d, err := providersOf(v)
		if err != nil {
			return nil, invalid(path, "%v", err)
		}
		return d, providerRules(d)
	default:
		if d, err := routerPolicyOf(v); err == nil {
			return d, nil
		}
		// Refused: the strict decode judges, and says why in its own
		// words.
		var d RouterPolicyDoc
		return &d, strict(path, b, &d)
	}
}

func pointer(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// strict decodes b into v, refusing fields v does not know (the schema
// already did; this keeps the types and the schemas from drifting apart).
func strict(path string, b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(path, "%v", err)
	}
	return nil
}

// providerRules are what the providers schema cannot say.
func providerRules(d *ProvidersDoc) error {
	seen := map[string]bool{}
	for i, p := range d.Providers {
		if seen[p.ID] {
			return invalid(ProvidersPath, "/providers/%d: provider id %q listed twice", i, p.ID)
		}
		seen[p.ID] = true
		if p.Type == "mock" && (p.BaseURL != "" || p.APIKeyEnv != "") {
			return invalid(ProvidersPath, "/providers/%d: the mock provider %s calls no server: no base_url, no api_key_env", i, p.ID)
		}
		models := map[string]bool{}
		for j, m := range p.Models {
			if models[m.ID] {
				return invalid(ProvidersPath, "/providers/%d/models/%d: model %q listed twice for provider %s", i, j, m.ID, p.ID)
			}
			models[m.ID] = true
			// The schema's pattern admits only what price.Parse reads; the
			// parser judging too keeps a price that loads one that costs.
			if _, err := price.ParseRates(m.InputUSD, m.OutputUSD); err != nil {
				return invalid(ProvidersPath, "/providers/%d/models/%d: %v", i, j, err)
			}
		}
	}
	if !seen[d.DefaultProvider] {
		return invalid(ProvidersPath, "/default_provider: %q is not a listed provider", d.DefaultProvider)
	}
	if d.Caps != nil {
		for id := range d.Caps.Providers {
			if !seen[id] {
				return invalid(ProvidersPath, "/caps/providers: %q is not a listed provider", id)
			}
		}
	}
	return nil
}

// Governance returns the plane's config/governance.json in force at root.
func Governance(root string) (*GovernanceDoc, Source, error) {
	v, src, err := load(root, GovernancePath)
	if err != nil {
		return nil, src, err
	}
	return v.(*GovernanceDoc), src, nil
}

// Providers returns the plane's config/providers.json in force at root.
func Providers(root string) (*ProvidersDoc, Source, error) {
	v, src, err := load(root, ProvidersPath)
	if err != nil {
		return nil, src, err
	}
	return v.(*ProvidersDoc), src, nil
}

// RouterPolicy returns the plane's config/router_policy.json in force at
// root.
func RouterPolicy(root string) (*RouterPolicyDoc, Source, error) {
	v, src, err := load(root, RouterPolicyPath)
	if err != nil {
		return nil, src, err
	}
	return v.(*RouterPolicyDoc), src, nil
}

// RouterPolicyFile is RouterPolicy with the bytes in force (the default's
// bytes, for a default): what cp-route hashes and keeps, so that a decision
// can be replayed under the policy it was made under.
func RouterPolicyFile(root string) (*RouterPolicyDoc, []byte, Source, error) {
	return RouterPolicyFileOwned(root, nil)
}

// RouterPolicyFileOwned is RouterPolicyFile judged by owners, the rows of
// the ownership registry the caller read already (nil: read them): a
// process that reads the registry for other files too reads it once.
func RouterPolicyFileOwned(root string, owners []registry.Row) (*RouterPolicyDoc, []byte, Source, error) {
	v, b, src, err := loadFile(root, RouterPolicyPath, owners)
	if err != nil {
		return nil, nil, src, err
	}
	return v.(*RouterPolicyDoc), b, src, nil
}

// ParseRouterPolicy validates b as config/router_policy.json (Validate)
// and returns it decoded: a policy kept by its hash is read back this way.
func ParseRouterPolicy(b []byte) (*RouterPolicyDoc, error) {
	v, err := parse(RouterPolicyPath, b)
	if err != nil {
		return nil, err
	}
	return v.(*RouterPolicyDoc), nil
}

// PolicyText returns the text of the plane's config/policy.cedar in force
// at root (the default holds comments only: no policy).
func PolicyText(root string) (string, Source, error) {
	v, src, err := load(root, PolicyPath)
	if err != nil {
		return "", src, err
	}
	return v.(string), src, nil
}

// load reads the file at rel under root as the ownership registry says it
// must be (see the package comment).
func load(root, rel string) (any, Source, error) {
	v, _, src, err := loadFile(root, rel, nil)
	return v, src, err
}

// loadFile is load with the bytes in force, judged by owners (nil: the
// ownership registry, read now).
func loadFile(root, rel string, owners []registry.Row) (any, []byte, Source, error) {
	src := Source{Path: rel}
	// config/ itself must be a directory of the plane, not a link to one
	// elsewhere.
	dir := filepath.Join(root, "config")
	if fi, err := os.Lstat(dir); err == nil && !fi.IsDir() {
		return nil, nil, src, invalid(rel, "config is a %s, not a directory of the plane", kind(fi.Mode()))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, src, &Error{Path: rel, Reason: "cannot read: " + err.Error(), Err: err}
	}
	var owner registry.Row
	if owners == nil {
		// One file's owner: its row alone is looked up and checked, not
		// every row of the registry (a gateway reads providers.json at
		// every call).
		var err error
		if owner, err = registry.Lookup(root, registry.Ownership, rel); err != nil {
			return nil, nil, src, err
		}
	} else if i := slices.IndexFunc(owners, func(r registry.Row) bool { return r["path"] == rel }); i >= 0 {
		owner = owners[i]
	}
	b, err := regfile.ReadNoFollow(filepath.Join(root, filepath.FromSlash(rel)))
	switch {
	case errors.Is(err, fs.ErrNotExist) && owner == nil:
		b = Defaults()[rel]
		v, err := parse(rel, b)
		if err != nil {
			return nil, nil, src, err // a default that does not validate: a bug the tests catch
		}
		src.SHA256 = sum(b)
		return v, b, src, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, src, invalid(rel, "owned by %s but missing", owner["package_id"])
	case err != nil:
		return nil, nil, src, &Error{Path: rel, Reason: "cannot read: " + err.Error(), Err: err}
	}
	src.SHA256 = sum(b)
	if owner == nil {
		return nil, nil, src, invalid(rel, "present but owned by no installed package; operator configuration is installed by a config package")
	}
	if owner["package_id"] == plane.KernelID {
		// Kernels before issue 10 shipped a placeholder router policy; the
		// next kernel release (any cp-install trust change) drops it.
		return nil, nil, src, invalid(rel, "owned by the kernel %s, which owns no operator configuration: an older kernel's placeholder, which the next kernel release (cp-install trust add|remove) removes", plane.KernelID)
	}
	if owner["sha256"] != src.SHA256 {
		return nil, nil, src, invalid(rel, "changed since %s installed it (holds %s, installed %s)", owner["package_id"], src.SHA256, owner["sha256"])
	}
	v, err := parse(rel, b)
	if err != nil {
		return nil, nil, src, err
	}
	src.Package = owner["package_id"]
	return v, b, src, nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsRegular():
		return "file"
	}
	return "special file"
}
