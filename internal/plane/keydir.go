package plane

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/ledger"
	"golang.org/x/mod/sumdb/note"
)

// CheckpointKeyFile is the plane's checkpoint signing key, in its key
// directory (KeyDir), outside the plane; CheckpointPubFile is its verifier
// key, beside it, so that a process signs without deriving it
// (keys.PairSigner).
const (
	CheckpointKeyFile = "checkpoint.key"
	CheckpointPubFile = "checkpoint.pub"
	// RootFile binds the key directory to the one plane its keys serve:
	// the real path of that plane's HO3 root, one line. A directory that
	// copies the plane's tier.json (and so names its plane_name) is not
	// that plane: its ledgers are not signed, its tokens not minted
	// (KeyRoot). Moving a plane is rewriting this file.
	RootFile = "root"
)

// ValidPlaneName reports whether name can be a plane_name (it names a
// directory, a token audience, a note key and a checkpoint origin prefix):
// 1-63 lower-case letters, digits and hyphens, not starting with a hyphen
// (tier.schema.json's pattern; no regexp, whose initialisation a one-entry
// append cannot afford).
func ValidPlaneName(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] == '-' {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// NewPlaneName returns a random plane_name.
func NewPlaneName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "plane-" + hex.EncodeToString(b)
}

// KeyDir returns the key directory of the plane named name, outside the
// plane: $XDG_CONFIG_HOME/control-plane/<name>, with XDG's default
// $HOME/.config (a relative XDG_CONFIG_HOME is ignored, as the XDG spec says).
func KeyDir(name string) (string, error) {
	if !ValidPlaneName(name) {
		return "", fmt.Errorf("plane name %q: want lower-case letters, digits and hyphens", name)
	}
	base := os.Getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(base) {
		home := os.Getenv("HOME")
		if !filepath.IsAbs(home) {
			return "", errors.New("neither XDG_CONFIG_HOME nor HOME is an absolute path: no key directory")
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "control-plane", name), nil
}

// CheckpointKeyName is the note key name of a plane's checkpoint key, as
// trusted in config/trusted_keys.json.
func CheckpointKeyName(planeName string) string { return planeName + "-checkpoint" }

// Origin is the checkpoint origin of a tier's ledger at path:
// <plane_name>/<plane_id>/<ledger name>, or <plane_id>/<ledger name> for a
// plane without a plane_name. An HO1 session's ledger
// (sessions/<SES>/ledger/session.jsonl) is <plane_name>/ho1/sessions/<SES>:
// an origin names one ledger (DESIGN.md §5), and a turn's declared input
// {ledger, seq, entry_hash} names its ledger by it. (Sessions whose
// checkpoints were signed before shared <plane_name>/ho1/session; those
// checkpoints still verify, as nothing holds a checkpoint to its origin,
// and their next append signs one with their own.)
func Origin(t Tier, path string) string {
	o := t.PlaneID + "/" + strings.TrimSuffix(filepath.Base(path), ".jsonl")
	if id, ok := sessionOfLedger(path); ok && t.Tier == "HO1" {
		o = t.PlaneID + "/sessions/" + id
	}
	if t.PlaneName != "" {
		o = t.PlaneName + "/" + o
	}
	return o
}

// sessionOfLedger returns the session id of path when it is a session's
// ledger, .../sessions/<SES>/ledger/session.jsonl.
func sessionOfLedger(path string) (string, bool) {
	if filepath.Base(path) != "session.jsonl" {
		return "", false
	}
	dir := filepath.Dir(path)
	if filepath.Base(dir) != "ledger" {
		return "", false
	}
	ses := filepath.Dir(dir)
	id := filepath.Base(ses)
	return id, filepath.Base(filepath.Dir(ses)) == "sessions" && ValidSessionID(id)
}

// SessionOrigin is the checkpoint origin of HO1 session id's ledger, on
// the plane whose HO1 tier is t (see Origin).
func SessionOrigin(t Tier, id string) string {
	return Origin(t, filepath.Join("sessions", id, "ledger", "session.jsonl"))
}

// ledgerOptions returns the options to append to the ledger at path of the
// tier t whose directory is dir. A tier with a plane_name signs a
// checkpoint with every append, with the plane's key (read once per
// process); when that key cannot be read, appending is refused
// (CHECKPOINT_KEY_UNAVAILABLE): an entry no checkpoint covers could be cut
// unseen, and a plane's recorder must not go on silently without it.
func ledgerOptions(dir string, t Tier, path string, actor Actor) (ledger.Options, error) {
	opts := ledger.Options{Actor: actor.Name, AuthOff: actor.AuthOff}
	if t.PlaneName == "" {
		return opts, nil
	}
	if err := KeyRoot(t.PlaneName, HO3Root(dir, t)); err != nil {
		return opts, err
	}
	s, err := checkpointSigner(t.PlaneName)
	if err != nil {
		return opts, err
	}
	opts.Checkpoint = &ledger.CheckpointKey{Origin: Origin(t, path), Signer: s,
		Trusted: func() (note.Verifiers, error) {
			ks, err := trust.Load(dir)
			if err != nil {
				return nil, err
			}
			return trust.Verifiers(ks, trust.PurposeCheckpoint, "")
		}}
	return opts, nil
}

// HO3Root returns the HO3 root of the tier t whose directory is dir.
func HO3Root(dir string, t Tier) string {
	if t.Tier == "HO3" {
		return dir
	}
	return filepath.Dir(filepath.Dir(dir)) // <root>/planes/ho2
}

// making holds the plane names whose key this process made and has not
// bound yet: bootstrap signs its GENESIS entries in the directory it
// builds the plane in, before the plane takes its place (BindRoot).
var making sync.Map // plane name → true

// KeyRoot refuses to use the keys of the plane named name for a plane
// whose HO3 root is not the one its key directory is bound to (RootFile):
// a directory holding a copy of the plane's tier.json would otherwise have
// its own ledgers signed with the plane's checkpoint key, or tokens minted
// with its auth key (PLANE_KEY_BOUND). A key directory without the file
// (a plane made before keys were bound) is bound on this first use.
func KeyRoot(name, root string) error {
	if _, ok := making.Load(name); ok {
		return nil
	}
	// Checked once per process and root, as the key itself is read once
	// (checkpointSigner): a step opens several of a plane's ledgers.
	if _, ok := boundRoots.Load(name + "\x00" + root); ok {
		return nil
	}
	if err := keyRoot(name, root); err != nil {
		return err
	}
	boundRoots.Store(name+"\x00"+root, true)
	return nil
}

// boundRoots holds the (plane name, root) pairs KeyRoot accepted.
var boundRoots sync.Map

func keyRoot(name, root string) error {
	dir, err := KeyDir(name)
	if err != nil {
		return keyUnavailable(name, "", err)
	}
	real, err := realPath(root)
	if err != nil {
		return keyUnavailable(name, dir, err)
	}
	path := filepath.Join(dir, RootFile)
	b, err := readKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Lstat(filepath.Join(dir, CheckpointKeyFile)); serr != nil {
			return keyUnavailable(name, dir, serr) // no key at all: nothing to bind
		}
		if err = atomicfile.Publish(path, []byte(real+"\n"), 0o600); err == nil {
			return nil
		}
		if b, err = readKey(path); err != nil { // bound meanwhile by another process
			return keyUnavailable(name, path, err)
		}
	} else if err != nil {
		return keyUnavailable(name, path, err)
	}
	if bound := strings.TrimSuffix(string(b), "\n"); bound != real {
		return refuse("PLANE_KEY_BOUND", "the keys of plane %s serve the plane at %s, not %s: a copy of a plane's tier.json does not make a plane (to move a plane, write its new path into %s)", name, bound, real, path)
	}
	return nil
}

