package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// Root returns the plane root: --root, else $CONTROL_PLANE, else the nearest
// ancestor of the working directory holding a tier.json whose tier is HO3.
// The result is absolute. No plane found is a usage error (exit 2).
func (c *Call) Root() (string, error) {
	if c.root != "" {
		return c.root, nil
	}
	dir := c.rootArg
	if dir == "" {
		dir = os.Getenv("CONTROL_PLANE")
	}
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", Usagef("--root %s: %v", dir, err)
		}
		c.root = abs
		return abs, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", Errorf(ExitUnavailable, "IO_ERROR", "working directory: %v", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isHO3(filepath.Join(d, "tier.json")) {
			c.root = d
			return d, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return "", Usagef("no plane: give --root DIR, set CONTROL_PLANE, or run inside a plane").
		WithHint("create one with cp-install bootstrap --root DIR")
}

// RootArg returns --root as given (or $CONTROL_PLANE), without resolving or
// searching: for commands such as bootstrap that create the plane.
func (c *Call) RootArg() string {
	if c.rootArg != "" {
		return c.rootArg
	}
	return os.Getenv("CONTROL_PLANE")
}

func isHO3(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var t struct {
		Tier string `json:"tier"`
	}
	return json.Unmarshal(b, &t) == nil && t.Tier == "HO3"
}
