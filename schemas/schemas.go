// Package schemas embeds the JSON Schemas (draft 2020-12) of every request,
// response and file format. A schema's $id is BaseURL + its file name, so
// schemas reference each other by relative file name.
package schemas

import "embed"

// BaseURL is the prefix of every schema's $id.
const BaseURL = "https://control-plane.dev/schemas/"

// FS holds the schema files, named <tool>.<verb>.<request|response>.json or
// <format>.schema.json.
//
//go:embed *.json
var FS embed.FS
