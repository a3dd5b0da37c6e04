package cpv2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/install"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/stage"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/pkgsig"
	"github.com/stretchr/testify/require"
)

// TestRawManifestNeverInstalls: a CPv2 package archived as it is (its own
// manifest.json at the root) and signed by a key the plane trusts for
// packages is refused by cp-install, and by cp-pkg sign: a CPv2 manifest
// reaches install only converted (Stage).
func TestRawManifestNeverInstalls(t *testing.T) {
	ctx := context.Background()
	root, signer := newPlane(t)
	src := filepath.Join(checkout, "packages", "PKG-HANDBOOK-001")
	var paths []string
	require.NoError(t, filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(src, p)
			paths = append(paths, filepath.ToSlash(rel))
		}
		return err
	}))
	var buf bytes.Buffer
	require.NoError(t, archive.Write(&buf, src, paths))
	a := filepath.Join(t.TempDir(), "PKG-HANDBOOK-001.tar.gz")
	require.NoError(t, os.WriteFile(a, buf.Bytes(), 0o644))
	raw, err := os.ReadFile(filepath.Join(src, "manifest.json"))
	require.NoError(t, err)
	ah, mh := sha256.Sum256(buf.Bytes()), sha256.Sum256(raw)
	sig, err := pkgsig.Sign(pkgsig.Statement{PackageID: "PKG-HANDBOOK-001", Version: "1.4.0",
		ManifestHash: "sha256:" + hex.EncodeToString(mh[:]), ArchiveHash: "sha256:" + hex.EncodeToString(ah[:])}, signer)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(a+".sig", sig, 0o644))

	_, err = install.Install(ctx, root, install.Options{Archive: a, Actor: plane.Actor{Name: "test"}})
	var coded interface{ Code() string }
	require.ErrorAs(t, err, &coded)
	require.Equal(t, "MANIFEST_INVALID", coded.Code(), "%v", err)
	_, err = stage.Sign(a, signer, stage.Hashes{})
	require.ErrorAs(t, err, &coded)
	require.Equal(t, "MANIFEST_INVALID", coded.Code(), "%v", err)
	_, err = os.Stat(filepath.Join(root, "docs"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing landed")
}
