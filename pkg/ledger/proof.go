package ledger

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/regfile"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// State is a consistent view of a ledger: Size entries whose lines and
// stored hashes are both complete, their head and Merkle root.
type State struct {
	Size int64
	Head string
	Root tlog.Hash
	t    tail
}

// State returns the ledger's current size, head and root. It holds the shared
// lock only while reading the tails, and costs O(log n) reads.
func (l *Ledger) State(ctx context.Context) (State, error) {
	if l.sideErr != nil {
		return State{}, l.sideErr
	}
	if l.lockF != nil {
		if err := l.lock(ctx, false, l.opts.LockTimeout); err != nil {
			return State{}, err
		}
		defer l.unlock()
	}
	return l.state()
}

// state is State for a caller holding the lock.
func (l *Ledger) state() (State, error) {
	dst, err := l.data.Stat()
	if err != nil {
		return State{}, err
	}
	hst, err := l.hashes.f.Stat()
	if err != nil {
		return State{}, err
	}
	t, err := readTail(l.data, dst.Size(), hst.Size())
	if err != nil {
		return State{}, err
	}
	s := State{Size: min(t.n, t.hashTree), t: t}
	if s.Size == t.n {
		s.Head = t.head
	} else if s.Size > 0 {
		hs, err := l.hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, s.Size-1)})
		if err != nil {
			return State{}, err
		}
		s.Head = hex.EncodeToString(hs[0][:])
	}
	if s.Root, err = tlog.TreeHash(s.Size, &l.hashes); err != nil {
		return State{}, err
	}
	return s, nil
}

// DefaultOrigin is the checkpoint origin for a ledger file: its base name
// without .jsonl under "control-plane/". Plane ledgers use "<plane_id>/<name>".
func DefaultOrigin(path string) string {
	return "control-plane/" + strings.TrimSuffix(filepath.Base(path), ".jsonl")
}

// Checkpoint computes a checkpoint of the current tree, signs it when
// signers are given (and with Options.Checkpoint's key first, when set),
// and stores it atomically as X.checkpoint. It returns
// the checkpoint and the stored text.
func (l *Ledger) Checkpoint(ctx context.Context, origin string, signers ...note.Signer) (Checkpoint, []byte, error) {
	if l.sideErr != nil {
		return Checkpoint{}, nil, l.sideErr
	}
	// Under the exclusive lock: two checkpoints cannot interleave (an older,
	// smaller one replacing a newer), and verify, which reads X.checkpoint
	// under the shared lock, sees it together with the tree it describes.
	if l.lockF != nil {
		if err := l.lock(ctx, true, l.opts.LockTimeout); err != nil {
			return Checkpoint{}, nil, err
		}
		defer l.unlock()
	}
	st, err := l.state()
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if k := l.opts.Checkpoint; k != nil {
		// A plane ledger: never sign over a stored checkpoint the ledger
		// contradicts; a missing one may be re-anchored on request.
		rootAt := func(size int64) (tlog.Hash, error) { return tlog.TreeHash(size, &l.hashes) }
		if err := l.checkStoredNow(st.Size, true, rootAt); err != nil {
			return Checkpoint{}, nil, err
		}
		signers = append([]note.Signer{k.Signer}, signers...)
	}
	c := Checkpoint{Origin: origin, Size: st.Size, Root: st.Root}
	text := []byte(c.Text())
	if len(signers) > 0 {
		if text, err = c.Sign(signers...); err != nil {
			return c, nil, err
		}
	}
	_, path, _ := SidePaths(l.path)
	if err := atomicfile.Write(path, text, 0o644); err != nil {
		return c, nil, err
	}
	return c, text, nil
}

// ReadCheckpoint returns the stored X.checkpoint bytes, or nil if none.
// Like every side file it is never read through a symbolic link, must be a
// regular file, and is at most maxCheckpoint bytes.
func (l *Ledger) ReadCheckpoint() ([]byte, error) {
	_, path, _ := SidePaths(l.path)
	f, err := regfile.OpenFile(path, os.O_RDONLY|regfile.NoFollow, 0)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCheckpoint+1))
	if err == nil && len(b) > maxCheckpoint {
		return nil, errorf(CheckpointInvalid, "%s is larger than %d bytes: not a checkpoint", path, maxCheckpoint)
	}
	return b, err
}

