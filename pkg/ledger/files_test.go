package ledger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/stretchr/testify/require"
)

// within fails the test if fn has not returned after a few seconds: a
// refusal must come at once, never after a blocked open or read.
func within(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("blocked: no answer after 5 s")
		return nil
	}
}

func requireCode(t *testing.T, err error, code string) {
	t.Helper()
	var coded interface{ Code() string }
	require.True(t, errors.As(err, &coded), "got %v, want %s", err, code)
	require.Equal(t, code, coded.Code(), "%v", err)
}

// TestPlantedSideFileLinks: a symbolic link planted as X.tlog, X.lock or
// X.checkpoint is never followed (issue 10, item 14): the append is
// refused and the file the link points at is left untouched.
func TestPlantedSideFileLinks(t *testing.T) {
	for _, side := range []string{".tlog", ".lock", ".checkpoint"} {
		t.Run(side, func(t *testing.T) {
			path := newLedger(t, 3)
			outside := filepath.Join(t.TempDir(), "root-only.txt")
			const secret = "root's own file\n"
			require.NoError(t, os.WriteFile(outside, []byte(secret), 0o600))
			side := strings.TrimSuffix(path, ".jsonl") + side
			os.Remove(side)
			require.NoError(t, os.Symlink(outside, side))

			err := within(t, func() error {
				l, err := OpenWriter(path, Options{})
				if err != nil {
					return err
				}
				defer l.Close()
				if _, err := l.Append(context.Background(), []Draft{{EventType: "X"}}); err != nil {
					return err
				}
				_, _, err = l.Checkpoint(context.Background(), "o")
				return err
			})
			if strings.HasSuffix(side, ".checkpoint") {
				// The checkpoint is replaced by rename: the link itself
				// is replaced, and what it pointed at is not written.
				require.NoError(t, err)
				fi, err := os.Lstat(side)
				require.NoError(t, err)
				require.True(t, fi.Mode().IsRegular())
			} else {
				requireCode(t, err, regfile.Code)
				require.Contains(t, err.Error(), "symbolic link")
			}
			b, err := os.ReadFile(outside)
			require.NoError(t, err)
			require.Equal(t, secret, string(b), "the file behind the link was written")

			// Readers refuse a planted link too.
			if !strings.HasSuffix(side, ".checkpoint") {
				_, err = verifyPath(context.Background(), path, VerifyOptions{})
				requireCode(t, err, regfile.Code)
			}
		})
	}
	t.Run(".checkpoint read", func(t *testing.T) {
		path := newLedger(t, 3)
		outside := filepath.Join(t.TempDir(), "x")
		require.NoError(t, os.WriteFile(outside, []byte("x\n1\nAAAA\n"), 0o600))
		require.NoError(t, os.Symlink(outside, strings.TrimSuffix(path, ".jsonl")+".checkpoint"))
		_, err := verifyPath(context.Background(), path, VerifyOptions{})
		requireCode(t, err, regfile.Code)
	})
}

// TestPlantedSideFileHardLinks: a hard link planted as X.tlog or
// X.checkpoint (to a file its planter cannot write, where
// fs.protected_hardlinks is off, or for root) is refused like a symbolic
// link: the next append would otherwise write the stored hashes, or the
// checkpoint in place, into the file behind the link.
func TestPlantedSideFileHardLinks(t *testing.T) {
	for _, side := range []string{".tlog", ".checkpoint"} {
		t.Run(side, func(t *testing.T) {
			path := newLedger(t, 3)
			sp := strings.TrimSuffix(path, ".jsonl") + side
			if side == ".checkpoint" {
				l, err := OpenWriter(path, Options{})
				require.NoError(t, err)
				_, _, err = l.Checkpoint(context.Background(), "o")
				require.NoError(t, err)
				l.Close()
			}
			old, err := os.ReadFile(sp)
			require.NoError(t, err)
			// The victim has the side file's length, so that an in-place
			// write of a checkpoint of the same length would go through.
			outside := filepath.Join(filepath.Dir(path), "victim.txt")
			secret := []byte(strings.Repeat("s", len(old)))
			require.NoError(t, os.WriteFile(outside, secret, 0o600))
			require.NoError(t, os.Remove(sp))
			require.NoError(t, os.Link(outside, sp))
			require.NoError(t, os.WriteFile(outside, old, 0o600)) // a valid side file, for now
			err = within(t, func() error {
				l, err := OpenWriter(path, Options{})
				if err != nil {
					return err
				}
				defer l.Close()
				if _, err := l.Append(context.Background(), []Draft{{EventType: "X"}}); err != nil {
					return err
				}
				_, _, err = l.Checkpoint(context.Background(), "o")
				return err
			})
			b, rerr := os.ReadFile(outside)
			require.NoError(t, rerr)
			if side == ".checkpoint" {
				// Replaced by rename: the link is replaced, its target kept.
				require.NoError(t, err)
				require.Equal(t, string(old), string(b), "the file behind the link was written")
				return
			}
			requireCode(t, err, "LEDGER_LINKED")
			require.Equal(t, string(old), string(b), "the file behind the link was written")
		})
	}
}

