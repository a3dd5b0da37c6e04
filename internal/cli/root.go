package cli

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
)

// Root returns the HO3 plane root: from --root, else $CONTROL_PLANE, else
// the nearest ancestor of the working directory holding a tier.json whose
// tier is HO3. The result is absolute.
//
// --root may also name a lower tier's directory (ROOT/planes/ho2 or
// ROOT/planes/ho1): Root then still returns ROOT, the HO3 root above it,
// and RootPlane says which tier was named, so a tool maps a tier id to a
// directory from the one true root and never acts on HO1 when HO3 is named.
// A verb that takes no --plane acts on the whole plane: a lower tier's
// directory given to it is refused rather than silently widened.
//
// Every binary refuses a wrong --root here, with one code: NOT_A_PLANE
// (exit 2) for a directory without a tier.json, TIER_INVALID (exit 3) for
// a tier.json that does not parse or check, TIER_MISMATCH (exit 3) for a
// lower tier's tier.json that claims another tier. No plane found at all is a
// usage error (exit 2).
func (c *Call) Root() (string, error) {
	if c.root != "" {
		return c.root, nil
	}
	dir, from := c.rootArg, "--root"
	if dir == "" {
		dir, from = c.Env.Root, "$CONTROL_PLANE"
	}
	if dir != "" {
		root, id, err := resolveRoot(dir, from)
		if err != nil {
			return "", err
		}
		if id != "ho3" && !c.takesPlane() {
			return "", Usagef("%s %s is the %s tier of the plane at %s; %s %s acts on the whole plane", from, dir,
				strings.ToUpper(id), root, c.Tool.Name, c.Verb.Name).
				WithHint("give --root %s", root)
		}
		c.root, c.rootPlane = root, id
		return root, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", Errorf(ExitUnavailable, "IO_ERROR", "working directory: %v", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isHO3(filepath.Join(d, "tier.json")) {
			c.root, c.rootPlane = d, "ho3"
			return d, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return "", Usagef("no plane: give --root DIR, set CONTROL_PLANE, or run inside a plane").
		WithHint("create one with cp-install bootstrap --root DIR")
}

// RootPlane returns the id of the tier ("ho3", "ho2" or "ho1") whose
// directory --root named, after a successful Root: the tier a tool acts on
// when the request names none. A root found by searching is "ho3".
func (c *Call) RootPlane() string {
	if c.rootPlane == "" {
		return "ho3"
	}
	return c.rootPlane
}

// takesPlane reports whether the verb lets a request name a tier (a
// "plane" flag), so that a lower tier's directory as --root means that tier.
func (c *Call) takesPlane() bool {
	if c.Verb == nil {
		return false
	}
	for _, f := range c.Verb.Flags {
		if f.Name == "plane" {
			return true
		}
	}
	return false
}

// resolveRoot finds the HO3 root of dir, a plane's or a tier's directory,
// and the id of the tier dir is.
func resolveRoot(dir, from string) (root, id string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", Usagef("%s %s: %v", from, dir, err)
	}
	notPlane := func(why string) error {
		return Errorf(ExitUsage, "NOT_A_PLANE", "%s %s is not a plane: %s", from, dir, why).
			WithHint("give the directory cp-install bootstrap created, or create one with cp-install bootstrap --root DIR")
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", notPlane("no such directory")
	case err != nil:
		return "", "", Errorf(ExitUnavailable, "IO_ERROR", "%s %s: %v", from, dir, errors.Unwrap(err))
	case !st.IsDir():
		return "", "", notPlane("not a directory")
	}
	t, err := plane.ReadTier(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", notPlane("no tier.json")
	case err != nil:
		var coded interface{ Code() string }
		if errors.As(err, &coded) { // TIER_INVALID, exit 3: the file is not a tier.json
			return "", "", Errorf(ExitInvalid, coded.Code(), "%s %s: invalid tier.json: %v", from, dir, tierReason(err))
		}
		return "", "", Errorf(ExitUnavailable, "IO_ERROR", "%s %s: reading tier.json: %v", from, dir, tierReason(err))
	}
	// A lower tier lives at ROOT/planes/<id>, its HO3 root two levels up
	// (through symlinks, if the name given is one). Where it lives decides
	// which tier it is: a tier.json there that claims another tier (an HO1
	// worker's edit claiming HO3) is refused, never believed.
	for _, p := range []string{abs, evalSymlinks(abs)} {
		id := filepath.Base(p)
		if p == "" || (id != "ho2" && id != "ho1") || filepath.Base(filepath.Dir(p)) != "planes" {
			continue
		}
		if up := filepath.Dir(filepath.Dir(p)); isHO3(filepath.Join(up, "tier.json")) {
			if t.Tier != strings.ToUpper(id) {
				return "", "", Errorf(ExitInvalid, "TIER_MISMATCH", "%s %s: its tier.json says %s, but it is planes/%s of the plane at %s", from, dir, t.Tier, id, up)
			}
			return up, id, nil
		}
	}
	if t.Tier == "HO3" {
		return abs, "ho3", nil
	}
	return "", "", notPlane("its tier.json says " + t.Tier + ", but it is not planes/" + strings.ToLower(t.Tier) + " of an HO3 plane")
}

func evalSymlinks(p string) string {
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return ""
	}
	return resolved
}

// tierReason drops the path that plane.ReadTier's message starts with:
// the caller's message names the directory already.
func tierReason(err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, "tier.json: "); ok {
		return after
	}
	return msg
}

// RootArg returns --root as given (or $CONTROL_PLANE), without resolving or
// searching: for commands such as bootstrap that create the plane.
func (c *Call) RootArg() string {
	if c.rootArg != "" {
		return c.rootArg
	}
	return c.Env.Root
}

func isHO3(path string) bool {
	b, err := regfile.ReadNoFollow(path) // never a FIFO: the search must not hang
	if err != nil {
		return false
	}
	var t struct {
		Tier string `json:"tier"`
	}
	return json.Unmarshal(b, &t) == nil && t.Tier == "HO3"
}
