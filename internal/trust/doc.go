// Package trust reads and writes the plane's trusted keys by purpose
// (DESIGN.md §6): which note verifier keys may sign packages, checkpoints,
// work-order approvals and tokens.
//
// # Trusted keys
//
// The keys trusted, each for its purposes, are listed in
// <root>/config/trusted_keys.json, described by
// schemas/trusted_keys.schema.json:
//
//	{"keys": [
//	  {"name": "ops", "key": "ops+1a2b3c4d+AQ…", "purposes": ["package", "checkpoint"],
//	   "added_at": "2025-01-31T12:00:00Z"}
//	]}
//
// name must equal the key's own name (the text before its first "+"),
// which is what signature lines carry; key is a note verifier key;
// purposes is a non-empty set of package, checkpoint and work_order: a key
// verifies only what it is listed for; added_at, optional, is an RFC 3339
// time. Unknown members are refused, as is a key (name and key hash) or a
// purpose listed twice; two keys may share a name (during a rotation). A
// missing file trusts no key; a file that cannot be read or parsed is an
// error, never an empty list. CONTROL_PLANE_VERIFY_KEY (a key or the path
// of a file holding one, see pkg/keys) adds one key trusted for every
// purpose.
//
// # Compatibility
//
// trusted_keys.json refuses unknown members and purposes, so a file written
// for a later version fails closed here rather than being half understood.
package trust
