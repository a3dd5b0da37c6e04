package gatecmd

import (
	"testing"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/clitest"
	"github.com/control-plane/cp/internal/installcmd"
)

// TestRun holds cp-gate's verbs to their contract in-process, without
// building the binary; testdata/script holds the end-to-end cases.
func TestRun(t *testing.T) {
	clitest.RunCases(t, Run, []clitest.Case{
		{Name: "a plane", Run: installcmd.Run, Args: []string{"bootstrap", "--root", "$DIR/plane"}},
		{Name: "every gate passes on a sound plane", Args: []string{"--root", "$DIR/plane"},
			Stdout: []string{`"all_passed":true`, `"plane_id":"ho3"`}},
		{Name: "a lower tier named by --plane", Args: []string{"check", "--gate", "G6", "--plane", "ho1", "--root", "$DIR/plane"},
			Stdout: []string{`"all_passed":true`, `"plane_id":"ho1"`, `"gate":"G6"`}},
		{Name: "a recorded run names its entry", Args: []string{"check", "--gate", "G6", "--record", "--root", "$DIR/plane"},
			Stdout: []string{`"ledger_entry_id":"LED-`}},
		{Name: "integrity", Args: []string{"integrity", "--root", "$DIR/plane"}, Stdout: []string{`"all_passed":true`}},
		{Name: "a stream of checks", Args: []string{"check", "--root", "$DIR/plane"},
			Stdin: `{"gate":["G6"]}` + "\n" + `{"gate":["G0B"]}` + "\n", Stdout: []string{`"gate":"G6"`, `"gate":"G0B"`}},
		{Name: "sarif", Args: []string{"check", "--gate", "G6", "--format", "sarif", "--root", "$DIR/plane"}, Stdout: []string{`"version": "2.1.0"`}},
		{Name: "no plane", Args: []string{"--root", "$DIR/none"}, Exit: cli.ExitUsage, Stdout: []string{`"code":"NOT_A_PLANE"`}},
	})
}
