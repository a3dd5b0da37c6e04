package installcmd

import (
	"testing"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/clitest"
	"github.com/control-plane/cp/internal/pkgcmd"
)

// TestRun holds cp-install's verbs to their contract in-process, without
// building the binary; testdata/script holds the end-to-end cases.
func TestRun(t *testing.T) {
	clitest.RunCases(t, Run, []clitest.Case{
		{Name: "a key to trust", Run: pkgcmd.Run, Args: []string{"keygen", "--name", "ops", "--out", "$DIR"}},
		{Name: "bootstrap", Args: []string{"bootstrap", "--root", "$DIR/plane", "--trust-key", "$DIR/ops.pub"},
			Stdout: []string{`"kernel_id":"PKG-KERNEL-001"`, `"trusted_keys":["ops"]`}},
		{Name: "bootstrap leaves a plane as it is", Args: []string{"bootstrap", "--root", "$DIR/plane"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"PLANE_EXISTS"`}},
		{Name: "versions", Args: []string{"versions", "--root", "$DIR/plane"}, Stdout: []string{`"status":"ok"`}},
		{Name: "checkpoint", Args: []string{"checkpoint", "--root", "$DIR/plane", "--label", "first"},
			Stdout: []string{`"version_id":`}},
		{Name: "a version id that is none", Args: []string{"rollback", "--root", "$DIR/plane", "--version-id", "nope"},
			Exit: cli.ExitUsage, Stderr: []string{"--version-id: does not match pattern"}},
		{Name: "recover with nothing to recover", Args: []string{"recover", "--root", "$DIR/plane"}, Stdout: []string{`"status":"ok"`}},
		{Name: "install needs an archive", Args: []string{"--root", "$DIR/plane"}, Exit: cli.ExitUsage},
		{Name: "trust remove of a key not trusted", Args: []string{"trust", "remove", "nobody", "--root", "$DIR/plane"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"KEY_NOT_TRUSTED"`}},
		{Name: "a lower tier is not the whole plane", Args: []string{"versions", "--root", "$DIR/plane/planes/ho1"}, Exit: cli.ExitUsage,
			Stderr: []string{"acts on the whole plane"}},
	})
}