// BindRoot binds the key directory of the plane named name to the plane at
// root (bootstrap, once the plane has taken its place), replacing any
// binding: a plane moved, or copied to be worked on instead.
func BindRoot(name, root string) error {
	dir, err := KeyDir(name)
	if err != nil {
		return err
	}
	real, err := realPath(root)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, RootFile), []byte(real+"\n"), 0o600); err != nil {
		return err
	}
	making.Delete(name)
	return nil
}

// realPath is root's absolute path with every symbolic link resolved.
func realPath(root string) (string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// signers caches each plane's checkpoint signer: the key is read once per
// process, however many ledgers and batches it signs for. macRoots caches,
// beside it, the secret that MACKey derives its keys from.
var signers, macRoots sync.Map // plane name → note.Signer; plane name → [32]byte

func checkpointSigner(name string) (note.Signer, error) {
	if s, ok := signers.Load(name); ok {
		return s.(note.Signer), nil
	}
	dir, err := KeyDir(name)
	if err != nil {
		return nil, keyUnavailable(name, "", err)
	}
	path := filepath.Join(dir, CheckpointKeyFile)
	b, err := readKey(path)
	if err != nil {
		return nil, keyUnavailable(name, path, err)
	}
	pub, err := readKey(filepath.Join(dir, CheckpointPubFile))
	if err != nil {
		return nil, keyUnavailable(name, path, err)
	}
	s, err := keys.PairSigner(string(b), string(pub))
	if err != nil {
		return nil, keyUnavailable(name, path, err)
	}
	remember(name, b, s)
	return s, nil
}

// remember caches the signer of plane name's checkpoint key, and the
// secret MACKey derives from: the key file's bytes, hashed.
func remember(name string, keyFile []byte, s note.Signer) {
	macRoots.Store(name, sha256.Sum256(keyFile))
	signers.Store(name, s)
}

// forget drops what remember cached.
func forget(name string) {
	signers.Delete(name)
	macRoots.Delete(name)
}

// MACKey returns the key that authenticates one kind of file the plane's
// tools derive and keep inside the plane (purpose names the kind, e.g.
// "llm-tally"), or nil for a tier without a plane_name (no checkpoint key:
// nothing it keeps can be authenticated, its ledgers included). The key
// is derived (HKDF-SHA-256) from the plane's checkpoint key, which lives
// 0600 in its owner's key directory, outside the plane: the plane's owner
// can make and check such a MAC, a process that can only write the plane's
// files cannot. Each purpose gets its own key. When the checkpoint key
// cannot be read it fails as an append would (CHECKPOINT_KEY_UNAVAILABLE).
// It does not check that t's plane is the one the key serves: its caller
// has opened the plane's ledger to append (OpenLedger checks, KeyRoot).
func MACKey(t Tier, purpose string) ([]byte, error) {
	if t.PlaneName == "" {
		return nil, nil
	}
	if _, err := checkpointSigner(t.PlaneName); err != nil {
		return nil, err
	}
	root, ok := macRoots.Load(t.PlaneName)
	if !ok { // forgotten meanwhile (a bootstrap undone)
		return nil, keyUnavailable(t.PlaneName, "", errors.New("the key was removed"))
	}
	secret := root.([32]byte)
	return hkdf.Key(sha256.New, secret[:], nil, "control-plane/mac/"+purpose, sha256.Size)
}

func keyUnavailable(name, path string, err error) error {
	return refuse("CHECKPOINT_KEY_UNAVAILABLE",
		"plane %s signs a checkpoint with every append, and its key %s cannot be used: %v (run as the plane's owner, with the XDG_CONFIG_HOME or HOME the plane was made with)", name, path, err)
}

// readKey reads a key file that must be a regular file, not a link.
func readKey(path string) ([]byte, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return os.ReadFile(path)
}

// MakeCheckpointKey creates the plane's checkpoint key in its key
// directory (0700, the key 0600), refusing a directory inside the plane
// (root) or one that already holds a key (the name is taken). It returns
// the verifier key and a function that removes what it made.
func MakeCheckpointKey(name, root string) (verifier, path string, undo func(), err error) {
	dir, err := KeyDir(name)
	if err != nil {
		return "", "", nil, refuse("PLANE_NAME_INVALID", "%v", err)
	}
	if rel, err := filepath.Rel(root, dir); err == nil && filepath.IsLocal(rel) {
		return "", "", nil, refuse("KEY_DIR_INSIDE_PLANE", "the key directory %s is inside the plane %s: a key kept in the plane protects nothing", dir, root)
	}
	path = filepath.Join(dir, CheckpointKeyFile)
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		return "", "", nil, refuse("PLANE_NAME_TAKEN", "%s already exists: plane name %s is taken (choose another --plane-name)", path, name)
	}
	skey, vkey, err := keys.Generate(CheckpointKeyName(name))
	if err != nil {
		return "", "", nil, err
	}
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", "", nil, err
	}
	rmdir := func() {
		if errors.Is(statErr, fs.ErrNotExist) {
			os.Remove(dir)
		}
	}
	pubPath := filepath.Join(dir, CheckpointPubFile)
	if err := atomicfile.Create(path, []byte(skey+"\n"), 0o600); err != nil {
		rmdir() // and never remove a key someone else made meanwhile
		return "", "", nil, err
	}
	undo = func() {
		os.Remove(path)
		os.Remove(pubPath)
		os.Remove(filepath.Join(dir, RootFile))
		rmdir()
		forget(name)
		making.Delete(name)
	}
	if err := atomicfile.Create(pubPath, []byte(vkey+"\n"), 0o600); err != nil {
		undo()
		return "", "", nil, err
	}
	s, err := keys.PairSigner(skey, vkey)
	if err != nil {
		undo()
		return "", "", nil, err
	}
	remember(name, []byte(skey+"\n"), s)
	making.Store(name, true) // until BindRoot: the plane is being built elsewhere
	return vkey, path, undo, nil
}