// TestLedgerNamedThroughLink: a ledger is opened only by its own name: a
// symbolic link to it (whose side files and lock would be another's) is
// refused by every way of opening it, and so is writing a ledger file that
// has a second hard link.
func TestLedgerNamedThroughLink(t *testing.T) {
	path := newLedger(t, 3)
	link := filepath.Join(t.TempDir(), "A.jsonl")
	require.NoError(t, os.Symlink(path, link))
	for name, open := range map[string]func() error{
		"OpenWriter": func() error { _, err := OpenWriter(link, Options{}); return err },
		"Open":       func() error { _, err := Open(link, Options{}); return err },
		"OpenFile":   func() error { _, err := OpenFile(link); return err },
		"Verify":     func() error { _, err := verifyPath(context.Background(), link, VerifyOptions{}); return err },
	} {
		err := open()
		requireCode(t, err, regfile.Code)
		require.Contains(t, err.Error(), "symbolic link", name)
	}
	hard := filepath.Join(filepath.Dir(path), "B.jsonl")
	require.NoError(t, os.Link(path, hard))
	for _, p := range []string{path, hard} {
		_, err := OpenWriter(p, Options{})
		requireCode(t, err, "LEDGER_LINKED")
	}
	_, err := verifyPath(context.Background(), path, VerifyOptions{})
	require.NoError(t, err, "reading a hard-linked ledger is allowed")
}

// TestNotRegular: a FIFO or a device where a ledger or a side file is
// expected is refused at once (issue 10, items 15 and 18): no open or read
// waits for a writer, and /dev/zero is not an empty ledger.
func TestNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.jsonl")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	ops := map[string]func(string) error{
		"Verify":     func(p string) error { _, err := verifyPath(context.Background(), p, VerifyOptions{}); return err },
		"OpenWriter": func(p string) error { _, err := OpenWriter(p, Options{}); return err },
		"State": func(p string) error {
			l, err := Open(p, Options{})
			if err != nil {
				return err
			}
			defer l.Close()
			_, err = l.State(context.Background())
			return err
		},
	}
	for _, op := range ops {
		requireCode(t, within(t, func() error { return op(fifo) }), regfile.Code)
	}
	// /dev/zero itself (the tools refuse a name without .jsonl, and a link
	// to it is refused as a link; the device is refused as a device).
	_, err := verifyPath(context.Background(), "/dev/zero", VerifyOptions{})
	requireCode(t, err, regfile.Code)
	require.Contains(t, err.Error(), "a device")

	for _, side := range []string{".tlog", ".lock", ".checkpoint"} {
		path := newLedger(t, 2)
		sp := strings.TrimSuffix(path, ".jsonl") + side
		os.Remove(sp)
		require.NoError(t, syscall.Mkfifo(sp, 0o644))
		for name, op := range ops {
			err := within(t, func() error { return op(path) })
			if name != "Verify" && side == ".checkpoint" {
				require.NoError(t, err) // an append or State does not read the checkpoint
				continue
			}
			requireCode(t, err, regfile.Code)
		}
	}
}

// TestEndlessLine: a file of one line longer than MaxLine (what /dev/zero
// looked like) is refused by verify rather than held in memory.
func TestEndlessLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "long.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(MaxLine+4<<20)) // zeros, no newline
	require.NoError(t, f.Close())
	_, err = verifyPath(context.Background(), path, VerifyOptions{})
	requireCode(t, err, "LEDGER_INVALID")
	require.Contains(t, err.Error(), "longer than")
}
