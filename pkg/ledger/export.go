package ledger

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/control-plane/cp/internal/atomicfile"
	"golang.org/x/mod/sumdb/tlog"
)

// Export is what Export wrote: the state of the store it copied (the
// entries written and their root) and the checkpoint the store held just
// before (nil if none), which covers at most those entries.
type Export struct {
	State      State
	Checkpoint []byte
}

// exportChunk is how many stored hashes Export asks a store for at once.
const exportChunk = 1 << 16

// ExportFile writes the ledger in s as a file ledger at path (X.jsonl and
// its X.tlog): the store's lines, each followed by a newline, and its
// stored hashes, 32 bytes each in tlog.StoredHashIndex order, exactly as
// the file store writes them for the same entries. So the export of any
// store is byte-identical to the file store fed the same entries, and any
// offline verifier (cp-ledger verify --ledger) reads it.
//
// It copies what the store holds, as of one State; it checks nothing (a
// row missing from a database is a gap in the file, which Verify names).
// Neither file may exist (EXISTS): both are written beside their final
// names, fsynced, then linked into place, X.tlog first, so a crash leaves
// either nothing at path or a whole ledger (a leftover temporary file is
// the only trace). The checkpoint is read before the state, so it never
// covers more than the export.
func ExportFile(ctx context.Context, s Store, path string) (Export, error) {
	hashPath, _, _ := SidePaths(path)
	for _, p := range []string{path, hashPath} {
		if _, err := os.Lstat(p); err == nil {
			return Export{}, errorf("LEDGER_EXISTS", "%s already exists: an export never replaces a file", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Export{}, err
		}
	}
	ckpt, err := s.ReadCheckpoint()
	if err != nil {
		return Export{}, err
	}
	st, err := s.State(ctx)
	if err != nil {
		return Export{}, err
	}
	dir := filepath.Dir(path)
	tmpData, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return Export{}, err
	}
	defer os.Remove(tmpData.Name())
	defer tmpData.Close()
	tmpHash, err := os.CreateTemp(dir, "."+filepath.Base(hashPath)+".tmp-*")
	if err != nil {
		return Export{}, err
	}
	defer os.Remove(tmpHash.Name())
	defer tmpHash.Close()

	w := bufio.NewWriterSize(tmpData, 1<<20)
	var werr error
	err = s.Lines(ctx, 0, st.Size, func(_ int64, line []byte) bool {
		if _, werr = w.Write(line); werr == nil {
			werr = w.WriteByte('\n')
		}
		return werr == nil
	})
	if err = errors.Join(err, werr); err != nil {
		return Export{}, err
	}
	if err := w.Flush(); err != nil {
		return Export{}, err
	}
	hw := bufio.NewWriterSize(tmpHash, 1<<20)
	n := tlog.StoredHashCount(st.Size)
	idx := make([]int64, 0, exportChunk)
	for lo := int64(0); lo < n; lo += exportChunk {
		if err := ctx.Err(); err != nil {
			return Export{}, err
		}
		idx = idx[:0]
		for i := lo; i < min(lo+exportChunk, n); i++ {
			idx = append(idx, i)
		}
		hs, err := s.ReadHashes(idx)
		if err != nil {
			return Export{}, err
		}
		for _, h := range hs {
			hw.Write(h[:])
		}
	}
	if err := hw.Flush(); err != nil {
		return Export{}, err
	}
	if err := errors.Join(tmpData.Sync(), tmpHash.Sync()); err != nil {
		return Export{}, err
	}
	// Linked, never renamed: a file that appeared at the final name since
	// the check above is not replaced.
	if err := os.Link(tmpHash.Name(), hashPath); err != nil {
		return Export{}, linkErr(hashPath, err)
	}
	if err := os.Link(tmpData.Name(), path); err != nil {
		os.Remove(hashPath)
		return Export{}, linkErr(path, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return Export{}, err
	}
	return Export{State: st, Checkpoint: ckpt}, nil
}

func linkErr(path string, err error) error {
	if errors.Is(err, fs.ErrExist) {
		return errorf("LEDGER_EXISTS", "%s already exists: an export never replaces a file", path)
	}
	return fmt.Errorf("export: %w", err)
}
