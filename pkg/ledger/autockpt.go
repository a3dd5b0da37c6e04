package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/control-plane/cp/internal/atomicfile"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// CheckpointKey makes every append leave a signed checkpoint in
// X.checkpoint (a plane's ledgers: DESIGN.md §5). With it, a ledger whose
// tail was cut, or whose history was rewritten, contradicts a checkpoint
// only the key's holder can make.
type CheckpointKey struct {
	// Origin is the first line of every checkpoint.
	Origin string
	// Signer signs each checkpoint: the plane's own key.
	Signer note.Signer
	// Trusted returns the keys whose signature on a stored checkpoint is
	// accepted when Signer did not make it (a rotated key, a checkpoint
	// cosigned by hand). nil accepts only Signer's own checkpoints.
	Trusted func() (note.Verifiers, error)
}

// CheckpointMissing is the Verify issue (and append refusal) for a ledger
// expected to carry a signed checkpoint that has none.
const CheckpointMissing = "CHECKPOINT_MISSING"

// checkStored refuses to build on a stored checkpoint that this ledger of n
// entries contradicts, or that no accepted key signed: signing a new
// checkpoint over it would launder a cut or rewritten tail. A missing
// checkpoint is refused unless allowMissing (a GENESIS opening the ledger,
// or a checkpoint an operator asks for to re-anchor it). rootAt returns the
// tree's root at a size up to n. It checks what the checkpoint states now
// and returns the check of its signature, for the caller to run (an append
// runs it while its entries are fsynced: it costs a signature); nil when
// there is none to run, as for the checkpoint this process last wrote or
// accepted (a stream's next batch).
func (l *Ledger) checkStored(n int64, allowMissing bool, rootAt func(int64) (tlog.Hash, error)) (checkSig func() error, err error) {
	_, path, _ := SidePaths(l.path)
	b, err := l.ReadCheckpoint()
	var coded interface{ Code() string }
	if errors.As(err, &coded) { // not a regular file, or too large to be a checkpoint
		return nil, err
	} else if err != nil {
		return nil, errorf("IO_ERROR", "reading %s: %v", path, err)
	}
	if bytes.Equal(b, l.ckptLast) && b != nil {
		// This process wrote or accepted it: only what it states is checked.
		_, err := l.opts.Checkpoint.checkStored(b, path, l.path, n, allowMissing, rootAt)
		return nil, err
	}
	check, err := l.opts.Checkpoint.checkStored(b, path, l.path, n, allowMissing, rootAt)
	if err != nil || check == nil {
		return nil, err
	}
	return func() error {
		if err := check(); err != nil {
			return err
		}
		l.ckptLast = b
		return nil
	}, nil
}

// Accepted reports whether b is the checkpoint this Ledger's last append
// signed and published, or the stored one an append checked and found
// signed by an accepted key: a caller holding the same Ledger need not
// verify its signature again.
func (l *Ledger) Accepted(b []byte) bool { return b != nil && bytes.Equal(b, l.ckptLast) }

// CheckStored is the check every append to a plane's ledger makes of the
// stored checkpoint b (nil: none), whatever the store: that a ledger of n
// entries, whose root at a size up to n rootAt returns, does not
// contradict it (CHECKPOINT_INCONSISTENT), that it is signed by k's key
// or a key k trusts (CHECKPOINT_INVALID), and that it exists unless
// allowMissing (CHECKPOINT_MISSING). where names the checkpoint, ledger
// the ledger, in messages.
func (k *CheckpointKey) CheckStored(b []byte, where, ledger string, n int64, allowMissing bool, rootAt func(int64) (tlog.Hash, error)) error {
	check, err := k.checkStored(b, where, ledger, n, allowMissing, rootAt)
	if err == nil && check != nil {
		err = check()
	}
	return err
}

