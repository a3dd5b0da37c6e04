package gate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/gate"
)

// BenchmarkG2 is issue 13's target: G2 for an install of 2,500 files
// against a scope of 1,000 patterns (under 50 ms). The paths sit under the
// last patterns, so most patterns are tried for each.
func BenchmarkG2(b *testing.B) {
	root, signer := woPlane(b)
	d := woDraft("package_install", time.Hour)
	d.Scope.Paths = nil
	for i := range 1000 {
		d.Scope.Paths = append(d.Scope.Paths, fmt.Sprintf("lib/pkg%03d/**/*.py", i))
	}
	id := newWO(b, root, signer, d, true)
	a := gate.WOAction{WorkOrder: id}
	for i := range 2500 {
		a.Paths = append(a.Paths, fmt.Sprintf("lib/pkg%03d/sub/f%04d.py", 900+i%100, i))
	}
	b.ResetTimer()
	for b.Loop() {
		r, _, err := gate.G2(context.Background(), root, a)
		if err != nil || !r.Passed {
			b.Fatal(err, r.Message)
		}
	}
}
