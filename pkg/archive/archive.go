package archive

import (
	"fmt"
	"io/fs"
	"math"
)

// Default limits; see [DefaultLimits].
const (
	DefaultMaxFiles         = 20_000
	DefaultMaxTotalBytes    = 1 << 30   // 1 GiB
	DefaultMaxFileBytes     = 256 << 20 // 256 MiB
	DefaultMaxNameBytes     = 255
	DefaultMaxManifestBytes = 16 << 20 // 16 MiB
)

// Slack added to the decompressed-stream cap: per allowed member (headers,
// PAX records, padding) and once for the end-of-archive marker and record
// padding.
const (
	streamSlackPerMember = 4 << 10
	streamSlack          = 1 << 20
)

// ManifestName is the name of the manifest member at the archive root.
const ManifestName = "manifest.json"

// Code is the error code of every [UnsafeError].
const Code = "ARCHIVE_UNSAFE"

// Limits caps what an archive may hold. Zero (or negative) fields mean the
// default from [DefaultLimits].
type Limits struct {
	// MaxFiles caps the number of members, files and directories alike.
	MaxFiles int
	// MaxTotalBytes caps the sum of the sizes of all regular files.
	MaxTotalBytes int64
	// MaxFileBytes caps the size of any one regular file.
	MaxFileBytes int64
	// MaxNameBytes caps the length in bytes of a member name.
	MaxNameBytes int
	// MaxManifestBytes caps the size of manifest.json, which is held in memory.
	MaxManifestBytes int64
}

// DefaultLimits returns the default limits: 20,000 members, 1 GiB of file
// data in total, 256 MiB per file, 255-byte names and a 16 MiB manifest.
func DefaultLimits() Limits {
	return Limits{
		MaxFiles:         DefaultMaxFiles,
		MaxTotalBytes:    DefaultMaxTotalBytes,
		MaxFileBytes:     DefaultMaxFileBytes,
		MaxNameBytes:     DefaultMaxNameBytes,
		MaxManifestBytes: DefaultMaxManifestBytes,
	}
}

// withDefaults returns l with every non-positive field set to its default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFiles <= 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = d.MaxTotalBytes
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = d.MaxFileBytes
	}
	if l.MaxNameBytes <= 0 {
		l.MaxNameBytes = d.MaxNameBytes
	}
	if l.MaxManifestBytes <= 0 {
		l.MaxManifestBytes = d.MaxManifestBytes
	}
	return l
}

// streamCap is the most decompressed bytes Extract and Scan will read.
func (l Limits) streamCap() int64 {
	c := l.MaxTotalBytes
	if int64(l.MaxFiles) > (math.MaxInt64-streamSlack-c)/streamSlackPerMember {
		return math.MaxInt64 - 1
	}
	return c + int64(l.MaxFiles)*streamSlackPerMember + streamSlack
}

// File is one regular file extracted from an archive.
type File struct {
	// Path is the clean slash-separated path relative to the archive root.
	Path string
	// Size is the length of the file in bytes.
	Size int64
	// SHA256 is the lowercase hex SHA-256 of the file's bytes.
	SHA256 string
	// Mode is the normalized permission: 0755 if the header had any
	// execute bit, else 0644.
	Mode fs.FileMode
}

// Contents is what [Extract] or [Scan] found.
type Contents struct {
	// Files lists every regular file, manifest.json included, sorted by Path.
	Files []File
	// Manifest holds the bytes of the root manifest.json.
	Manifest []byte
	// ArchiveSHA256 is the lowercase hex SHA-256 of the compressed input.
	ArchiveSHA256 string
}

// UnsafeError is a refusal of an archive.
type UnsafeError struct {
	// Rule is the stable snake_case name of the rule broken, e.g. "symlink".
	Rule string
	// Name is the member concerned, or "" when the archive as a whole is.
	Name string
	// Message explains the refusal.
	Message string
}

// Error returns "ARCHIVE_UNSAFE: rule: "name": message".
func (e *UnsafeError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("%s: %s: %s", Code, e.Rule, e.Message)
	}
	return fmt.Sprintf("%s: %s: %q: %s", Code, e.Rule, e.Name, e.Message)
}

// Code returns "ARCHIVE_UNSAFE".
func (e *UnsafeError) Code() string { return Code }

// ErrorDetails gives the rule and member name to the JSON error, so callers
// need not parse the message.
func (e *UnsafeError) ErrorDetails() map[string]any {
	return map[string]any{"rule": e.Rule, "name": e.Name}
}

func unsafeErr(rule, name, format string, args ...any) *UnsafeError {
	return &UnsafeError{Rule: rule, Name: name, Message: fmt.Sprintf(format, args...)}
}