// checkStored checks what b states now and returns the check of its
// signature, for the caller to run (nil when there is no checkpoint).
func (k *CheckpointKey) checkStored(b []byte, path, ledger string, n int64, allowMissing bool, rootAt func(int64) (tlog.Hash, error)) (checkSig func() error, err error) {
	if b == nil {
		if allowMissing {
			return nil, nil
		}
		return nil, errorf(CheckpointMissing, "%s has no checkpoint, but its plane signs one with every append: it was removed; refusing to append (run cp-ledger verify, compare with a witness copy)", ledger)
	}
	c, err := parseBody(b)
	if err != nil {
		return nil, errorf(CheckpointInvalid, "%s: %v; refusing to append (run cp-ledger verify)", path, err)
	}
	if c.Size > n {
		return nil, errorf(CheckpointInconsistent, "%s covers %d entries but the ledger holds %d: entries were removed; refusing to append (run cp-ledger verify)", path, c.Size, n)
	}
	root, err := rootAt(c.Size)
	if err != nil {
		return nil, err
	}
	if root != c.Root {
		return nil, errorf(CheckpointInconsistent, "%s: the ledger's root at size %d differs from the checkpoint's: history was rewritten; refusing to append (run cp-ledger verify)", path, c.Size)
	}
	return func() error {
		if err := k.checkSigned(b, c); err != nil {
			return errorf(CheckpointInvalid, "%s: %v; refusing to append (run cp-ledger verify)", path, err)
		}
		return nil
	}, nil
}

// checkStoredNow is checkStored with its signature check run at once.
func (l *Ledger) checkStoredNow(n int64, allowMissing bool, rootAt func(int64) (tlog.Hash, error)) error {
	checkSig, err := l.checkStored(n, allowMissing, rootAt)
	if err == nil && checkSig != nil {
		err = checkSig()
	}
	return err
}

// unappend removes the lines and stored hashes an append wrote but must
// not acknowledge (the checkpoint it would have built on proved not
// authentic), under the lock, as the repair of a torn tail would.
func (l *Ledger) unappend() error {
	err := errors.Join(l.data.Truncate(l.dataSize), l.hashes.f.Truncate(l.hashSize))
	if err == nil {
		err = errors.Join(l.data.Sync(), l.hashes.f.Sync())
	}
	return err
}

// checkSigned accepts a stored checkpoint signed by the ledger's key, or
// by a key Trusted returns. The common case, our own note, is checked
// cheaply: by the signer's own verifier when it has one (keys.PairSigner's
// Self: two hashes, no scalar multiplication), else by signing its text
// again (Ed25519 is deterministic, and a signature costs about half a
// verification). Self accepts every note the re-signing accepts (our
// signature of the same text), so trying it first changes what is
// accepted in nothing and saves a process a signature (~0.1 ms).
func (k *CheckpointKey) checkSigned(b []byte, c Checkpoint) error {
	if s, ok := k.Signer.(interface{ Self() note.Verifier }); ok {
		// The text signed must be the body c was read from: note.Open
		// splits at the last blank line, parseBody at the first.
		if n, err := note.Open(b, note.VerifierList(s.Self())); err == nil && n.Text == c.Text() {
			return nil
		}
	} else if mine, err := c.Sign(k.Signer); err == nil && bytes.Equal(mine, b) {
		return nil
	}
	if k.Trusted == nil {
		return errors.New("not a checkpoint signed by the plane's key")
	}
	vs, err := k.Trusted()
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte("\n\n")) {
		return errors.New("not signed, but the plane signs every checkpoint")
	}
	_, _, err = OpenCheckpoint(b, vs)
	return err
}

// frontierRoot returns the root of the tree of size n from its frontier
// (see Ledger.frontier): the subtrees of n's binary decomposition, folded
// from the smallest, as tlog.TreeHash does, without reading X.tlog.
func frontierRoot(f *[64]tlog.Hash, n int64) tlog.Hash {
	if n == 0 {
		h, _ := tlog.TreeHash(0, nil)
		return h
	}
	var h tlog.Hash
	first := true
	for level := 0; n>>level > 0; level++ {
		if n>>level&1 == 0 {
			continue
		}
		if first {
			h, first = f[level], false
		} else {
			h = tlog.NodeHash(f[level], h)
		}
	}
	return h
}

