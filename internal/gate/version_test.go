package gate

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/manifest"
	"github.com/stretchr/testify/require"
)

// The version rule against the kernel installed by bootstrap (1.0.0).
func TestVersion(t *testing.T) {
	root := filepath.Join(t.TempDir(), "plane")
	res, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	for _, tc := range []struct {
		version, hash, code string
		passed              bool
	}{
		{"1.0.0", res.ManifestHash, "ALREADY_INSTALLED", true},
		{"1.0.0", "sha256:" + "00" + res.ManifestHash[9:], "VERSION_CONFLICT", false},
		{"0.9.0", res.ManifestHash, "VERSION_DOWNGRADE", false},
		{"1.0.1", res.ManifestHash, "KERNEL_PARITY", false}, // issue 10: a kernel upgrade from an archive breaks parity
	} {
		m := &manifest.Manifest{PackageID: plane.KernelID, Version: tc.version}
		r, err := Version(root, m, tc.hash)
		require.NoError(t, err)
		require.Equal(t, tc.passed, r.Passed, tc.version)
		var codes []string
		for _, f := range append(r.Errors, r.Warnings...) {
			codes = append(codes, f.Code)
		}
		if tc.code != "" {
			require.Equal(t, []string{tc.code}, codes, tc.version)
		} else {
			require.Empty(t, codes)
		}
	}
	r, err := Version(root, &manifest.Manifest{PackageID: "PKG-NEW", Version: "0.1.0"}, "sha256:x")
	require.NoError(t, err)
	require.True(t, r.Passed)

	// A kernel from an archive (a new release of the kernel, or another
	// package of type kernel) would change HO3's kernel alone: refused.
	for _, m := range []*manifest.Manifest{
		{PackageID: plane.KernelID, Version: "1.0.1", PackageType: "kernel"},
		{PackageID: plane.KernelID, Version: "2.0.0", PackageType: "standard"},
		{PackageID: "PKG-OTHER-001", Version: "1.0.0", PackageType: "kernel"},
	} {
		r, err := Version(root, m, "sha256:"+strings.Repeat("ab", 32))
		require.NoError(t, err)
		require.False(t, r.Passed, m.PackageID)
		require.Equal(t, "KERNEL_PARITY", r.Errors[0].Code, m.PackageID)
	}
}
