package route

import (
	"context"
	"testing"
)

// BenchmarkDecide is one decision in-process over a policy of five routes
// and two deny rules (the default route: every expression runs).
func BenchmarkDecide(b *testing.B) {
	p, err := Compile([]byte(fullPolicy), testHandlers)
	if err != nil {
		b.Fatal(err)
	}
	req := decode(b, `{"intent":"chat","user":"u1","text":"where?","variables":{"service":"api","n":3}}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Decide(ctx, req, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
}
