package route

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/schemas"
)

// CapabilitiesSchema is the schema a package's capabilities.json passes.
const CapabilitiesSchema = "package_capabilities.schema.json"

// IsCapabilitiesPath reports whether a plane-relative path is a module's
// capabilities document: modules/<name>/capabilities.json.
func IsCapabilitiesPath(p string) bool {
	dir, file := path.Split(p)
	return file == "capabilities.json" && strings.HasPrefix(dir, "modules/") && strings.Count(dir, "/") == 2 && dir != "modules//"
}

var capSchema = sync.OnceValues(func() (*schema.Schema, error) {
	return schema.NewCompiler(schemas.FS, schemas.BaseURL).Compile(CapabilitiesSchema)
})

// capDoc is the part of a capabilities.json cp-route reads.
type capDoc struct {
	PackageID string `json:"package_id"`
	Handlers  []struct {
		Handler      string   `json:"handler"`
		Capabilities []string `json:"capabilities"`
		Description  string   `json:"description"`
	} `json:"handlers"`
}

// ParseCapabilities validates b as the capabilities.json at rel, owned by
// package pkg, and returns the handlers it declares. A document that does
// not validate, names another package, or declares a handler twice is a
// CAPABILITIES_INVALID error.
func ParseCapabilities(rel, pkg string, b []byte) ([]Handler, error) {
	bad := func(format string, args ...any) error {
		return &Error{code: "CAPABILITIES_INVALID", msg: rel + ": " + fmt.Sprintf(format, args...),
			hint:    "fix the package's capabilities.json (schemas/" + CapabilitiesSchema + "), stage, sign and install it again",
			details: map[string]any{"path": rel, "package_id": pkg}}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, bad("not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("more than one JSON value")
	}
	s, err := capSchema()
	if err != nil {
		return nil, err
	}
	if probs := s.Validate(v); len(probs) > 0 {
		p := probs[0].Path
		if p == "" {
			p = "/"
		}
		return nil, bad("%s: %s", p, probs[0].Message)
	}
	var d capDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, bad("%v", err)
	}
	if d.PackageID != "" && d.PackageID != pkg {
		return nil, bad("says package_id %s, but %s installed it", d.PackageID, pkg)
	}
	var hs []Handler
	for _, h := range d.Handlers {
		if slices.ContainsFunc(hs, func(x Handler) bool { return x.Name == h.Handler }) {
			return nil, bad("declares handler %q twice", h.Handler)
		}
		caps := slices.Clone(h.Capabilities)
		if caps == nil {
			caps = []string{}
		}
		slices.Sort(caps)
		hs = append(hs, Handler{Name: h.Handler, PackageID: pkg, Path: rel, Capabilities: slices.Compact(caps), Description: h.Description})
	}
	return hs, nil
}

// InstalledHandlers returns the handlers the installed packages of the
// plane at root provide, by name: every modules/<name>/capabilities.json
// the ownership registry lists, read without following links and checked
// against the hash its package installed (a file changed since, missing,
// or invalid is CAPABILITIES_INVALID: fail closed, never "no handlers").
// A handler two packages declare is refused too: a route must name one.
// The built-in DefaultHandler is not listed here.
func InstalledHandlers(root string) (map[string]Handler, error) {
	rows, err := registry.Read(root, registry.Ownership)
	if err != nil {
		return nil, err
	}
	return HandlersOwned(root, rows)
}

// HandlersOwned is InstalledHandlers over rows, the ownership registry the
// caller read already.
func HandlersOwned(root string, rows []registry.Row) (map[string]Handler, error) {
	out := map[string]Handler{}
	for _, r := range rows {
		rel, pkg := r["path"], r["package_id"]
		if !IsCapabilitiesPath(rel) {
			continue
		}
		bad := &Error{code: "CAPABILITIES_INVALID", hint: "cp-gate check names what changed; reinstall the package (cp-install install --force) or roll back",
			details: map[string]any{"path": rel, "package_id": pkg}}
		b, err := regfile.ReadNoFollow(filepath.Join(root, filepath.FromSlash(rel)))
		if errors.Is(err, fs.ErrNotExist) {
			bad.msg = fmt.Sprintf("%s: owned by %s but missing", rel, pkg)
			return nil, bad
		} else if err != nil {
			bad.msg = fmt.Sprintf("%s: cannot read: %v", rel, err)
			return nil, bad
		}
		if h := sha256.Sum256(b); "sha256:"+hex.EncodeToString(h[:]) != r["sha256"] {
			bad.msg = fmt.Sprintf("%s: changed since %s installed it", rel, pkg)
			return nil, bad
		}
		hs, err := ParseCapabilities(rel, pkg, b)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			if h.Name == DefaultHandler {
				return nil, &Error{code: "CAPABILITIES_INVALID", msg: fmt.Sprintf("%s: declares handler %q, which is built in", rel, h.Name),
					hint: "rename the handler", details: map[string]any{"path": rel, "package_id": pkg, "handler": h.Name}}
			}
			if o, dup := out[h.Name]; dup {
				return nil, &Error{code: "CAPABILITIES_INVALID", msg: fmt.Sprintf("handler %q is declared by %s (%s) and %s (%s): a route must name one", h.Name, o.PackageID, o.Path, pkg, rel),
					hint: "rename the handler in one of the packages", details: map[string]any{"handler": h.Name, "packages": []string{o.PackageID, pkg}}}
			}
			out[h.Name] = h
		}
	}
	return out, nil
}

// SortedHandlers returns hs sorted by name.
func SortedHandlers(hs map[string]Handler) []Handler {
	out := make([]Handler, 0, len(hs))
	for _, h := range hs {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
