package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/internal/plane"
)

// PathScope finds the plane a file path belongs to, for a verb whose
// request names a file by path (its Verb.Scope): the nearest directory
// above the file's real location (symbolic links resolved, as far as the
// path exists) that holds a tier.json, as the HO3 root, tier and HO1
// session it acts on; "" for a path outside every plane.
func PathScope(p string) (root, tier, session string, err error) {
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// The store refuses a ledger named through a link (LEDGER_LINKED);
		// the firewall judges it by where it leads all the same.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
	}
	dir, err := RealParent(p)
	if err != nil {
		return "", "", "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, "tier.json")); err == nil {
			return tierScope(d, dir)
		} else if !errors.Is(err, fs.ErrNotExist) {
			// Fail closed: a tier.json we cannot look at may be a plane's.
			return "", "", "", Errorf(ExitUnavailable, "IO_ERROR", "--ledger %s: %v", p, err)
		}
		if filepath.Dir(d) == d {
			return "", "", "", nil // outside every plane
		}
	}
}

// RealParent is the directory the file p is in, resolved as the kernel
// will open p: never cleaned first, since "L/.." is not "" when L is a
// link (planes/ho1/L/../x is HO3's x when L points at planes).
func RealParent(p string) (string, error) {
	raw := p
	if !filepath.IsAbs(raw) {
		wd, err := os.Getwd()
		if err != nil {
			return "", Errorf(ExitUnavailable, "IO_ERROR", "working directory: %v", err)
		}
		raw = wd + string(filepath.Separator) + raw
	}
	dir, err := realDir(raw[:strings.LastIndexByte(raw, filepath.Separator)+1])
	if err != nil {
		return "", Errorf(ExitUnavailable, "IO_ERROR", "--ledger %s: %v", p, err)
	}
	return dir, nil
}

// realDir resolves dir as the kernel would (symbolic links, then ".."),
// or, when the end of it is not made yet (an append creates it), its
// nearest existing ancestor with the names below it.
func realDir(dir string) (string, error) {
	rest := ""
	d := strings.TrimRight(dir, string(filepath.Separator))
	for {
		if d == "" {
			d = string(filepath.Separator)
		}
		r, err := filepath.EvalSymlinks(d)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		i := strings.LastIndexByte(d, filepath.Separator)
		if i < 0 || d == string(filepath.Separator) {
			return "", err
		}
		switch base := d[i+1:]; base {
		case "..", ".":
			// ".." after a name that does not exist: the open fails too.
			return "", err
		default:
			rest = filepath.Join(base, rest)
		}
		d = strings.TrimRight(d[:i], string(filepath.Separator))
	}
}

// tierScope is the scope of a file in dir under the tier directory t.
func tierScope(t, dir string) (root, tier, session string, err error) {
	tj, err := plane.ReadTier(t)
	var coded interface{ Code() string }
	if errors.As(err, &coded) {
		return "", "", "", err // TIER_INVALID
	} else if err != nil {
		return "", "", "", Errorf(ExitUnavailable, "PLANE_INVALID", "reading tier: %v", err)
	}
	tier = strings.ToLower(tj.Tier)
	if id := filepath.Base(t); (id == "ho2" || id == "ho1") && filepath.Base(filepath.Dir(t)) == "planes" && isHO3Dir(filepath.Dir(filepath.Dir(t))) && id != tier {
		// Where it lives decides which tier it is: a tier.json that claims
		// another is refused, never believed.
		return "", "", "", Errorf(ExitInvalid, "TIER_MISMATCH", "%s: its tier.json says %s, but it is planes/%s", t, tj.Tier, id)
	}
	switch tier {
	case "ho3":
		root = t
	case "ho2", "ho1":
		root = filepath.Dir(filepath.Dir(t))
		if filepath.Base(t) != tier || filepath.Base(filepath.Dir(t)) != "planes" || !isHO3Dir(root) {
			return "", "", "", Errorf(ExitInvalid, "TIER_MISMATCH", "%s: its tier.json says %s, but it is not planes/%s of an HO3 plane", t, tj.Tier, tier)
		}
	default:
		return "", "", "", Errorf(ExitInvalid, "TIER_INVALID", "%s: tier %q", t, tj.Tier)
	}
	if rel, err := filepath.Rel(t, dir); err == nil && tier == "ho1" {
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) >= 2 && parts[0] == "sessions" {
			session = parts[1]
		}
	}
	return root, tier, session, nil
}

func isHO3Dir(dir string) bool {
	t, err := plane.ReadTier(dir)
	return err == nil && t.Tier == "HO3"
}
