package workorder

import (
	"context"
	"testing"
)

// BenchmarkApproved is G2's question on a plane holding one approved
// work order: the file read and hashed, both ledgers searched, the note
// hashed and its signature checked against the trusted keys.
func BenchmarkApproved(b *testing.B) {
	ctx := context.Background()
	root, signer := newPlane(b)
	c, err := Create(ctx, root, draft(), alice)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Approve(ctx, root, c.WorkOrder.ID, signer, bob); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Approved(ctx, root, c.WorkOrder.ID); err != nil {
			b.Fatal(err)
		}
	}
}
