package routecmd

import (
	"context"
	"io"
	"strings"
	"testing"
)

// BenchmarkSingleInProcess is one cp-route run deciding one request,
// in-process (the policy loaded and compiled each time, as a process
// does), for profiling.
func BenchmarkSingleInProcess(b *testing.B) {
	root := newPlane(b, testPolicy)
	for b.Loop() {
		if code := Run(context.Background(), []string{"--root", root}, strings.NewReader(`{"intent":"status"}`), io.Discard, io.Discard); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}
