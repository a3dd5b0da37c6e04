package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkSingleAppendTokenOverOff is what verifying a token costs one
// cp-ledger append process (issue 12's target: at most 0.3 ms). On a plane
// with auth (cp-auth init), a 10,000-entry HO3 ledger and ten revocations
// in it, each iteration appends one entry to a worker's HO1 session ledger
// twice, back to back: as the plane's owner with CONTROL_PLANE_AUTH=off
// (the Guard still reads the plane's trusted keys and checks the owner),
// then with the worker's token (verified against the auth key, looked up
// in HO3's revocations, judged by the table). It reports the median of the
// paired differences, ms-token-over-off.
func BenchmarkSingleAppendTokenOverOff(b *testing.B) {
	root := filepath.Join(b.TempDir(), "plane")
	admin := authPlane(b, root)
	const ses = "SES-20261206-0000beef"
	worker := cpAuth(b, root, admin, "token", "--sub", "w1", "--role", "worker", "--tiers", "ho1",
		"--wo", "WO-20261206-001", "--session", ses, "--ttl", "2h")
	stdin, stdout := tempFiles(b, requests(1))
	base := []string{"CONTROL_PLANE=" + root}
	off := append(slices.Clone(base), "CONTROL_PLANE_AUTH=off")
	tok := append(slices.Clone(base), "CONTROL_PLANE_TOKEN="+worker)
	args := []string{"append", "--session", ses}
	runProcessEnv(b, stdin, stdout, tok, "cp-ledger", args...) // the session's GENESIS
	diffs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		runProcessEnv(b, stdin, stdout, off, "cp-ledger", args...)
		t1 := time.Now()
		runProcessEnv(b, stdin, stdout, tok, "cp-ledger", args...)
		diffs = append(diffs, time.Since(t1)-t1.Sub(t0))
	}
	slices.Sort(diffs)
	b.ReportMetric(float64(diffs[len(diffs)/2].Microseconds())/1000, "ms-token-over-off")
}

// authPlane bootstraps a plane at root, initializes auth, fills HO3's
// ledger to 10,000 entries and revokes ten other subjects; it returns the
// admin token.
func authPlane(b *testing.B, root string) string {
	b.Helper()
	if out, err := exec.Command(filepath.Join(binDir, "cp-install"), "bootstrap", "--root", root).CombinedOutput(); err != nil {
		b.Fatalf("bootstrap: %v\n%s", err, out)
	}
	admin := cpAuth(b, root, "", "init", "--sub", "ops")
	stdin, stdout := tempFiles(b, requests(10_000))
	runProcessEnv(b, stdin, stdout, []string{"CONTROL_PLANE=" + root, "CONTROL_PLANE_TOKEN=" + admin}, "cp-ledger", "append", "--plane", "ho3")
	for i := range 10 {
		cpAuth(b, root, admin, "revoke", "--sub", fmt.Sprintf("gone-%d", i))
	}
	return admin
}

// cpAuth runs cp-auth under token (none: "") and returns the token its
// result holds, if any.
func cpAuth(b *testing.B, root, token string, args ...string) string {
	b.Helper()
	cmd := exec.Command(filepath.Join(binDir, "cp-auth"), args...)
	cmd.Env = append(os.Environ(), "CONTROL_PLANE="+root, "CONTROL_PLANE_TOKEN="+token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("cp-auth %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	var env struct {
		Result struct {
			Token string `json:"token"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out.Bytes(), &env); err != nil {
		b.Fatalf("cp-auth %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return env.Result.Token
}

// runProcessEnv is runProcess with env added to the environment.
func runProcessEnv(b *testing.B, stdin, stdout *os.File, env []string, name string, args ...string) {
	b.Helper()
	if _, err := stdin.Seek(0, 0); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Env = append(os.Environ(), env...)
	var errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
}
