// Package manifest parses, hashes and writes package manifests: the
// manifest.json at the root of every package archive (DESIGN.md §6).
//
// # Format
//
// A manifest is one JSON object, described by
// schemas/package_manifest.schema.json (draft 2020-12). Every member but
// metadata is required, and no other member is allowed, here or in an asset:
//
//	schema_version  "1.2", or "1.3" when an asset carries a mode
//	package_id      ^PKG-[A-Z0-9-]+$ (at most 128 characters)
//	version         semver 2.0.0 without a leading "v": MAJOR.MINOR.PATCH with
//	                an optional pre-release ("1.2.0", "2.0.0-rc.1"); build
//	                metadata ("+build") is refused, so that two different
//	                version strings never compare equal
//	package_type    standard | agent | kernel | framework | spec | prompt_pack | config
//	spec_id         ^SPEC-[A-Z0-9-]+$
//	framework_id    ^FMWK-[A-Z0-9-]+$
//	plane_id        ho3 | ho2 | ho1
//	dependencies    array of dependency strings (below), possibly empty
//	assets          array of {path, sha256, size, classification[, mode]}, possibly empty
//	metadata        optional object, free-form
//
// An asset's path is its install path relative to the plane root; sha256 is
// "sha256:" and 64 lowercase hex digits of the file's bytes; size is its
// length in bytes (an integer from 0 to 2^53-1); classification is one of
// framework, spec, schema, policy, library, script, module, prompt, config,
// test or doc; mode (schema_version 1.3 only) is "0444" or "0555", the
// mode the file is installed with (absent: "0444"). The hash covers mode
// only when present, so a 1.2 manifest keeps its hash.
//
// Parse reads strictly: the text must be one JSON value without duplicate
// keys (pkg/jcs.Decode), valid against the schema, and it must pass the
// rules the schema cannot state:
//
//   - an asset path is a clean relative slash path: not empty, no leading
//     "/" or drive letter ("C:"), no backslash, no trailing slash, no "."
//     or ".." element, no empty element ("a//b"), no control character;
//   - no two asset paths are equal, equal under Unicode simple case
//     folding (A.md and a.md) or canonically equivalent (NFC and NFD
//     spellings of é), and no asset is a directory prefix of another (lib
//     and lib/x.py), compared the same way (archive.Key), because such a
//     pair cannot be extracted onto a case-insensitive or normalising file
//     system;
//   - manifest.json itself (in any letter case) is not an asset;
//   - every dependency parses (see ParseDependency), no package depends on
//     itself, and no package is named by two dependencies (join the
//     constraints with "," instead).
//
// Every refusal is an *Error with code MANIFEST_INVALID and
// the JSON pointer of the offending value.
//
// # Dependencies
//
// A dependency is a package id, optionally followed by "@" and a
// constraint; a constraint is one or more clauses joined by "," (no spaces),
// all of which must hold:
//
//	dependency = package-id [ "@" clause *( "," clause ) ]
//	clause     = op version
//	op         = ">=" | "<=" | ">" | "<" | "=" | "^" | "~"
//
// ">=", "<=", ">", "<" and "=" compare by semver precedence, so pre-releases
// sit below their release: "<2.0.0" admits 2.0.0-rc.1 (write "<2.0.0-0" to
// exclude it). "^V" admits versions from V up to the next major version
// (next minor while the major is 0, next patch while major and minor are 0)
// and "~V" up to the next minor version; neither admits a pre-release of that
// upper bound. So "PKG-A@^1.2.0" admits 1.2.0 and every later 1.x version
// (pre-releases such as 1.3.0-rc.1 included) but neither 2.0.0-rc.1 nor
// 2.0.0, while "PKG-A@>=1.0.0,<2.0.0" also admits 2.0.0-rc.1. A dependency
// without a constraint admits any version.
//
// # Hash
//
// The manifest hash, which signatures and receipts name, is "sha256:" and
// the lowercase hex SHA-256 of the RFC 8785 canonical JSON (pkg/jcs) of the
// manifest object without its metadata member. Hash computes it from the
// typed fields, and it equals the hash of the parsed text with metadata
// removed: whitespace, member order, string escapes, number spelling (a size
// of 1.0 or 1e0 is 1) and metadata do not change it; any other change does.
// metadata is therefore not signed: nothing may trust it.
//
// # Compatibility
//
// The format is versioned by schema_version. Readers accept exactly the
// version they know and refuse any other value and any unknown member, so
// a field added later comes with a new schema_version, and an older reader
// refuses such a manifest rather than ignore part of it. The hash rule is
// fixed for all schema versions: changing it would change the identity of
// every package already signed.
package manifest