// maxCheckpoint bounds a checkpoint file: a note of a few lines and its
// signatures is far smaller.
const maxCheckpoint = 1 << 20

// Inclusion is an RFC 6962 inclusion proof of entry Seq in the tree of size
// TreeSize, with the checkpoint it verifies against.
type Inclusion struct {
	Seq        int64    `json:"seq"`
	TreeSize   int64    `json:"tree_size"`
	LeafHash   string   `json:"leaf_hash"`
	RootHash   string   `json:"root_hash"`
	Proof      []string `json:"proof"`
	Checkpoint string   `json:"checkpoint"`
}

// ProofReader is a Store that reads, in one go, everything an inclusion
// proof needs: a database store, each of whose reads is a round trip to a
// server. ProveInclusion uses it when the store is one; the answer is the
// same as through State, ReadCheckpoint and ReadHashes.
type ProofReader interface {
	// ReadProof returns, as of one moment, the ledger's size, its stored
	// checkpoint (as ReadCheckpoint: nil if none), and a tlog.HashReader
	// that holds at least the stored hashes of the roots of the trees of
	// the current size and of treeSize (0: of the stored checkpoint's
	// size), of seq's leaf, and of seq's inclusion proof in those trees.
	// A hash the reader lacks is an error when read, never a zero hash.
	ReadProof(ctx context.Context, seq, treeSize int64) (ProofView, error)
}

// ProofView is what a ProofReader reads for an inclusion proof.
type ProofView struct {
	Size       int64
	Checkpoint []byte
	Hashes     tlog.HashReader
}

// ProveInclusion returns an inclusion proof of seq in the ledger s. With
// treeSize 0 it proves against the stored checkpoint when that covers seq,
// else against the current tree (with an unsigned checkpoint body). It
// reads O(log n) stored hashes: through one ReadProof when s is a
// ProofReader.
func ProveInclusion(ctx context.Context, s Store, seq, treeSize int64, origin string) (Inclusion, error) {
	var st State
	var hr tlog.HashReader = s
	var stored []byte
	if pr, ok := s.(ProofReader); ok {
		v, err := pr.ReadProof(ctx, seq, treeSize)
		if err != nil {
			return Inclusion{}, err
		}
		// The current tree's root, as State computes it: a store whose
		// stored hashes do not reach its size proves nothing.
		st.Size, hr, stored = v.Size, v.Hashes, v.Checkpoint
		if _, err := tlog.TreeHash(st.Size, hr); err != nil {
			return Inclusion{}, err
		}
	} else {
		var err error
		if st, err = s.State(ctx); err != nil {
			return Inclusion{}, err
		}
		if treeSize == 0 {
			stored, _ = s.ReadCheckpoint()
		}
	}
	ckpt := ""
	if treeSize == 0 {
		treeSize = st.Size
		// Prefer the stored checkpoint when it covers seq; its root is
		// checked against the tree below, so a stale or forged file cannot
		// mislead.
		if b := stored; b != nil {
			if c, err := parseBody(b); err == nil && seq < c.Size && c.Size <= st.Size {
				treeSize, ckpt = c.Size, string(b)
			}
		}
	}
	if seq < 0 || seq >= treeSize || treeSize > st.Size {
		return Inclusion{}, errorf("OUT_OF_RANGE", "cannot prove seq %d in a tree of size %d (the ledger holds %d entries)", seq, treeSize, st.Size)
	}
	root, err := tlog.TreeHash(treeSize, hr)
	if err != nil {
		return Inclusion{}, err
	}
	if ckpt != "" {
		if c, err := parseBody([]byte(ckpt)); err != nil || c.Root != root {
			return Inclusion{}, errorf(CheckpointInconsistent, "stored checkpoint at size %d does not match the ledger's root (run cp-ledger verify)", treeSize)
		}
	} else {
		ckpt = Checkpoint{Origin: origin, Size: treeSize, Root: root}.Text()
	}
	p, err := tlog.ProveRecord(treeSize, seq, hr)
	if err != nil {
		return Inclusion{}, err
	}
	leaf, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, seq)})
	if err != nil {
		return Inclusion{}, err
	}
	return Inclusion{Seq: seq, TreeSize: treeSize, LeafHash: hex.EncodeToString(leaf[0][:]),
		RootHash: hex.EncodeToString(root[:]), Proof: hexes(p), Checkpoint: ckpt}, nil
}

