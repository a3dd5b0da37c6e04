package clitest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/control-plane/cp/internal/cli"
)

// Case is one in-process run of a tool, as a script would make it (gojq's
// cli_test.go style): its arguments and stdin, the exit code it must
// return and text its stdout and stderr must hold. "$DIR" in Args and Stdin
// is the directory the cases of one table share.
type Case struct {
	Name string
	// Run, if set, runs this case instead of the table's tool: a step
	// another tool takes (a key made, a plane bootstrapped).
	Run cli.RunFunc
	// Files are written under $DIR before the case runs.
	Files  map[string]string
	Args   []string
	Stdin  string
	Exit   int
	Stdout []string // substrings stdout holds
	Stderr []string // substrings stderr holds
}

// RunCases runs the cases in order through run (a tool's Run), in one
// fresh directory, so a case sees what the cases before it wrote (a plane
// bootstrapped, entries appended). The environment is a clean one:
// $CONTROL_PLANE unset, checkpoint keys under the directory.
func RunCases(t *testing.T, run cli.RunFunc, cases []Case) {
	dir := t.TempDir()
	t.Setenv("CONTROL_PLANE", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	expand := func(s string) string { return strings.ReplaceAll(s, "$DIR", dir) }
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			for name, content := range tc.Files {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := make([]string, len(tc.Args))
			for i, a := range tc.Args {
				args[i] = expand(a)
			}
			var stdin *strings.Reader
			var out, errb bytes.Buffer
			var code int
			run := run
			if tc.Run != nil {
				run = tc.Run
			}
			if tc.Stdin != "" {
				stdin = strings.NewReader(expand(tc.Stdin))
				code = run(context.Background(), args, stdin, &out, &errb)
			} else {
				code = run(context.Background(), args, nil, &out, &errb)
			}
			if code != tc.Exit {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.Exit, out.String(), errb.String())
			}
			for _, want := range tc.Stdout {
				if !strings.Contains(out.String(), expand(want)) {
					t.Errorf("stdout lacks %q\nstdout: %s", expand(want), out.String())
				}
			}
			for _, want := range tc.Stderr {
				if !strings.Contains(errb.String(), expand(want)) {
					t.Errorf("stderr lacks %q\nstderr: %s", expand(want), errb.String())
				}
			}
		})
	}
}
