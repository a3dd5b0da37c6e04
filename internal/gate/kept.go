package gate

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/control-plane/cp/internal/journal"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/archive"
)

// owner is who owns a file on disk and how many names it has.
type owner struct {
	links    uint64
	uid, gid uint32
	ok       bool // the platform reports them
}

func ownerOf(fi fs.FileInfo) owner {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return owner{}
	}
	return owner{links: uint64(st.Nlink), uid: st.Uid, gid: st.Gid, ok: true}
}

// checkOwner adds a finding when a file of the installed state has another
// name (HARD_LINK: a hard link shares its bytes with a file outside the
// plane's control, so a write there changes it unseen, or it pins a file
// the plane meant to replace) or another owner than the plane root
// (OWNER_MISMATCH: someone other than the plane's user put it there).
func checkOwner(r *Result, p string, o, plane owner) {
	if !o.ok || !plane.ok {
		return
	}
	if o.links > 1 {
		r.fail("HARD_LINK", p, "has %d names (hard links); an installed file has exactly one", o.links)
	}
	if o.uid != plane.uid || o.gid != plane.gid {
		r.fail("OWNER_MISMATCH", p, "owned by uid %d gid %d; the plane root by uid %d gid %d", o.uid, o.gid, plane.uid, plane.gid)
	}
}

// keptState adds to r what is wrong with the installed state beside the
// governed files, for every installed package of the tier at root:
//
//   - a journal left by an interrupted change (JOURNAL_PENDING), or one that
//     cannot be recovered (JOURNAL_CORRUPT): the plane is mid-change;
//   - its receipt and installed manifest are regular, read-only (0444:
//     else MODE_MISMATCH), single-named and the plane's (checkOwner);
//   - its kept archive, packages_store/<PKG-ID>-<version>.tar.gz, is there
//     (ARCHIVE_MISSING) and hashes to the archive_sha256 that both
//     packages_state.csv and the receipt recorded (HASH_MISMATCH); it and
//     its signature, when there is one, are read-only, single-named and the
//     plane's (G5, and RECEIPTS in integrity, verify the signature).
//
// Archives are hashed on every core (hashPaths), one file per core at a time.
func keptState(r *Result, root string, pr *os.Root, dirs *archive.DirRoots, pkgs []registry.Row, receipts map[string]string, planeOwner owner) error {
	if err := journal.Pending(root); err != nil {
		var je *journal.Error
		if !errors.As(err, &je) {
			return err
		}
		r.fail(je.Code(), journal.Dir, "%s", strings.TrimPrefix(je.Error(), "journal: "))
	}
	var archives []string
	var want []registry.Row
	for _, p := range pkgs {
		if p["status"] != registry.StatusInstalled {
			continue
		}
		id := p["package_id"]
		for _, f := range []string{plane.ReceiptPath(id), plane.ManifestPath(id)} {
			if _, err := keptFile(r, pr, f, planeOwner); err != nil { // a missing one is RECEIPT_INVALID already
				return err
			}
		}
		store := plane.StorePath(id, p["version"])
		switch fi, err := keptFile(r, pr, store, planeOwner); {
		case err != nil:
			return err
		case fi == nil:
			r.fail("ARCHIVE_MISSING", store, "%s %s's kept archive is not in packages_store/", id, p["version"])
		case fi.Mode().IsRegular():
			archives = append(archives, store)
			want = append(want, p)
		}
		// a missing or bad signature is G5's finding (RECEIPTS' in integrity)
		if _, err := keptFile(r, pr, store+".sig", planeOwner); err != nil {
			return err
		}
	}
	sums, err := hashPaths(dirs, archives)
	if err != nil {
		return err
	}
	for i, a := range archives {
		row := want[i]
		switch rc := receipts[row["package_id"]]; {
		case sums[i].SHA256 != row["archive_sha256"]:
			r.fail("HASH_MISMATCH", a, "the kept archive hashes to %s; %s %s was installed from %s", sums[i].SHA256, row["package_id"], row["version"], row["archive_sha256"])
		case rc != "" && rc != sums[i].SHA256:
			r.fail("HASH_MISMATCH", a, "the kept archive hashes to %s, as packages_state.csv says; %s's receipt records %s", sums[i].SHA256, row["package_id"], rc)
		}
	}
	return nil
}

// keptFile checks one file of the installed state outside the governed
// roots: a regular file (else NOT_REGULAR), mode 0444 (else MODE_MISMATCH),
// single-named and the plane's. It returns the file's lstat, nil when
// there is none.
func keptFile(r *Result, pr *os.Root, p string, planeOwner owner) (fs.FileInfo, error) {
	fi, err := pr.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		r.fail("NOT_REGULAR", p, "a %s; the installed state is regular files", kindOf(fi.Mode().Type()))
		return fi, nil
	}
	if fi.Mode().Perm() != 0o444 {
		r.fail("MODE_MISMATCH", p, "mode %04o; receipts, installed manifests and kept archives are read-only, 0444", uint32(fi.Mode().Perm()))
	}
	checkOwner(r, p, ownerOf(fi), planeOwner)
	return fi, nil
}
