package ledger

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/mod/sumdb/tlog"
)

// hashFile is X.tlog: the stored hashes of the Merkle tree in the order of
// tlog.StoredHashIndex, 32 bytes each, so that a tree hash or a proof reads
// O(log n) of them. pending holds hashes computed by an append in progress,
// starting at index base, not yet written.
type hashFile struct {
	f       *os.File
	base    int64
	pending []tlog.Hash
}

// ReadHashes implements tlog.HashReader.
func (h *hashFile) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx >= h.base && h.pending != nil {
			j := idx - h.base
			if j >= int64(len(h.pending)) {
				return nil, fmt.Errorf("stored hash %d not yet computed", idx)
			}
			out[i] = h.pending[j]
			continue
		}
		if _, err := h.f.ReadAt(out[i][:], idx*tlog.HashSize); err != nil {
			if err == io.EOF {
				return nil, errorf(TornTail, "%s: stored hash %d missing", h.f.Name(), idx)
			}
			return nil, err
		}
	}
	return out, nil
}

// treeSizeForHashes returns the largest n whose stored hashes fit in count
// hashes.
func treeSizeForHashes(count int64) int64 {
	lo, hi := int64(0), count // StoredHashCount(n) >= n
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if tlog.StoredHashCount(mid) <= count {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// memHashes is a tlog.HashReader over stored hashes held in memory.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= int64(len(m)) {
			return nil, fmt.Errorf("stored hash %d out of range", idx)
		}
		out[i] = m[idx]
	}
	return out, nil
}
