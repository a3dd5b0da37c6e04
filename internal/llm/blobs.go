package llm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
)

// BlobDir is where bodies are kept, content-addressed, when a call asks
// for them (store_bodies): blobs/sha256/<hex>, relative to the plane root.
const BlobDir = "blobs/sha256"

// BlobPath is the path of the blob holding a body whose hash is h
// (sha256:<hex>), relative to the plane root.
func BlobPath(h string) string { return BlobDir + "/" + strings.TrimPrefix(h, "sha256:") }

// writeBlobs stores the system prompt (if any), the prompt and the
// response under blobs/, and returns their paths by role.
func writeBlobs(root, system, prompt, response string) (map[string]string, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := map[string]string{}
	var errs []error
	for _, b := range []struct{ role, text string }{{"system", system}, {"prompt", prompt}, {"response", response}} {
		if b.role == "system" && b.text == "" {
			continue
		}
		p, err := putBlob(r, b.text)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[b.role] = p
	}
	return out, errors.Join(errs...)
}

// putBlob writes text as the blob of its hash, inside the plane through
// os.Root (no link followed out of it): to a temporary file, synced, made
// 0644, then renamed into place, so a blob is whole or absent. A blob
// already there is the same bytes (its name is their hash): kept.
func putBlob(r *os.Root, text string) (string, error) {
	name := BlobPath(sha(text))
	if _, err := r.Lstat(name); err == nil {
		return name, nil
	}
	if err := r.MkdirAll(BlobDir, 0o755); err != nil {
		return "", err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := BlobDir + "/.tmp-" + hex.EncodeToString(rnd[:])
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	_, werr := f.WriteString(text)
	if werr == nil {
		werr = f.Chmod(0o644)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = r.Rename(tmp, name)
	}
	if werr != nil {
		_ = r.Remove(tmp)
		return "", werr
	}
	if d, err := r.Open(BlobDir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return name, nil
}
