package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/authcmd"
	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
)

// treeListing lists every file under root with its mode, size and sha256
// (symbolic links with their target): two equal listings are the same tree.
func treeListing(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := "-"
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(data))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			sum = "-> " + target
		}
		size := fi.Size()
		if fi.IsDir() {
			size = 0
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%v %d %s %s\n", fi.Mode(), size, sum, rel)
		return nil
	}))
	return b.String()
}

// worldReadable makes dir and every directory above it inside the
// temporary directory searchable and readable by others, so that another
// OS user reaches what is inside. It never changes the temporary directory
// itself, nor anything outside it.
func worldReadable(t *testing.T, dir string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir())
	require.True(t, strings.HasPrefix(dir, tmp+string(filepath.Separator)), "%s is not under %s", dir, tmp)
	for d := dir; d != tmp; d = filepath.Dir(d) {
		fi, err := os.Lstat(d)
		require.NoError(t, err)
		require.True(t, fi.IsDir(), "%s", d)
		if fi.Mode().Perm()&0o005 != 0o005 {
			require.NoError(t, os.Chmod(d, fi.Mode().Perm()|0o005))
		}
	}
}

// TestMutatingVerbFromUserThatCannotWrite: DESIGN.md §8's enforced setup.
// From an OS user that cannot write the plane, a mutating verb fails
// closed before it acts, with PLANE_NOT_WRITABLE (exit 1), and changes no
// file of the plane — on a plane without auth, and on one with auth and a
// valid admin token (the token governs the tools, not the files). As root,
// the real cp-ledger runs as user nobody (setpriv); otherwise the plane is
// made read-only for the user running the test.
func TestMutatingVerbFromUserThatCannotWrite(t *testing.T) {
	asRoot := os.Geteuid() == 0
	var setpriv string
	if asRoot {
		var err error
		if setpriv, err = exec.LookPath("setpriv"); err != nil {
			t.Skip("running as root without setpriv: cannot run as another user")
		}
	}
	for _, withAuth := range []bool{false, true} {
		t.Run(fmt.Sprintf("auth=%v", withAuth), func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config")
			t.Setenv("XDG_CONFIG_HOME", cfg)
			root := filepath.Join(dir, "plane")
			_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "owner", AuthOff: true}})
			require.NoError(t, err)
			env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "XDG_CONFIG_HOME=" + cfg}
			if withAuth {
				resp := authcmd.Dispatch(context.Background(), cli.Request{"operation": "init", "sub": "ops"}, cli.Options{Env: &cli.Env{Root: root}})
				require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout)+string(resp.Stderr))
				e, err := resp.Envelope()
				require.NoError(t, err)
				env = append(env, "CONTROL_PLANE_TOKEN="+e.Result.(map[string]any)["token"].(string))
			}
			args := []string{"append", "--root", root, "--event-type", "NOTE", "--format", "json"}
			var cmd *exec.Cmd
			if asRoot {
				// nobody reaches the binary and the plane (reads), and owns
				// nothing of them.
				worldReadable(t, filepath.Dir(cpLedger))
				require.NoError(t, os.Chmod(cpLedger, 0o755))
				worldReadable(t, root)
				worldReadable(t, home)
				cmd = exec.Command(setpriv, append([]string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", cpLedger}, args...)...)
			} else {
				// The plane's directories read-only for their owner too.
				require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
					if err == nil && d.IsDir() {
						err = os.Chmod(p, 0o555)
					}
					return err
				}))
				t.Cleanup(func() {
					filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
						if err == nil && d.IsDir() {
							os.Chmod(p, 0o755)
						}
						return nil
					})
				})
				cmd = exec.Command(cpLedger, args...)
			}
			before := treeListing(t, root)
			cmd.Env = env
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err = cmd.Run()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "stdout %s stderr %s", out.String(), errb.String())
			require.Equal(t, cli.ExitDenied, ee.ExitCode(), "stdout %s stderr %s", out.String(), errb.String())
			var envl struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			line := bytes.TrimSpace(out.Bytes())
			if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
				line = line[i+1:]
			}
			require.NoError(t, json.Unmarshal(line, &envl), out.String())
			require.Equal(t, "PLANE_NOT_WRITABLE", envl.Error.Code, "stderr %s", errb.String())
			require.Regexp(t, `(?m)^cp-ledger: error: cp-ledger append: the OS user cannot write `, errb.String())
			t.Logf("as %s: %s", map[bool]string{true: "nobody", false: "a user with a read-only plane"}[asRoot], strings.TrimSpace(errb.String()))
			require.Equal(t, before, treeListing(t, root), "the plane is unchanged, byte for byte")

			if withAuth && asRoot {
				// CONTROL_PLANE_AUTH=off from a user that does not own the
				// plane: refused, even for a read.
				off := exec.Command(setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", cpLedger, "verify", "--root", root, "--format", "json")
				off.Env = append(env[:3:3], "CONTROL_PLANE_AUTH=off")
				var out, errb bytes.Buffer
				off.Stdout, off.Stderr = &out, &errb
				err := off.Run()
				require.ErrorAs(t, err, &ee, "stdout %s", out.String())
				require.Equal(t, cli.ExitDenied, ee.ExitCode())
				require.Contains(t, out.String(), `"code":"AUTH_OFF_REFUSED"`)
				require.Regexp(t, `(?m)^cp-ledger: error: CONTROL_PLANE_AUTH=off is honoured only for the OS user that owns the plane`, errb.String())
				require.Equal(t, before, treeListing(t, root))
			}
		})
	}
}
