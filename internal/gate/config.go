package gate

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/route"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/manifest"
)

// Operator configuration (DESIGN.md §4) is governed but not kernel: only a
// package of type config may hold config/governance.json, providers.json,
// router_policy.json or policy.cedar, and a config package holds nothing
// else. The rule is judged in G0A, so cp-pkg preflight and stage, cp-gate
// check (an archive, or every installed package) and cp-install all refuse
// the same packages with CONFIG_ASSET_INVALID; preflight then validates a
// config package's files (configContent) before anything is written.

// configRule adds CONFIG_ASSET_INVALID to r for an asset of m that breaks
// the rule above. Paths are compared as a case-insensitive, normalising file
// system would (archive.Key): config/Governance.json is operator
// configuration there, so a standard package may not hold it, and a config
// package must spell each path exactly. The kernel is judged by G0K and
// built by the tool, never here.
func configRule(r *Result, m *manifest.Manifest) {
	if m.PackageType == "kernel" {
		return
	}
	operator := map[string]string{}
	for _, p := range config.Paths {
		operator[archive.Key(p)] = p
	}
	for _, a := range m.Assets {
		want, isOperator := operator[archive.Key(a.Path)]
		switch {
		case m.PackageType != config.PackageType && isOperator:
			r.fail("CONFIG_ASSET_INVALID", a.Path, "%s is operator configuration: only a package of type config may hold it (this one is type %s)", want, m.PackageType)
		case m.PackageType != config.PackageType:
		case a.Path == plane.GovernedRootsFile || a.Path == trust.File:
			r.fail("CONFIG_ASSET_INVALID", a.Path, "%s belongs to the kernel and changes only through cp-install trust; a config package holds only %s",
				a.Path, strings.Join(config.Paths, ", "))
		case !isOperator || want != a.Path:
			r.fail("CONFIG_ASSET_INVALID", a.Path, "a config package holds only %s; %s is not one of them", strings.Join(config.Paths, ", "), a.Path)
		}
	}
}

// configContent validates the files of a config package whose declaration
// G0A passed (config.Validate), adding CONFIG_ASSET_INVALID to g0a for each
// that does not validate. The bytes judged are read from the source again
// and must hash to what G0A judged, so the bytes validated are the bytes
// installed.
func configContent(root string, g0a *Result, m *manifest.Manifest, src Source, files map[string]File) error {
	if m.PackageType != config.PackageType || !g0a.Passed {
		return nil
	}
	want := map[string]bool{}
	for _, a := range m.Assets {
		want[a.Path] = true
	}
	got, err := sourceBytes(src, want, config.MaxFileBytes)
	if err != nil {
		return err
	}
	for _, a := range m.Assets {
		b, ok := got[a.Path]
		switch {
		case !ok:
			g0a.fail("CONFIG_ASSET_INVALID", a.Path, "could not be read back from the package to be validated")
		case plane.SHA256(b) != files[a.Path].SHA256:
			g0a.fail("CONFIG_ASSET_INVALID", a.Path, "changed while it was being checked")
		default:
			if err := config.Validate(a.Path, b); err != nil {
				var ce *config.Error
				if !errors.As(err, &ce) {
					return err
				}
				g0a.fail("CONFIG_ASSET_INVALID", a.Path, "%s", ce.Reason)
			} else if a.Path == config.RouterPolicyPath {
				if msg, err := routerPolicy(root, b); err != nil {
					return err
				} else if msg != "" {
					g0a.fail("CONFIG_ASSET_INVALID", a.Path, "%s", msg)
				}
			}
		}
	}
	g0a.done("")
	return nil
}

// routerPolicy judges a router policy as cp-route loads it (route.Compile),
// so that a policy cp-route would refuse does not install: an expression
// that does not parse or compile, imports a module or reads outside the
// request (route.Forbidden), and, on a plane, a route to a handler no
// installed package provides or that lacks a capability the route requires.
// It returns the refusal's message, or an error that is not a finding (the
// plane's registries unreadable). A capabilities.json changed since install
// is a finding too: the handlers cannot be judged (fail closed). cp-route
// judges the policy again when it loads it (the handlers may change since).
func routerPolicy(root string, b []byte) (string, error) {
	var hs map[string]route.Handler // nil: no plane to judge handlers against
	if root != "" {
		var err error
		if hs, err = route.InstalledHandlers(root); err != nil {
			var re *route.Error
			if errors.As(err, &re) {
				return "the router policy's handlers cannot be judged: " + re.Error() + " (" + re.Code() + ")", nil
			}
			return "", err
		}
	}
	if _, err := route.Compile(b, hs); err != nil {
		var re *route.Error
		if !errors.As(err, &re) {
			return "", err
		}
		return re.Error() + " (" + re.Code() + ")", nil
	}
	return "", nil
}

// sourceBytes reads the files named in want from src: a source directory
// through os.Root, or the archive (already judged safe by archive.Scan or
// Extract) read once more. A file larger than limit is read no further
// than the cap (and so will not hash as judged).
func sourceBytes(src Source, want map[string]bool, limit int64) (map[string][]byte, error) {
	out := map[string][]byte{}
	dir := src.Dir
	if src.Tree != nil && src.Archive == "" {
		dir = src.Tree.dir
	}
	if src.Archive == "" {
		if dir == "" {
			return out, nil // nothing to read back: every file is reported unreadable
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		for p := range want {
			f, err := regfile.OpenIn(root, p)
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(io.LimitReader(f, limit+1))
			f.Close()
			if err != nil {
				return nil, err
			}
			out[p] = b
		}
		return out, nil
	}
	f, err := regfile.Open(src.Archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg || !want[hdr.Name] {
			continue
		}
		if _, dup := out[hdr.Name]; dup {
			return nil, &archive.UnsafeError{Rule: "duplicate", Name: hdr.Name, Message: "a member appears twice"}
		}
		b, err := io.ReadAll(io.LimitReader(tr, limit+1))
		if err != nil {
			return nil, err
		}
		out[hdr.Name] = b
	}
}
