package archive

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxElemBytes caps one path element, whatever Limits.MaxNameBytes says:
// it is NAME_MAX on common filesystems.
const maxElemBytes = 255

// reserved lists the plane paths a package may never target, as first path
// elements, in folded form.
var reserved = []string{
	"ledger", "installed", "registries", "versions",
	"packages_store", "_staging", "_journal", "planes", "tier.json",
}

// checkName validates a member name and returns it without the trailing
// slash a directory name may carry.
func checkName(name string, isDir bool, maxBytes int) (string, *UnsafeError) {
	switch {
	case name == "":
		return "", unsafeErr("unclean_name", name, "empty name")
	case len(name) > maxBytes:
		return "", unsafeErr("name_too_long", name, "name is %d bytes, limit %d", len(name), maxBytes)
	case strings.IndexByte(name, 0) >= 0:
		return "", unsafeErr("unclean_name", name, "name contains a NUL byte")
	case !utf8.ValidString(name):
		return "", unsafeErr("bad_char", name, "name is not valid UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return "", unsafeErr("bad_char", name, "name contains control character %U", r)
		}
	}
	switch {
	case strings.Contains(name, `\`):
		return "", unsafeErr("absolute_name", name, "name contains a backslash")
	case name[0] == '/':
		return "", unsafeErr("absolute_name", name, "name is absolute")
	case len(name) >= 2 && name[1] == ':' && isASCIILetter(name[0]):
		return "", unsafeErr("absolute_name", name, "name starts with a drive letter")
	}
	clean := name
	if isDir {
		clean = strings.TrimSuffix(name, "/")
	}
	for _, elem := range strings.Split(clean, "/") {
		if elem == ".." {
			return "", unsafeErr("dot_dot", name, "name has a .. element")
		}
		if len(elem) > maxElemBytes {
			return "", unsafeErr("name_too_long", name, "path element is %d bytes, limit %d", len(elem), maxElemBytes)
		}
	}
	if clean == "" || clean == "." || path.Clean(clean) != clean {
		return "", unsafeErr("unclean_name", name, "name is not a clean relative path")
	}
	return clean, nil
}

func isASCIILetter(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// checkReserved refuses a clean name whose first element is a plane path.
func checkReserved(name string) *UnsafeError {
	first, _, _ := strings.Cut(name, "/")
	for _, r := range reserved {
		if strings.EqualFold(first, r) {
			return unsafeErr("reserved_target", name, "packages may not target %s", r)
		}
	}
	return nil
}

// Fold maps s to a key such that Fold(a) == Fold(b) exactly when
// strings.EqualFold(a, b), for valid UTF-8: each rune becomes the smallest
// rune of its Unicode simple-folding orbit. [Key] builds on it to compare
// member names (and manifest asset paths) for collisions.
func Fold(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// Key maps a name to the key under which names collide when they are
// extracted: Key(a) == Key(b) when a and b are equal under Unicode simple
// case folding ([Fold]) or canonically equivalent (the same NFC form, as
// "é" written precomposed, U+00E9, and as "e" + U+0301). Case-insensitive
// file systems fold case, and some (APFS, HFS+) also normalise, so such
// twins would land on one file: names are compared by Key wherever a
// collision is refused (members of one archive, assets of one manifest,
// files owned across packages). It decomposes (NFD) before folding, so that
// the case of a base letter folds whatever marks follow it.
func Key(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return Fold(norm.NFD.String(s))
		}
	}
	return Fold(s)
}

// node is a path seen in an archive, keyed by its folded form.
type node struct {
	name     string // exact name as first seen
	dir      bool   // directory, explicit or implied by a longer name
	explicit bool   // named by a member of its own
}

// nameSet detects duplicate names, case-fold and normalisation collisions
// (see [Key]), and files used as directories.
type nameSet map[string]node

// add records a clean member name, refusing it if it clashes with one
// already recorded.
func (s nameSet) add(name string, isDir bool) *UnsafeError {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		parent := name[:i]
		k := Key(parent)
		n, ok := s[k]
		switch {
		case !ok:
			s[k] = node{name: parent, dir: true}
		case !n.dir:
			return unsafeErr("case_fold_collision", name, "%q is a file, so it cannot be a directory", n.name)
		case n.name != parent:
			return unsafeErr("case_fold_collision", name, "directory %q collides with %q when case-folded or normalised", parent, n.name)
		}
	}
	k := Key(name)
	n, ok := s[k]
	switch {
	case !ok:
		s[k] = node{name: name, dir: isDir, explicit: true}
		return nil
	case n.name == name && n.explicit:
		return unsafeErr("duplicate_name", name, "name appears more than once")
	case n.name != name:
		return unsafeErr("case_fold_collision", name, "collides with %q when case-folded or normalised", n.name)
	case !isDir:
		return unsafeErr("case_fold_collision", name, "%q is a directory, so it cannot be a file", n.name)
	}
	// An explicit directory entry for a directory already implied.
	n.explicit = true
	s[k] = n
	return nil
}
