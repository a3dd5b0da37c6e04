package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

var buildAnchorStep = sync.OnceValue(func() error {
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binDir+"/", "./testdata/anchorstep")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stderr = os.Stderr
	return build.Run()
})

// BenchmarkWOStepAnchorOverPlain is what anchoring adds to a work-order
// step, whole process: each iteration runs anchorstep (one entry appended
// to HO2's ledger, as a cp-wo step records) without and then with -anchor
// (plane.AnchorChain before and after the entry, as every cp-wo step
// does: a no-op check before, HO2's new checkpoint anchored in HO3
// after), back to back on two planes of the same shape whose HO3 ledger
// holds 10,000 entries, and reports the median of the paired differences
// as ms-anchor-over-plain. The anchored plane's HO3 gains one anchor per
// iteration, as a plane's does per step.
func BenchmarkWOStepAnchorOverPlain(b *testing.B) {
	if err := buildAnchorStep(); err != nil {
		b.Fatal(err)
	}
	plain, anchored := filepath.Join(b.TempDir(), "plain"), filepath.Join(b.TempDir(), "anchored")
	stdin, stdout := tempFiles(b, requests(10_000))
	for _, root := range []string{plain, anchored} {
		if out, err := exec.Command(filepath.Join(binDir, "cp-install"), "bootstrap", "--root", root).CombinedOutput(); err != nil {
			b.Fatalf("bootstrap: %v\n%s", err, out)
		}
		runProcessEnv(b, stdin, stdout, []string{"CONTROL_PLANE=" + root}, "cp-ledger", "append", "--plane", "ho3")
	}
	stdin, stdout = tempFiles(b, nil)
	diffs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		runProcessEnv(b, stdin, stdout, []string{"CONTROL_PLANE=" + plain}, "anchorstep")
		t1 := time.Now()
		runProcessEnv(b, stdin, stdout, []string{"CONTROL_PLANE=" + anchored}, "anchorstep", "-anchor")
		diffs = append(diffs, time.Since(t1)-t1.Sub(t0))
	}
	slices.Sort(diffs)
	b.ReportMetric(float64(diffs[len(diffs)/2].Microseconds())/1000, "ms-anchor-over-plain")
}
