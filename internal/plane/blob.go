package plane

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/regfile"
)

// BlobsDir is where content-addressed bodies live under a plane's HO3
// root (DESIGN.md §4): blobs/sha256/<hex>, each written once, read-only,
// named by the SHA-256 of its bytes (a router policy a decision was made
// under, a prompt or a response kept when asked).
const BlobsDir = "blobs"

// BlobPath returns the path of the blob whose hash is "sha256:<hex>" under
// the plane root, or an error for anything else (no path is built from a
// hash that is not one).
func BlobPath(root, hash string) (string, error) {
	hexs, ok := strings.CutPrefix(hash, "sha256:")
	if !ok || len(hexs) != 64 || strings.ToLower(hexs) != hexs {
		return "", fmt.Errorf("plane: %q is not a sha256:<hex> hash", hash)
	}
	if _, err := hex.DecodeString(hexs); err != nil {
		return "", fmt.Errorf("plane: %q is not a sha256:<hex> hash", hash)
	}
	return filepath.Join(root, BlobsDir, "sha256", hexs), nil
}

// PutBlob keeps b under the plane root by its hash, once: a blob already
// there is left as it is, after checking it holds b. It returns the hash.
// The blob directories must be directories of the plane, not links.
func PutBlob(root string, b []byte) (string, error) {
	h := sha256.Sum256(b)
	hash := "sha256:" + hex.EncodeToString(h[:])
	p, _ := BlobPath(root, hash)
	if _, err := ReadBlob(root, hash); err == nil {
		return hash, nil // kept already: one read, no write or fsync
	}
	for _, d := range []string{filepath.Join(root, BlobsDir), filepath.Dir(p)} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		if fi, err := os.Lstat(d); err != nil {
			return "", err
		} else if !fi.IsDir() {
			return "", refuse("NOT_REGULAR", "%s is not a directory of the plane", d)
		}
	}
	err := atomicfile.Publish(p, b, 0o444)
	if errors.Is(err, fs.ErrExist) {
		_, err = ReadBlob(root, hash)
	}
	if err != nil {
		return "", err
	}
	return hash, nil
}

// ReadBlob returns the bytes of the blob hash under the plane root, read
// without following a link and checked against the hash (a blob that does
// not hash to its name is BLOB_MISMATCH).
func ReadBlob(root, hash string) ([]byte, error) {
	p, err := BlobPath(root, hash)
	if err != nil {
		return nil, err
	}
	b, err := regfile.ReadNoFollow(p)
	if err != nil {
		return nil, err
	}
	if h := sha256.Sum256(b); "sha256:"+hex.EncodeToString(h[:]) != hash {
		return nil, refuse("BLOB_MISMATCH", "%s does not hash to its name: the blob was changed", filepath.Join(BlobsDir, "sha256", filepath.Base(p)))
	}
	return b, nil
}
