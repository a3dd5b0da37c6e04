package llm

import (
	"errors"
	"strings"

	"github.com/control-plane/cp/internal/plane"
)

// BlobDir is where bodies are kept, content-addressed, when a call asks
// for them (store_bodies): blobs/sha256/<hex>, relative to the plane root.
const BlobDir = "blobs/sha256"

// BlobPath is the path of the blob holding a body whose hash is h
// (sha256:<hex>), relative to the plane root.
func BlobPath(h string) string { return BlobDir + "/" + strings.TrimPrefix(h, "sha256:") }

// writeBlobs stores the system prompt (if any), the prompt and the
// response under blobs/ (plane.PutBlob: content-addressed, written once,
// read-only, checked against its name when already there), and returns
// their paths by role.
func writeBlobs(root, system, prompt, response string) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, b := range []struct{ role, text string }{{"system", system}, {"prompt", prompt}, {"response", response}} {
		if b.role == "system" && b.text == "" {
			continue
		}
		h, err := plane.PutBlob(root, []byte(b.text))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[b.role] = BlobPath(h)
	}
	return out, errors.Join(errs...)
}
