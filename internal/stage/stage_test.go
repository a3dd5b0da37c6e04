package stage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	for p, want := range map[string]string{
		"config/x.json": "config", "lib/tools/x.sh": "library", "modules/a/capabilities.json": "module",
		"governed_prompts/A/system.md": "prompt", "README.md": "doc", "config": "doc", "other/x": "doc",
	} {
		require.Equal(t, want, Classify(p), p)
	}
}

// TestCheckOutOfPlane: an archive goes outside the plane, or to _staging/
// or packages_store/; never elsewhere in it, and never through a symlink.
func TestCheckOutOfPlane(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "plane")
	require.NoError(t, os.MkdirAll(filepath.Join(root, "config"), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(root, "config"), filepath.Join(dir, "link")))
	tests := []struct {
		out  string
		code string // "" allowed
	}{
		{filepath.Join(dir, "dist"), ""},
		{filepath.Join(root, "_staging"), ""},
		{filepath.Join(root, "packages_store", "x"), ""},
		{filepath.Join(root, "config"), "USAGE"},
		{filepath.Join(root, "lib", "new"), "USAGE"},
		{filepath.Join(dir, "link"), "USAGE"},
		{filepath.Join(root, "_staging", "..", "config"), "USAGE"},
	}
	for _, tt := range tests {
		_, err := checkOutOfPlane(root, tt.out)
		if tt.code == "" {
			require.NoError(t, err, tt.out)
			continue
		}
		e, ok := err.(*Error)
		require.True(t, ok, "%s: %v", tt.out, err)
		require.Equal(t, tt.code, e.Code(), tt.out)
		require.Equal(t, "USAGE", e.Code())
	}
}
