package registry

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A check returns what is wrong with a field value, or "".
type check func(v string) string

// checks holds the value rules of each table (see the package doc), by file
// and column. A Table not listed here gets the structural rules only.
var checks = map[string]map[string]check{
	Frameworks.File: {
		"framework_id": token, "title": text, "version": token, "status": oneOf(StatusActive, StatusDeprecated, StatusRetired, StatusDraft),
		"path": planePath, "sha256": hash, "registered_at": timestamp, "registered_by": token,
	},
	Specs.File: {
		"spec_id": token, "framework_id": token, "title": text, "version": token, "status": oneOf(StatusActive, StatusDeprecated, StatusRetired, StatusDraft),
		"path": planePath, "sha256": hash, "registered_at": timestamp, "registered_by": token,
	},
	Prompts.File: {
		"prompt_pack_id": token, "package_id": packageID, "path": planePath, "sha256": hash, "version": token,
		"status": oneOf(StatusActive, StatusDeprecated, StatusRetired), "registered_at": timestamp,
	},
	Ownership.File: {
		"path": planePath, "package_id": packageID, "sha256": hash, "size": size, "classification": token, "installed_at": timestamp,
	},
	Packages.File: {
		"package_id": packageID, "version": token, "manifest_hash": hash, "archive_sha256": hash,
		"status": oneOf(StatusInstalled, StatusFailed), "signature": signature, "installed_at": timestamp,
		"actor": token, "work_order_id": optional(token),
	},
}

// checkRow checks every field of row, which holds exactly t's columns, and
// returns the first column at fault (in column order) and the problem.
func checkRow(t Table, row Row) (col, problem string) {
	cs := checks[t.File]
	for _, c := range t.Columns {
		v := row[c]
		if p := field(v); p != "" {
			return c, p
		}
		if c == t.Key && v == "" {
			return c, "empty primary key"
		}
		if cs == nil && c == "path" {
			if p := planePath(v); p != "" {
				return c, p
			}
		}
		if f := cs[c]; f != nil {
			if p := f(v); p != "" {
				return c, p
			}
		}
	}
	return "", ""
}

// field is the rule for every field: it must survive a CSV round trip and a
// line-oriented reader unchanged.
func field(v string) string {
	if !utf8.ValidString(v) {
		return "not valid UTF-8"
	}
	if i := strings.IndexAny(v, "\x00\r\n"); i >= 0 {
		return fmt.Sprintf("contains %q (NUL, CR and LF are not allowed in a field)", v[i])
	}
	return ""
}

func text(string) string { return "" }

// token is an id, a version or an actor: non-empty, no white space.
func token(v string) string {
	if v == "" {
		return "empty"
	}
	if strings.IndexFunc(v, unicode.IsSpace) >= 0 {
		return fmt.Sprintf("%q contains white space", v)
	}
	return ""
}

func optional(c check) check {
	return func(v string) string {
		if v == "" {
			return ""
		}
		return c(v)
	}
}

func oneOf(allowed ...string) check {
	return func(v string) string {
		for _, a := range allowed {
			if v == a {
				return ""
			}
		}
		return fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

// packageID is DESIGN.md §6's ^PKG-[A-Z0-9-]+$.
func packageID(v string) string {
	rest, ok := strings.CutPrefix(v, "PKG-")
	if !ok || rest == "" || strings.IndexFunc(rest, func(r rune) bool {
		return !('A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-')
	}) >= 0 {
		return fmt.Sprintf("%q is not a package id (PKG-[A-Z0-9-]+)", v)
	}
	return ""
}

// planePath accepts a clean slash path relative to the plane root, on any
// operating system: a path that is absolute anywhere, or climbs out, is
// never written where a later reader might join it to the root.
func planePath(v string) string {
	switch {
	case v == "":
		return "empty path"
	case strings.HasPrefix(v, "/"):
		return fmt.Sprintf("%q is absolute: paths are relative to the plane root", v)
	case strings.Contains(v, `\`):
		return fmt.Sprintf("%q contains a backslash: paths use slashes", v)
	case len(v) >= 2 && v[1] == ':' && ('a' <= v[0]|0x20 && v[0]|0x20 <= 'z'):
		return fmt.Sprintf("%q starts with a drive letter: paths are relative to the plane root", v)
	case v == "..", strings.HasPrefix(v, "../"), strings.HasSuffix(v, "/.."), strings.Contains(v, "/../"):
		return fmt.Sprintf("%q has a .. element", v)
	case v == "." || !fs.ValidPath(v):
		return fmt.Sprintf("%q is not a clean relative path", v)
	}
	return ""
}

// hash is "sha256:" and 64 lower-case hex digits.
func hash(v string) string {
	hex, ok := strings.CutPrefix(v, "sha256:")
	if !ok || len(hex) != 64 || strings.IndexFunc(hex, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f')
	}) >= 0 {
		return fmt.Sprintf("%q is not sha256:<64 lower-case hex digits>", v)
	}
	return ""
}

// timestamp accepts RFC 3339 in UTC exactly as time.RFC3339Nano formats it,
// so that a parsed time formats back to the same bytes.
func timestamp(v string) string {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.UTC().Format(time.RFC3339Nano) != v {
		return fmt.Sprintf("%q is not an RFC 3339 UTC time like 2026-01-02T03:04:05Z", v)
	}
	return ""
}

func size(v string) string {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
		return fmt.Sprintf("%q is not a non-negative decimal integer", v)
	}
	return ""
}

// signature is "waived" or "signed:" and a note key name (non-empty, no
// white space, no '+').
func signature(v string) string {
	if v == SignatureWaived {
		return ""
	}
	name, ok := strings.CutPrefix(v, "signed:")
	if !ok || name == "" || strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || r == '+' }) >= 0 {
		return fmt.Sprintf("%q is neither signed:<key name> nor %s", v, SignatureWaived)
	}
	return ""
}
