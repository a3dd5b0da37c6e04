package ledgercmd

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
)

// checkSession refuses a session id that is not one.
func checkSession(id string) error {
	if !plane.ValidSessionID(id) {
		return cli.Invalidf("INVALID_INPUT", "--session %q is not a session id (SES-YYYYMMDD-<8 hex digits>)", id)
	}
	return nil
}

// scope is what a cp-ledger request acts on, for the firewall (cli.Verb's
// Scope): the plane, tier and session of the ledger it names. A ledger
// named by path is judged by where the file really is: a path into a
// plane, through symbolic links or not, acts on the tier whose directory
// holds it (an HO3 ledger named as ledger/governance.jsonl is HO3's, a file
// under planes/ho1/sessions/S/ is session S's); a path outside every plane
// acts on none.
//
// A path's scope is found once per run (a stream names the same file
// line after line): w keeps it.
func (w *writers) scope(c *cli.Call, req cli.Request) (root, tier, session string, err error) {
	if p := req.String("ledger"); p != "" {
		w.mu.Lock()
		sc, ok := w.scopes[p]
		w.mu.Unlock()
		if ok {
			return sc[0], sc[1], sc[2], nil
		}
		if root, tier, session, err = pathScope(p); err != nil {
			return "", "", "", err
		}
		w.mu.Lock()
		if w.scopes == nil {
			w.scopes = map[string][3]string{}
		}
		w.scopes[p] = [3]string{root, tier, session}
		w.mu.Unlock()
		return root, tier, session, nil
	}
	session = req.String("session_id")
	if session != "" {
		if err := checkSession(session); err != nil {
			return "", "", "", err
		}
	}
	if root, err = c.Root(); err != nil {
		if session != "" || req.Has("plane") {
			return "", "", "", err
		}
		// No plane: the verb acts on none (a proof piped to verify), or
		// meets this error itself.
		return "", "", "", nil
	}
	tier = req.String("plane")
	switch {
	case tier == "" && session != "":
		tier = "ho1"
	case tier == "":
		tier = c.RootPlane()
	}
	return root, tier, session, nil
}

// pathScope finds the plane a file path belongs to: the nearest directory
// above the file's real location (symbolic links resolved, as far as the
// path exists) that holds a tier.json.
func pathScope(p string) (root, tier, session string, err error) {
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// The store refuses a ledger named through a link (LEDGER_LINKED);
		// the firewall judges it by where it leads all the same.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
	}
	dir, err := realParent(p)
	if err != nil {
		return "", "", "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, "tier.json")); err == nil {
			return tierScope(d, dir)
		} else if !errors.Is(err, fs.ErrNotExist) {
			// Fail closed: a tier.json we cannot look at may be a plane's.
			return "", "", "", cli.Errorf(cli.ExitUnavailable, "IO_ERROR", "--ledger %s: %v", p, err)
		}
		if filepath.Dir(d) == d {
			return "", "", "", nil // outside every plane
		}
	}
}

// realParent is the directory the file p is in, resolved as the kernel
// will open p: never cleaned first, since "L/.." is not "" when L is a
// link (planes/ho1/L/../x is HO3's x when L points at planes).
func realParent(p string) (string, error) {
	raw := p
	if !filepath.IsAbs(raw) {
		wd, err := os.Getwd()
		if err != nil {
			return "", cli.Errorf(cli.ExitUnavailable, "IO_ERROR", "working directory: %v", err)
		}
		raw = wd + string(filepath.Separator) + raw
	}
	dir, err := realDir(raw[:strings.LastIndexByte(raw, filepath.Separator)+1])
	if err != nil {
		return "", cli.Errorf(cli.ExitUnavailable, "IO_ERROR", "--ledger %s: %v", p, err)
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
		return "", "", "", cli.Errorf(cli.ExitUnavailable, "PLANE_INVALID", "reading tier: %v", err)
	}
	tier = strings.ToLower(tj.Tier)
	if id := filepath.Base(t); (id == "ho2" || id == "ho1") && filepath.Base(filepath.Dir(t)) == "planes" && isHO3(filepath.Dir(filepath.Dir(t))) && id != tier {
		// Where it lives decides which tier it is: a tier.json that claims
		// another is refused, never believed.
		return "", "", "", cli.Errorf(cli.ExitInvalid, "TIER_MISMATCH", "%s: its tier.json says %s, but it is planes/%s", t, tj.Tier, id)
	}
	switch tier {
	case "ho3":
		root = t
	case "ho2", "ho1":
		root = filepath.Dir(filepath.Dir(t))
		if filepath.Base(t) != tier || filepath.Base(filepath.Dir(t)) != "planes" || !isHO3(root) {
			return "", "", "", cli.Errorf(cli.ExitInvalid, "TIER_MISMATCH", "%s: its tier.json says %s, but it is not planes/%s of an HO3 plane", t, tj.Tier, tier)
		}
	default:
		return "", "", "", cli.Errorf(cli.ExitInvalid, "TIER_INVALID", "%s: tier %q", t, tj.Tier)
	}
	if rel, err := filepath.Rel(t, dir); err == nil && tier == "ho1" {
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) >= 2 && parts[0] == "sessions" {
			session = parts[1]
		}
	}
	return root, tier, session, nil
}

func isHO3(dir string) bool {
	t, err := plane.ReadTier(dir)
	return err == nil && t.Tier == "HO3"
}
