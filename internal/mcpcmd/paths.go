package mcpcmd

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/trust"
)

// CodeOutsidePlane refuses a path argument that leads outside the served
// plane (exit 1).
const CodeOutsidePlane = "MCP_PATH_OUTSIDE_PLANE"

// kind is what a request field holds, for confinement.
type kind int

const (
	// aPath is a file path: a relative one is taken from the plane root
	// and made absolute (the server's working directory is not the
	// caller's), then it must lead inside the plane.
	aPath kind = iota
	// aPlanePath is a path the verb itself reads relative to the plane
	// root: it must lead inside the plane and is passed unchanged.
	aPlanePath
	// aSigner is a signer key (PRIVATE+KEY+...) or a path to one.
	aSigner
	// aVerifier is a verifier key (name+hash+base64) or a path to one.
	aVerifier
	// aTrustKey is "[PURPOSE,...=]PUB", PUB a verifier key or a path.
	aTrustKey
	// aTrustName is aTrustKey, or the name of a trusted key (a word
	// without a slash).
	aTrustName
)

// pathFields are the request fields of each verb ("tool verb") that name a
// file, and how. TestPathFieldsComplete holds this table to the schemas:
// every field whose name or description says it is a path is here or in
// notPaths.
var pathFields = map[string]map[string]kind{
	"cp-ledger append":          {"ledger": aPath},
	"cp-ledger show":            {"ledger": aPath},
	"cp-ledger verify":          {"ledger": aPath, "verify_key": aVerifier, "trusted_checkpoint": aPath, "path": aPlanePath},
	"cp-ledger checkpoint":      {"ledger": aPath, "sign_key": aSigner},
	"cp-ledger prove":           {"ledger": aPath},
	"cp-ledger consistency":     {"ledger": aPath},
	"cp-ledger genesis":         {"ledger": aPath, "parent_ledger": aPath},
	"cp-pkg init":               {"output": aPath},
	"cp-pkg init-agent":         {"output": aPath},
	"cp-pkg init-config":        {"output": aPath},
	"cp-pkg init-prompt-pack":   {"output": aPath},
	"cp-pkg preflight":          {"src": aPath, "archive": aPath},
	"cp-pkg stage":              {"src": aPath, "out": aPath},
	"cp-pkg sign":               {"archive": aPath, "key": aSigner},
	"cp-pkg register-framework": {"src": aPath},
	"cp-pkg register-spec":      {"src": aPath},
	"cp-pkg check-framework":    {"src": aPath},
	"cp-install install":        {"archive": aPath},
	"cp-install trust-add":      {"key": aTrustKey},
	"cp-install trust-remove":   {"key": aTrustName},
	"cp-gate check":             {"archive": aPath},
	"cp-wo create":              {"file": aPath},
	"cp-wo validate":            {"file": aPath},
	"cp-wo approve":             {"key": aSigner},
	"cp-wo start":               {"key": aPath},
	"cp-trace file":             {"path": aPlanePath},
}

// requiredPaths are path fields whose default, when a request leaves them
// out, is the working directory: over MCP that is the server's, outside
// the plane, so the request must name one.
var requiredPaths = map[string][]string{
	"cp-pkg init-config":      {"output"},
	"cp-pkg init-prompt-pack": {"output"},
}

// confine checks (and, for aPath, rewrites) the path fields of req for the
// verb "tool verb", against the plane at root (already real: links
// resolved). Its error is MCP_PATH_OUTSIDE_PLANE, or a usage error.
func confine(root, verb string, req cli.Request) error {
	for _, f := range requiredPaths[verb] {
		if req.String(f) == "" {
			return cli.Usagef("%s: over MCP %s must be given (its default, the working directory, is the server's, outside the plane)", verb, f).
				WithHint("name a directory inside the plane at %s", root)
		}
	}
	for field, k := range pathFields[verb] {
		v, ok := req[field].(string)
		if !ok || v == "" {
			continue // absent, or not a string: the verb's schema judges it
		}
		out, err := confineValue(root, field, v, k)
		if err != nil {
			return err
		}
		req[field] = out
	}
	return nil
}

// confineValue is confine for one field's value.
func confineValue(root, field, v string, k kind) (string, error) {
	switch k {
	case aPlanePath:
		if _, err := inside(root, field, v); err != nil {
			return "", err
		}
		return v, nil
	case aSigner:
		if strings.HasPrefix(strings.TrimSpace(v), "PRIVATE+KEY+") {
			return v, nil
		}
	case aVerifier:
		if isVerifier(v) {
			return v, nil
		}
	case aTrustKey, aTrustName:
		purposes, pub, err := trust.ParseKeySpec(v)
		if err != nil || isVerifier(pub) {
			return v, nil // the verb refuses a bad spec; a key is no path
		}
		if k == aTrustName && !strings.ContainsAny(pub, `/\`) && pub != "." && pub != ".." {
			return v, nil // a trusted key's name
		}
		p, err := inside(root, field, pub)
		if err != nil {
			return "", err
		}
		if purposes != nil {
			return strings.Join(purposes, ",") + "=" + p, nil
		}
		return p, nil
	}
	return inside(root, field, v)
}

func isVerifier(s string) bool {
	_, err := note.NewVerifier(strings.TrimSpace(s))
	return err == nil
}

// inside returns the real location of p (relative: from root), links
// and ".." resolved as the kernel will open it, or MCP_PATH_OUTSIDE_PLANE
// when that is not root or below it. A path whose last element is a link
// that leads nowhere is refused: writing through it would create its
// target, wherever that is.
func inside(root, field, p string) (string, error) {
	refuse := func(why string) error {
		return cli.Errorf(cli.ExitDenied, CodeOutsidePlane, "%s %q %s: a tool call reaches only the plane it is served (%s)", field, p, why, root).
			WithHint("name a path inside %s (relative paths are taken from it)", root)
	}
	if strings.ContainsRune(p, 0) {
		return "", refuse("holds a NUL byte")
	}
	abs := p
	if !filepath.IsAbs(abs) {
		abs = root + string(filepath.Separator) + p
	}
	real, err := realPath(abs)
	if err != nil {
		return "", refuse("cannot be resolved: " + err.Error())
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return "", refuse("leads outside the plane, to " + real)
	}
	return real, nil
}

// realPath resolves abs as the kernel would: the whole path when it
// exists, else its real parent directory (cli.RealParent: links, then
// "..") joined with its last element.
func realPath(abs string) (string, error) {
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	// Any element that is a link leading nowhere (the last, or one the
	// kernel would follow to create what is below it) is refused.
	for i := 1; i <= len(abs); i++ {
		if i < len(abs) && abs[i] != filepath.Separator {
			continue
		}
		if fi, err := os.Lstat(abs[:i]); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if _, err := filepath.EvalSymlinks(abs[:i]); err != nil {
				return "", errors.New("holds a link that leads nowhere")
			}
		}
	}
	dir, err := cli.RealParent(abs)
	if err != nil {
		return "", err
	}
	base := abs[strings.LastIndexByte(abs, filepath.Separator)+1:]
	if base == "" || base == "." || base == ".." {
		return "", errors.New("does not exist")
	}
	return filepath.Join(dir, base), nil
}
