package ledger

import "slices"

// ChangedKey is the metadata key under which an entry lists the paths it
// changed (Changed): cp-install's INSTALLED and ROLLED_BACK carry it, so
// that the entries that touched a file are found through the index by its
// path (Query.Changed), whichever package owned it.
const ChangedKey = "changed"

// Changed is the set of paths an operation changed, each relative to its
// tier's root and sorted: files it added, replaced with other bytes or
// mode (or, a rollback, handed to another owner with the same bytes: their
// provenance changed), and removed. Its JSON form is metadata.changed.
type Changed struct {
	Added    []string `json:"added"`
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
}

// Metadata is c as the value of metadata.changed: an entry's metadata
// holds plain JSON values (nil lists become empty ones).
func (c Changed) Metadata() map[string]any {
	orEmpty := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return map[string]any{"added": orEmpty(c.Added), "modified": orEmpty(c.Modified), "removed": orEmpty(c.Removed)}
}

// Paths returns every path c lists: added, then modified, then removed
// (the order the index keys them in).
func (c *Changed) Paths() []string {
	return slices.Concat(c.Added, c.Modified, c.Removed)
}

// Change says what c did to path: "added", "modified", "removed", or ""
// when c does not list it.
func (c *Changed) Change(path string) string {
	switch {
	case slices.Contains(c.Added, path):
		return "added"
	case slices.Contains(c.Modified, path):
		return "modified"
	case slices.Contains(c.Removed, path):
		return "removed"
	}
	return ""
}

// ChangedOf returns the changed set in an entry's metadata. ok is false
// when there is none (an entry written before changed sets were recorded)
// or it is not of Changed's shape (an object whose added, modified and
// removed members, each optional or null, are arrays of strings): such an
// entry is judged as one without it, never as one that changed nothing.
func ChangedOf(md map[string]any) (Changed, bool) {
	v, ok := md[ChangedKey]
	if !ok {
		return Changed{}, false
	}
	return changedOf(v)
}

func changedOf(v any) (Changed, bool) {
	switch c := v.(type) {
	case map[string]any:
		var out Changed
		for k, a := range c {
			var dst *[]string
			switch k {
			case "added":
				dst = &out.Added
			case "modified":
				dst = &out.Modified
			case "removed":
				dst = &out.Removed
			default:
				return Changed{}, false
			}
			switch a := a.(type) {
			case nil:
			case []string:
				*dst = a
			case []any:
				for _, p := range a {
					s, ok := p.(string)
					if !ok {
						return Changed{}, false
					}
					*dst = append(*dst, s)
				}
			default:
				return Changed{}, false
			}
		}
		return out, true
	}
	return Changed{}, false
}