// stageCheckpoint signs the checkpoint of size n and root. It runs in
// parallel with the entries' fsyncs, and nothing it does can make the new
// checkpoint durable before them. A checkpoint of the same length as the
// stored one (the usual case: only the size and root change, and the size
// gains a digit rarely) is returned to be written over the stored one in
// place once the entries are durable (publishCheckpoint): no file is
// created, renamed or fsynced, which here costs more than the append
// itself. Any other is written and fsynced to X.checkpoint.tmp now, to be
// renamed into place then (staged). The temporary name is fixed (writers
// hold the exclusive lock) and created afresh, never through a symlink.
func (l *Ledger) stageCheckpoint(n int64, root tlog.Hash) (text []byte, staged bool, err error) {
	k := l.opts.Checkpoint
	text, err = Checkpoint{Origin: k.Origin, Size: n, Root: root}.Sign(k.Signer)
	if err != nil || l.ckptLast != nil && len(text) == len(l.ckptLast) && len(text) <= sector {
		return text, false, err
	}
	tmp := l.checkpointTemp()
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, false, err
	}
	_, err = f.Write(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return text, true, err
}

// sector is the size a disk writes whole: a checkpoint no longer than it,
// written in place, is found after a crash either old or new.
const sector = 512

// publishCheckpoint makes the new checkpoint X.checkpoint, once the entries
// it covers are durable: a staged one by rename, any other by writing it
// over the stored one, which has the same length, in place. Neither is
// fsynced: a crash may lose the newest checkpoint, and the one left behind
// covers a prefix of the durable entries, so it still holds. An in-place
// write of a file this small (under one 512-byte sector, which disks write
// whole) leaves the old bytes or the new, never a mix.
func (l *Ledger) publishCheckpoint(text []byte, staged bool) error {
	_, path, _ := SidePaths(l.path)
	var err error
	if staged {
		err = os.Rename(l.checkpointTemp(), path)
	} else if err = overwrite(path, text); errors.Is(err, errLinked) {
		err = atomicfile.Write(path, text, 0o644)
	}
	if err != nil {
		return errorf("IO_ERROR", "publishing %s: %v", path, err)
	}
	l.ckptLast = text
	return nil
}

var errLinked = errors.New("the stored checkpoint has another hard link")

// overwrite writes b over the start of the existing regular file at path,
// never through a symlink.
func overwrite(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil && (!st.Mode().IsRegular() || st.Size() != int64(len(b))) {
		err = fmt.Errorf("%s changed under the lock", path)
	}
	if s, ok := st.Sys().(*syscall.Stat_t); err == nil && ok && s.Nlink > 1 {
		// A planted hard link: never write through it; the checkpoint
		// is written afresh and renamed over the link instead.
		err = errLinked
	}
	if err == nil {
		_, err = f.WriteAt(b, 0)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (l *Ledger) checkpointTemp() string {
	_, path, _ := SidePaths(l.path)
	return path + ".tmp"
}

// ready is Append of an empty batch: under the exclusive lock it brings the
// ledger in step (repairing a torn tail, as an append would) and, with a
// checkpoint key, checks the stored checkpoint as Append does, appending
// nothing.
func (l *Ledger) ready(ctx context.Context) error {
	if !l.writable {
		return errorf("INTERNAL", "ledger %s opened read-only", l.path)
	}
	if err := l.lock(ctx, true, l.opts.LockTimeout); err != nil {
		return err
	}
	defer l.unlock()
	l.repair = Repair{}
	if err := l.sync(); err != nil {
		l.synced = false
		return err
	}
	if l.opts.Checkpoint == nil {
		return nil
	}
	return l.checkStoredNow(l.n, l.n == 0, l.rootAt)
}
