package ledger

import "testing"

// TestSpareBuffers holds getBuf and putBuf to what a stream's group commits
// need of them: a batch's buffer comes back for the next batch whatever
// collections ran between, the smallest large enough is taken, and no
// more than spareMax bytes are kept.
func TestSpareBuffers(t *testing.T) {
	spare.Lock()
	saved, savedBytes := spare.bufs, spare.bytes
	spare.bufs, spare.bytes = nil, 0
	spare.Unlock()
	defer func() {
		spare.Lock()
		spare.bufs, spare.bytes = saved, savedBytes
		spare.Unlock()
	}()

	small, large := make([]byte, 0, 600<<10), make([]byte, 0, 1200<<10)
	putBuf(large)
	putBuf(small)
	putBuf(make([]byte, 0, 1<<10)) // a single append's: not kept
	if got := getBuf(500 << 10); cap(got) != cap(small) || &got[:1][0] != &small[:1][0] {
		t.Errorf("getBuf(500 KiB) = cap %d, want the 600 KiB buffer kept", cap(got))
	}
	if got := getBuf(1000 << 10); &got[:1][0] != &large[:1][0] {
		t.Errorf("getBuf(1000 KiB) = cap %d, want the 1200 KiB buffer kept", cap(got))
	}
	if got := getBuf(100 << 10); cap(got) < 100<<10 || len(got) != 0 {
		t.Errorf("getBuf(100 KiB) with none kept = len %d cap %d", len(got), cap(got))
	}

	// Over spareMax, the smallest go first; a buffer smaller than every
	// one kept is not kept.
	for range 3 {
		putBuf(make([]byte, 0, spareMax/3))
	}
	putBuf(make([]byte, 0, spareMax/2))
	putBuf(make([]byte, 0, spareMax/5)) // no room, and smaller than both
	spare.Lock()
	defer spare.Unlock()
	if spare.bytes > spareMax {
		t.Errorf("%d bytes kept, over %d", spare.bytes, spareMax)
	}
	total := 0
	for _, b := range spare.bufs {
		total += cap(b)
		if cap(b) < spareMax/3 {
			t.Error("a buffer smaller than every one kept was kept over spareMax")
		}
	}
	if total != spare.bytes {
		t.Errorf("kept %d bytes, counted %d", total, spare.bytes)
	}
	if len(spare.bufs) != 2 {
		t.Errorf("%d buffers kept, want 2 (one of spareMax/3, spareMax/2)", len(spare.bufs))
	}
}
