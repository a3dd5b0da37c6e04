package pkgcmd

import (
	"testing"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/clitest"
	"github.com/control-plane/cp/internal/installcmd"
)

const demoFramework = `---
framework_id: FMWK-DEMO-001
title: Demo law
version: 1.0.0
---
- MUST declare every file.
`

const demoSpec = `{"spec_id": "SPEC-DEMO-001", "framework_id": "FMWK-DEMO-001", "title": "Demo tools", "assets": ["lib/demo/**"]}`

// TestRun holds cp-pkg's verbs to their contract in-process, without
// building the binary; testdata/script holds the end-to-end cases.
func TestRun(t *testing.T) {
	root := []string{"--root", "$DIR/plane"}
	with := func(args ...string) []string { return append(args, root...) }
	clitest.RunCases(t, Run, []clitest.Case{
		{Name: "keygen", Args: []string{"keygen", "--name", "ops", "--out", "$DIR"},
			Stdout: []string{`"name":"ops"`, `"public_key_path":"$DIR/ops.pub"`}},
		{Name: "keygen never overwrites a key", Args: []string{"keygen", "--name", "ops", "--out", "$DIR"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"KEY_EXISTS"`}},
		{Name: "a plane", Run: installcmd.Run, Args: []string{"bootstrap", "--root", "$DIR/plane", "--trust-key", "$DIR/ops.pub"}},
		{Name: "register a framework", Files: map[string]string{"fw.md": demoFramework, "spec/manifest.json": demoSpec},
			Args: with("register-framework", "FMWK-DEMO-001", "--src", "$DIR/fw.md"), Stdout: []string{`"status":"ok"`, `"ledger_entry_id":"LED-`}},
		{Name: "register its spec", Args: with("register-spec", "SPEC-DEMO-001", "--src", "$DIR/spec"), Stdout: []string{`"status":"ok"`}},
		{Name: "init a package", Args: with("init", "PKG-DEMO-001", "--spec", "SPEC-DEMO-001", "--output", "$DIR/demo"), Stdout: []string{`"status":"ok"`}},
		{Name: "stage it", Files: map[string]string{"demo/lib/demo/x.py": "print('x')\n"},
			Args: with("stage", "PKG-DEMO-001", "--src", "$DIR/demo", "--declare", "--out", "$DIR/dist"), Stdout: []string{`"archive_sha256":"sha256:`}},
		{Name: "sign it", Args: []string{"sign", "--archive", "$DIR/dist/PKG-DEMO-001.tar.gz", "--key", "$DIR/ops.key"}, Stdout: []string{`"status":"ok"`}},
		{Name: "preflight passes", Args: with("preflight", "--archive", "$DIR/dist/PKG-DEMO-001.tar.gz"), Stdout: []string{`"status":"ok"`}},
		{Name: "check the framework", Args: with("check-framework", "FMWK-DEMO-001", "--src", "$DIR/fw.md"), Stdout: []string{`"status":"ok"`}},
		{Name: "init-config scaffolds the defaults", Args: []string{"init-config", "PKG-CONFIG-001", "--output", "$DIR/opconf"},
			Stdout: []string{`"package_type":"config"`, `"$DIR/opconf/config/policy.cedar"`}},
		{Name: "which stage as they are", Args: with("stage", "PKG-CONFIG-001", "--src", "$DIR/opconf", "--out", "$DIR/dist"), Stdout: []string{`"status":"ok"`}},
		{Name: "init-config needs a package id", Args: []string{"init-config"}, Exit: cli.ExitUsage, Stderr: []string{"init-config needs a package id"}},
		{Name: "sign needs a key", Args: []string{"sign", "--archive", "$DIR/dist/PKG-DEMO-001.tar.gz"}, Exit: cli.ExitUsage,
			Stderr: []string{"sign needs a key"}},
	})
}
