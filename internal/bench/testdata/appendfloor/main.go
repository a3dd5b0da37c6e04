// Command appendfloor is the least a process can do to record one request
// durably with a signed checkpoint, in Go, on the machine at hand: read
// stdin, append one line holding its SHA-256 to DIR/floor.jsonl and fsync
// it, sign a checkpoint note of it with the plane's signer (pkg/keys: no
// base-point table) and write it beside, fsynced and renamed into place.
// No policy, no parsing, no index, no lock: what a one-decision cp-route
// process is measured against besides a bare process
// (BenchmarkSingleRouteOverBare's floor-ms-over-bare). With N, it does so
// N times in a row (a gateway call records two entries: its reservation
// before the call, its evidence after).
//
//	appendfloor DIR SKEY-FILE VKEY-FILE [N] < request
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/mod/sumdb/note"

	"github.com/control-plane/cp/pkg/keys"
)

func main() {
	n := 1
	if len(os.Args) > 4 {
		var err error
		if n, err = strconv.Atoi(os.Args[4]); err != nil {
			fmt.Fprintln(os.Stderr, "appendfloor: N:", err)
			os.Exit(2)
		}
	}
	in, err := io.ReadAll(os.Stdin)
	for i := 0; err == nil && i < n; i++ {
		err = record(in, os.Args[1], os.Args[2], os.Args[3])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "appendfloor:", err)
		os.Exit(1)
	}
}

func record(in []byte, dir, skeyFile, vkeyFile string) error {
	sum := sha256.Sum256(in)
	line := fmt.Appendf(nil, "{\"sha256\":%q,\"size\":%d}\n", hex.EncodeToString(sum[:]), len(in))
	f, err := os.OpenFile(filepath.Join(dir, "floor.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(line); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	skey, err := os.ReadFile(skeyFile)
	if err != nil {
		return err
	}
	vkey, err := os.ReadFile(vkeyFile)
	if err != nil {
		return err
	}
	signer, err := keys.PairSigner(string(skey), string(vkey))
	if err != nil {
		return err
	}
	msg, err := note.Sign(&note.Note{Text: fmt.Sprintf("floor\n1\n%x\n", sha256.Sum256(line))}, signer)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "floor.ckpt.tmp")
	c, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := c.Write(msg); err != nil {
		c.Close()
		return err
	}
	if err := c.Sync(); err != nil {
		c.Close()
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "floor.ckpt")); err != nil {
		return err
	}
	_, err = os.Stdout.Write(line)
	return err
}