// parseBody parses the body of a checkpoint file, signed or not, without
// checking signatures.
func parseBody(b []byte) (Checkpoint, error) {
	text := string(b)
	if i := strings.Index(text, "\n\n"); i >= 0 {
		text = text[:i+1]
	}
	return ParseCheckpoint(text)
}

// Consistency is an RFC 6962 consistency proof between the trees of sizes
// From and To.
type Consistency struct {
	From     int64    `json:"from"`
	To       int64    `json:"to"`
	FromRoot string   `json:"from_root"`
	ToRoot   string   `json:"to_root"`
	Proof    []string `json:"proof"`
}

// ProveConsistency proves that the tree of size from of the ledger s is a
// prefix of its tree of size to (0: the current size).
func ProveConsistency(ctx context.Context, s Store, from, to int64) (Consistency, error) {
	st, err := s.State(ctx)
	if err != nil {
		return Consistency{}, err
	}
	if to == 0 {
		to = st.Size
	}
	if from < 1 || from > to || to > st.Size {
		return Consistency{}, errorf("OUT_OF_RANGE", "cannot prove consistency from %d to %d (the ledger holds %d entries)", from, to, st.Size)
	}
	p, err := tlog.ProveTree(to, from, s)
	if err != nil {
		return Consistency{}, err
	}
	fr, err := tlog.TreeHash(from, s)
	if err != nil {
		return Consistency{}, err
	}
	tr, err := tlog.TreeHash(to, s)
	if err != nil {
		return Consistency{}, err
	}
	return Consistency{From: from, To: to, FromRoot: hex.EncodeToString(fr[:]), ToRoot: hex.EncodeToString(tr[:]), Proof: hexes(p)}, nil
}

// VerifyInclusion checks an inclusion proof offline: the checkpoint in the
// proof must open (a signed one needs a verifier among verifiers), state the
// proof's tree size and root, and the proof must lead from the leaf to that
// root.
func VerifyInclusion(p Inclusion, verifiers note.Verifiers) error {
	c, _, err := OpenCheckpoint([]byte(p.Checkpoint), verifiers)
	if err != nil {
		return proofErr("checkpoint: %v", err)
	}
	root, err := parseHash(p.RootHash)
	if err != nil {
		return proofErr("root_hash: %v", err)
	}
	if c.Size != p.TreeSize || c.Root != root {
		return proofErr("checkpoint states size %d and a different root than the proof (size %d)", c.Size, p.TreeSize)
	}
	leaf, err := parseHash(p.LeafHash)
	if err != nil {
		return proofErr("leaf_hash: %v", err)
	}
	proof, err := parseHashes(p.Proof)
	if err != nil {
		return proofErr("proof: %v", err)
	}
	if err := tlog.CheckRecord(proof, p.TreeSize, root, p.Seq, leaf); err != nil {
		return proofErr("inclusion proof of seq %d in tree %d does not verify", p.Seq, p.TreeSize)
	}
	return nil
}

// VerifyConsistency checks a consistency proof offline.
func VerifyConsistency(p Consistency) error {
	fr, err := parseHash(p.FromRoot)
	if err != nil {
		return proofErr("from_root: %v", err)
	}
	tr, err := parseHash(p.ToRoot)
	if err != nil {
		return proofErr("to_root: %v", err)
	}
	proof, err := parseHashes(p.Proof)
	if err != nil {
		return proofErr("proof: %v", err)
	}
	if err := tlog.CheckTree(proof, p.To, tr, p.From, fr); err != nil {
		return proofErr("consistency proof from %d to %d does not verify", p.From, p.To)
	}
	return nil
}

func proofErr(format string, args ...any) error {
	return errorf("PROOF_INVALID", format, args...)
}

func hexes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h[:])
	}
	return out
}

func parseHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize || hex.EncodeToString(b) != s {
		return h, fmt.Errorf("%q is not a lowercase hex SHA-256 hash", s)
	}
	copy(h[:], b)
	return h, nil
}

func parseHashes(ss []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		h, err := parseHash(s)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}
