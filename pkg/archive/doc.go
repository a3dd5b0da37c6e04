// Package archive reads and writes Control Plane package archives.
//
// A package archive is a gzip-compressed tar stream. [Write] produces the
// canonical form: members sorted by path bytes, regular files only (no
// directory entries), mtime 0, uid/gid 0, empty uname/gname, mode 0644 (0755
// when the source file has any execute bit), PAX-capable USTAR headers, and a
// gzip header with zero mtime, no name, OS byte 255 and a fixed compression
// level (1, best speed: staging a 50 MB package must not be dominated by
// compression, and package text still shrinks well). The archive is flat: manifest.json sits at
// the root and every asset sits at its install path (frameworks/FMWK-001.md,
// lib/x.py, ...).
//
// [Extract] writes only inside the caller's empty staging directory,
// through an [os.Root], and empties it again on any error; [Scan] runs the
// same checks and writes nothing. Both accept archives fail-closed. Every
// refusal is an
// [*UnsafeError] whose Code is ARCHIVE_UNSAFE and whose Rule names the rule
// broken:
//
//	not_gzip             the input does not start with a valid gzip header
//	truncated            the gzip or tar stream ends early, including a member
//	                     whose data is shorter than its header claims and a
//	                     tar stream without its end-of-archive marker
//	corrupt_gzip         bad deflate data or gzip checksum
//	corrupt_tar          malformed tar header
//	trailing_data        non-zero bytes after the tar end-of-archive marker,
//	                     or any byte after the (single) gzip member
//	symlink              symbolic link member
//	hardlink             hard link member
//	device               character or block device member
//	fifo                 named pipe member
//	sparse               GNU sparse member (old GNU 'S' or PAX GNU.sparse.*)
//	unsupported_type     any other type flag (PAX global header, contiguous
//	                     file, unknown flags)
//	absolute_name        name starting with '/', a drive letter ("C:"), or
//	                     containing a backslash
//	dot_dot              name with a ".." element
//	unclean_name         empty name, NUL byte, "./x", "a//b", "a/./b", "."
//	                     or a regular file with a trailing slash
//	bad_char             invalid UTF-8 or a control character in a name
//	name_too_long        name longer than Limits.MaxNameBytes, or a path
//	                     element longer than 255 bytes
//	duplicate_name       the same name twice
//	case_fold_collision  two names equal under Unicode simple case folding
//	                     (A.md and a.md), or a file used as a directory
//	                     prefix of another name (file lib and file lib/x),
//	                     compared case-insensitively
//	reserved_target      first path element is a plane path: ledger,
//	                     installed, registries, versions, packages_store,
//	                     _staging, planes or tier.json (case-insensitive)
//	too_many_files       more members than Limits.MaxFiles
//	file_too_large       a file larger than Limits.MaxFileBytes
//	archive_too_large    file data larger than Limits.MaxTotalBytes in total,
//	                     or a decompressed stream larger than the stream cap
//	size_mismatch        a directory with a data size, or file data that
//	                     disagrees with its header
//	manifest_missing     no regular file named exactly manifest.json at the
//	                     root (so a non-flat archive, PKG-X/manifest.json, is
//	                     refused)
//	manifest_not_regular manifest.json is a directory
//	manifest_too_large   manifest.json larger than Limits.MaxManifestBytes
//
// Default limits (see [DefaultLimits]): 20,000 members (files and
// directories), 1 GiB of file data in total, 256 MiB per file, 255-byte
// names, 16 MiB manifest. All caps count decompressed bytes, and a member's
// declared size is checked against them before any of its data is read. The
// decompressed tar stream as a whole (headers, padding and trailing zeros
// included) is capped at MaxTotalBytes + 4 KiB per allowed member + 1 MiB,
// and reading stops as soon as that is passed, so a decompression bomb costs
// at most that much work. There is no compression-ratio rule: the absolute
// caps already bound the work, and a ratio rule would refuse honest,
// highly compressible text.
//
// Trailing data: zero bytes after the end-of-archive marker (tar record
// padding) are accepted; anything else inside the gzip stream, a second gzip
// member, or any byte after the gzip member is refused as trailing_data.
//
// Names are not Unicode-normalized: two names that differ only in
// normalization form (NFC vs NFD) are both accepted.
package archive
