package auth_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/auth"
)

// TestAdmitHelper is the body of BenchmarkAdmitProcess's child processes:
// one Admit and one Authorize of an append, cold, as a one-entry cp-ledger
// append process will make them.
func TestAdmitHelper(t *testing.T) {
	root := os.Getenv("CP_ADMIT_ROOT")
	if root == "" {
		t.Skip("run by BenchmarkAdmitProcess")
	}
	if os.Getenv("CP_ADMIT_SKIP") != "" {
		return // the bare process: no guard at all
	}
	start := time.Now()
	g := auth.NewGuard(auth.Config{Token: os.Getenv("CP_ADMIT_TOKEN"), OSUser: "bench"})
	id, err := g.Admit(context.Background(), root)
	admitted := time.Since(start)
	if err == nil {
		err = g.Authorize(context.Background(), id, auth.Access{Root: root, Action: auth.ActionAppend, Tier: "ho1", Session: "SES-20261206-00000001", EventType: "NOTE"})
	}
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CP_ADMIT_PRINT") != "" {
		fmt.Printf("admit %d µs, admit+authorize %d µs\n", admitted.Microseconds(), time.Since(start).Microseconds())
	}
}

// BenchmarkAdmitProcess pairs a child process that admits a worker token
// and authorizes one append (verify, revocations through HO3's ledger, a
// policy file of five forbids) against the same child on a plane without
// auth and a child that does nothing: what the Guard adds to a one-entry
// cp-ledger append. Target: at most 0.3 ms over auth off.
func BenchmarkAdmitProcess(b *testing.B) {
	on := newPlane(b, true)
	off := newPlane(b, false)
	tok := on.mint(b, auth.Claims{Subject: "w1", Role: auth.RoleWorker, Tiers: []string{"ho1"}, WorkOrder: "WO-1", Session: "SES-20261206-00000001"})
	for i := 0; i < 20; i++ { // a few revocations for Find to pass over
		on.revoke(b, auth.Revocation{JTI: auth.NewID()})
	}
	if err := os.WriteFile(on.root+"/"+auth.PolicyFile, []byte(benchPolicies), 0o644); err != nil {
		b.Fatal(err)
	}
	run := func(env ...string) time.Duration {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestAdmitHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), env...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		return time.Since(start)
	}
	var tOn, tOff, tBare time.Duration
	for b.Loop() {
		tOn += run("CP_ADMIT_ROOT="+on.root, "CP_ADMIT_TOKEN="+tok)
		tOff += run("CP_ADMIT_ROOT=" + off.root)
		tBare += run("CP_ADMIT_ROOT="+off.root, "CP_ADMIT_SKIP=1")
	}
	n := float64(b.N)
	b.ReportMetric(float64(tOn.Microseconds())/n, "µs-token/op")
	b.ReportMetric(float64(tOff.Microseconds())/n, "µs-off/op")
	b.ReportMetric(float64(tBare.Microseconds())/n, "µs-bare/op")
	b.ReportMetric(float64((tOn-tOff).Microseconds())/n, "µs-token-over-off/op")
}

const benchPolicies = `
@id("a") forbid (principal, action == Action::"append", resource) when { principal.role == "worker" && context.event_type == "DEPLOY" && context.hour_utc >= 18 };
@id("b") forbid (principal == User::"mallory", action == Action::"llm", resource);
@id("c") forbid (principal, action == Action::"install", resource) when { context.weekday == "Sat" || context.weekday == "Sun" };
@id("d") forbid (principal, action == Action::"shell", resource) when { resource == Resource::"curl" };
@id("e") forbid (principal, action == Action::"read", resource == Tier::"ho1") when { principal.role == "reader" };
`
