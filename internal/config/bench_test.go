package config_test

import (
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/pkgcmd"
)

// BenchmarkPolicyText is what reading config/policy.cedar costs a process
// that checks a request against it: the ownership registry, the file, its
// hash and the UTF-8 check (Cedar parsing not included), with a config
// package installed.
func BenchmarkPolicyText(b *testing.B) {
	root, key := newPlane(b)
	src := filepath.Join(b.TempDir(), "opconf")
	run(b, pkgcmd.Run, "init-config", "PKG-CONFIG-001", "--output", src)
	publish(b, root, key, "PKG-CONFIG-001", src)
	for b.Loop() {
		if _, src, err := config.PolicyText(root); err != nil || src.Package == "" {
			b.Fatal(err, src)
		}
	}
}
