package cp_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/schematest"
	"github.com/control-plane/cp/internal/testenv"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tidwall/gjson"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/control-plane/cp/internal/pgtest"
)

// binDir holds the binaries built from ./cmd/... once for all scripts.
var binDir string

// TestMain builds the binaries and starts a throwaway PostgreSQL for the
// scripts of tiers whose ledger is in a database (pgtest; [postgres]).
func TestMain(m *testing.M) {
	os.Exit(runMain(pgtest.M(m)))
}

func runMain(m interface{ Run() int }) int {
	tmp, err := testenv.MkdirTemp("cp-script-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binDir = filepath.Join(tmp, "bin")
	if out, err := build("./cmd/..."); err != nil {
		// One binary that does not build must not hide the others' scripts:
		// build them one by one, and let a script that needs a missing one
		// fail with "executable file not found".
		fmt.Fprintf(os.Stderr, "building ./cmd/...: %v\n%s", err, out)
		dirs, _ := filepath.Glob("cmd/*")
		for _, d := range dirs {
			if out, err := build("./" + d); err != nil {
				fmt.Fprintf(os.Stderr, "building ./%s: %v\n%s", d, err, out)
			}
		}
	}
	return m.Run()
}

// build builds packages into binDir, from the module root (the test's
// working directory: this file lives there).
func build(pkgs string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), pkgs)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

// updateGolden rewrites the golden files that scripts compare with "cmp
// stdout FILE" (go test -run TestScripts/gate -update): review the diff.
var updateGolden = flag.Bool("update", false, "rewrite scripts' golden files from the output")

// TestScripts runs the whole-binary scripts in testdata/script. Each script
// has its own work directory, which is also its HOME; no Control Plane
// variable of the caller's environment reaches the binaries.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		UpdateScripts:       *updateGolden,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			vars := env.Vars[:0]
			for _, kv := range env.Vars {
				k, _, _ := strings.Cut(kv, "=")
				switch k {
				case "CONTROL_PLANE", "CONTROL_PLANE_SIGNING_KEY", "CONTROL_PLANE_VERIFY_KEY":
					continue
				}
				vars = append(vars, kv)
			}
			env.Vars = vars
			env.Setenv("PATH", binDir+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("HOME", env.WorkDir)
			// Planes' checkpoint keys live under XDG_CONFIG_HOME: in the
			// script's own directory, never the caller's.
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Values[heldLocks{}] = map[string]*os.File{}
			// A script named postgres* gets a database of its own, its
			// DSN in $PGDSN (testscript names the work directory after
			// the script).
			if strings.Contains(filepath.Base(env.WorkDir), "postgres") && pgtest.Available() {
				dsn, drop, err := pgtest.NewDB()
				if err != nil {
					return err
				}
				env.Defer(drop)
				env.Setenv("PGDSN", dsn)
				// And through a PgBouncer beside the cluster, when there
				// is one (in CI there must be): in session pooling,
				// $PGPOOLDSN; in transaction pooling, with pgx's
				// default_query_exec_mode=exec, $PGTXPOOLDSN.
				if pooled, err := pgtest.PooledDSN(dsn, pgtest.Session); err == nil {
					env.Setenv("PGPOOLDSN", pooled)
					tx, err := pgtest.PooledDSN(dsn, pgtest.Transaction)
					if err != nil {
						return err
					}
					env.Setenv("PGTXPOOLDSN", tx+" default_query_exec_mode=exec")
				} else if os.Getenv("CI") == "true" {
					return fmt.Errorf("%v: in CI PgBouncer is required (.ci/run installs it)", err)
				}
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "postgres" {
				return pgtest.Available(), nil
			}
			if cond == "pgbouncer" { // $PGPOOLDSN and $PGTXPOOLDSN are set
				return pgtest.Available() && pgtest.PoolerAvailable(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":     cmdExits,
			"jsonfield": cmdJSONField,
			"jsonvar":   cmdJSONVar,
			"tamper":    cmdTamper,
			"rehash":    cmdRehash,
			"keygen":    cmdKeygen,
			"appendraw": cmdAppendRaw,
			"holdlock":  cmdHoldLock,
			"treehash":  cmdTreeHash,
			"noabs":     cmdNoAbs,
			"perm":      cmdPerm,
			"hostile":   cmdHostile,
			"conforms":  cmdConforms,
			"setstore":  cmdSetStore,
			"sha256var": cmdSHA256Var,
			"expand":    cmdExpand,
			"loadpack":  cmdLoadPack,
		},
	})
}

// setstore TIER_JSON STORE sets tier.json's ledger_store to the JSON
// object STORE, as an operator editing it by hand would.
func cmdSetStore(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setstore TIER_JSON STORE")
	}
	p := ts.MkAbs(args[0])
	b, err := os.ReadFile(p)
	ts.Check(err)
	var m map[string]json.RawMessage
	ts.Check(json.Unmarshal(b, &m))
	m["ledger_store"] = json.RawMessage(args[1])
	b, err = json.Marshal(m)
	ts.Check(err)
	ts.Check(os.WriteFile(p, b, 0o644))
}

// conforms SCHEMA FILE... requires each file (globs allowed) to be valid
// against the embedded schema, as santhosh-tekuri/jsonschema/v6 judges
// it: the file formats the binaries write hold to the schemas published
// for them. ! conforms requires each to be invalid.
func cmdConforms(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: conforms SCHEMA FILE...")
	}
	s, err := schematest.Oracle(args[0])
	ts.Check(err)
	n := 0
	for _, pat := range args[1:] {
		paths, err := filepath.Glob(ts.MkAbs(pat))
		ts.Check(err)
		for _, p := range paths {
			n++
			f, err := os.Open(p)
			ts.Check(err)
			v, err := jsonschema.UnmarshalJSON(f)
			f.Close()
			ts.Check(err)
			if err := s.Validate(v); (err == nil) == neg {
				ts.Fatalf("%s against %s: %v", p, args[0], err)
			}
		}
	}
	if n == 0 {
		ts.Fatalf("no file matches %s", strings.Join(args[1:], " "))
	}
}

// exits N PROG [ARGS...] runs PROG like exec and requires exit status N.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// jsonfield FILE PATH [WANT] checks that FILE (stdout, stderr or a file) is
// one JSON document or NDJSON and that the gjson PATH exists (and, given WANT, that
// its value's text is WANT; objects, arrays and null compare as raw JSON). With !,
// the path must be missing (or differ from WANT). "..#" and "..N.x" address
// the lines of NDJSON.
func cmdJSONField(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 && len(args) != 3 {
		ts.Fatalf("usage: jsonfield FILE PATH [WANT]")
	}
	data := ts.ReadFile(args[0])
	if !json.Valid([]byte(data)) { // one document, else NDJSON
		for i, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
			if !json.Valid([]byte(line)) {
				ts.Fatalf("%s line %d is not JSON: %q", args[0], i+1, line)
			}
		}
	}
	r := gjson.Get(data, args[1])
	if len(args) == 2 {
		if r.Exists() == neg {
			ts.Fatalf("%s: path %s exists=%v", args[0], args[1], r.Exists())
		}
		return
	}
	if !r.Exists() && !neg {
		ts.Fatalf("%s: path %s missing", args[0], args[1])
	}
	got := r.String()
	if r.IsObject() || r.IsArray() || r.Type == gjson.Null {
		got = r.Raw
	}
	if (got == args[2]) == neg {
		ts.Fatalf("%s: %s = %s, want %s%s", args[0], args[1], got, map[bool]string{true: "not ", false: ""}[neg], args[2])
	}
}

// jsonvar VAR FILE PATH sets $VAR to the text of the gjson PATH in FILE, so
// that later lines can compare fields across outputs.
func cmdJSONVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: jsonvar VAR FILE PATH")
	}
	data := ts.ReadFile(args[1])
	r := gjson.Get(data, args[2])
	if !json.Valid([]byte(data)) && !strings.HasPrefix(args[2], "..") || !r.Exists() {
		ts.Fatalf("%s: no JSON value at %s", args[1], args[2])
	}
	ts.Setenv(args[0], r.String())
}

// tamper FILE SEQ REGEX REPL replaces the first match of REGEX in line SEQ
// (0-based, without its newline) of FILE, expanding $1 in REPL; tamper
// -delete FILE SEQ removes that line.
func cmdTamper(ts *testscript.TestScript, neg bool, args []string) {
	del := len(args) == 3 && args[0] == "-delete"
	if del {
		args = args[1:]
	} else if len(args) != 4 {
		ts.Fatalf("usage: tamper FILE SEQ REGEX REPL | tamper -delete FILE SEQ")
	}
	path := ts.MkAbs(args[0])
	b, err := os.ReadFile(path)
	ts.Check(err)
	lines := bytes.SplitAfter(b, []byte("\n"))
	seq, err := strconv.Atoi(args[1])
	ts.Check(err)
	if seq < 0 || seq >= len(lines) {
		ts.Fatalf("%s has no line %d", args[0], seq)
	}
	if del {
		lines = append(lines[:seq], lines[seq+1:]...)
	} else {
		re, err := regexp.Compile(args[2])
		ts.Check(err)
		l, nl := bytes.CutSuffix(lines[seq], []byte("\n"))
		m := re.FindSubmatchIndex(l)
		if m == nil {
			ts.Fatalf("line %d of %s does not match %s", seq, args[0], args[2])
		}
		edited := re.Expand(append([]byte{}, l[:m[0]]...), []byte(args[3]), l, m)
		edited = append(edited, l[m[1]:]...)
		if nl {
			edited = append(edited, '\n')
		}
		lines[seq] = edited
	}
	ts.Check(os.WriteFile(path, bytes.Join(lines, nil), 0o644))
}

// rehash FILE rewrites the ledger FILE as a forger with a script would after
// editing it: every seq, previous_hash and entry_hash recomputed in
// canonical JSON, and FILE's stored hashes (.tlog) rebuilt to match. Only a
// checkpoint kept from before can tell.
func cmdRehash(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: rehash FILE")
	}
	path := ts.MkAbs(args[0])
	b, err := os.ReadFile(path)
	ts.Check(err)
	var out []byte
	var stored memHashes
	prev := ""
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		v, err := jcs.Decode(line)
		ts.Check(err)
		e := v.(map[string]any)
		delete(e, "entry_hash")
		e["seq"] = json.Number(strconv.Itoa(i))
		e["previous_hash"] = prev
		body, err := jcs.Marshal(e)
		ts.Check(err)
		leaf := tlog.RecordHash(body)
		hs, err := tlog.StoredHashesForRecordHash(int64(i), leaf, stored)
		ts.Check(err)
		stored = append(stored, hs...)
		prev = hex.EncodeToString(leaf[:])
		e["entry_hash"] = prev
		full, err := jcs.Marshal(e)
		ts.Check(err)
		out = append(append(out, full...), '\n')
	}
	var tl []byte
	for _, h := range stored {
		tl = append(tl, h[:]...)
	}
	ts.Check(os.WriteFile(path, out, 0o644))
	ts.Check(os.WriteFile(strings.TrimSuffix(path, ".jsonl")+".tlog", tl, 0o644))
}

type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, j := range idx {
		if j < 0 || j >= int64(len(m)) {
			return nil, fmt.Errorf("stored hash %d not available", j)
		}
		out[i] = m[j]
	}
	return out, nil
}

// keygen NAME writes a note signer key to NAME.key (mode 0600) and its
// verifier key to NAME.pub.
func cmdKeygen(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: keygen NAME")
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, args[0])
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]+".key"), []byte(skey+"\n"), 0o600))
	ts.Check(os.WriteFile(ts.MkAbs(args[0]+".pub"), []byte(vkey+"\n"), 0o644))
}

// appendraw FILE TEXT appends TEXT to FILE as it stands: no newline is added,
// as a writer that crashed mid-line would leave it. TEXT may hold Go escapes
// such as \x00 or \n.
func cmdAppendRaw(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: appendraw FILE TEXT")
	}
	text, err := strconv.Unquote(`"` + strings.ReplaceAll(args[1], `"`, `\"`) + `"`)
	ts.Check(err)
	f, err := os.OpenFile(ts.MkAbs(args[0]), os.O_WRONLY|os.O_APPEND, 0)
	ts.Check(err)
	_, err = f.WriteString(text)
	ts.Check(errors.Join(err, f.Close()))
}

type heldLocks struct{}

// holdlock FILE takes the exclusive advisory lock on FILE (a ledger's X.lock)
// as another writer would, until the script ends; ! holdlock FILE releases it.
func cmdHoldLock(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: [!] holdlock FILE")
	}
	held := ts.Value(heldLocks{}).(map[string]*os.File)
	path := ts.MkAbs(args[0])
	if neg {
		f := held[path]
		if f == nil {
			ts.Fatalf("%s is not held", args[0])
		}
		delete(held, path)
		ts.Check(f.Close())
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	ts.Check(err)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		ts.Fatalf("locking %s: %v", args[0], err)
	}
	held[path] = f
	ts.Defer(func() { f.Close() })
}

// treehash DIR... prints one line per file, directory and symlink under each
// DIR (mode, size, mtime in ns, SHA-256 of the bytes or the link target,
// path), then "tree sha256:..." over those lines. Saved with cp stdout and
// compared with cmp stdout, it shows that a command wrote nothing, and if
// it did, the diff names what changed. With -content, mtimes are printed as
// 0: the listing then shows that a tree holds the same bytes and modes as
// before (after a rollback), however it got them.
func cmdTreeHash(ts *testscript.TestScript, neg bool, args []string) {
	content := len(args) > 0 && args[0] == "-content"
	if content {
		args = args[1:]
	}
	if neg || len(args) == 0 {
		ts.Fatalf("usage: treehash [-content] DIR...")
	}
	var list strings.Builder
	for _, d := range args {
		root := ts.MkAbs(d)
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			sum := "-"
			switch {
			case fi.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum = fmt.Sprintf("%x", sha256.Sum256(b))
			case fi.Mode()&fs.ModeSymlink != 0:
				t, err := os.Readlink(p)
				if err != nil {
					return err
				}
				sum = "-> " + t
			}
			size := fi.Size()
			if fi.IsDir() {
				size = 0
			}
			mtime := fi.ModTime().UnixNano()
			if content {
				mtime = 0
			}
			fmt.Fprintf(&list, "%v %d %d %s %s\n", fi.Mode(), size, mtime, sum, filepath.ToSlash(filepath.Join(d, rel)))
			return nil
		})
		ts.Check(err)
	}
	fmt.Fprintf(ts.Stdout(), "%stree sha256:%x\n", list.String(), sha256.Sum256([]byte(list.String())))
}

// noabs DIR... fails if any file under a DIR holds the absolute path of
// $WORK (as given or with symlinks resolved), in its bytes, in the
// decompressed bytes of a gzip file, or in a symlink target. With !, some
// file must hold it (to check the checker).
func cmdNoAbs(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: [!] noabs DIR...")
	}
	work := ts.Getenv("WORK")
	needles := [][]byte{[]byte(work)}
	if real, err := filepath.EvalSymlinks(work); err == nil && real != work {
		needles = append(needles, []byte(real))
	}
	holds := func(b []byte) bool {
		for _, n := range needles {
			if bytes.Contains(b, n) {
				return true
			}
		}
		return false
	}
	var found []string
	for _, d := range args {
		err := filepath.WalkDir(ts.MkAbs(d), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var b []byte
			switch {
			case e.Type()&fs.ModeSymlink != 0:
				t, err := os.Readlink(p)
				if err != nil {
					return err
				}
				b = []byte(t)
			case e.Type().IsRegular():
				if b, err = os.ReadFile(p); err != nil {
					return err
				}
				if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
					if plain, err := io.ReadAll(zr); err == nil {
						b = append(b, plain...)
					}
				}
			default:
				return nil
			}
			if holds(b) {
				found = append(found, p)
			}
			return nil
		})
		ts.Check(err)
	}
	switch {
	case !neg && len(found) > 0:
		ts.Fatalf("absolute path %s written into: %s", work, strings.Join(found, ", "))
	case neg && len(found) == 0:
		ts.Fatalf("no file under %s holds %s", strings.Join(args, " "), work)
	}
}

// perm MODE PATH... requires every regular file at or under each PATH to
// have permission bits MODE (octal, e.g. 0444).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: perm MODE PATH...")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	n := 0
	for _, p := range args[1:] {
		err := filepath.WalkDir(ts.MkAbs(p), func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			n++
			if got := fi.Mode().Perm(); got != fs.FileMode(want) {
				ts.Fatalf("%s has mode %#o, want %#o", p, got, want)
			}
			return nil
		})
		ts.Check(err)
	}
	if n == 0 {
		ts.Fatalf("no regular file under %s", strings.Join(args[1:], " "))
	}
}

// hostile OUT KIND [ARGS...] writes a package archive OUT that breaks one
// extraction rule, written with archive/tar and compress/gzip directly.
// Every archive but nomanifest opens with a manifest.json (package
// PKG-HOSTILE-001 under SPEC-KERNEL-001) that declares each regular file
// with its hash, so that the hostile part is the only thing wrong with it:
//
//	file NAME...          regular files NAME (the same name twice: duplicate;
//	                      A.md a.md: case fold; ../evil, /etc/x, ledger/x ...)
//	symlink NAME TARGET   a symbolic link
//	hardlink NAME TARGET  a hard link
//	chardev NAME          a character device (1, 3)
//	fifo NAME             a named pipe
//	sizelie NAME          a header of 100 bytes with 10 bytes of data, and
//	                      then the (well-closed) gzip stream ends
//	truncgz               a good archive with its gzip stream cut in half
//	trailing              a good archive followed by bytes after the gzip stream
//	notgzip               a good archive as a plain tar
//	nomanifest NAME...    regular files only, no manifest.json at the root
//
// "A good archive" holds config/hostile.json.
func cmdHostile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: hostile OUT KIND [ARGS...]")
	}
	out, kind, rest := ts.MkAbs(args[0]), args[1], args[2:]
	body := func(name string) []byte { return []byte("hostile " + name + "\n") }
	hdr := func(name string, typ byte, size int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	regular := func(names ...string) {
		for _, n := range names {
			ts.Check(tw.WriteHeader(hdr(n, tar.TypeReg, int64(len(body(n))))))
			_, err := tw.Write(body(n))
			ts.Check(err)
		}
	}
	withManifest := func(files ...string) {
		var assets []map[string]any
		for _, n := range files {
			assets = append(assets, map[string]any{"path": n, "sha256": fmt.Sprintf("sha256:%x", sha256.Sum256(body(n))),
				"size": len(body(n)), "classification": "config"})
		}
		if assets == nil {
			assets = []map[string]any{}
		}
		m, err := json.MarshalIndent(map[string]any{"schema_version": "1.2", "package_id": "PKG-HOSTILE-001", "version": "1.0.0",
			"package_type": "standard", "spec_id": "SPEC-KERNEL-001", "framework_id": "FMWK-KERNEL-001", "plane_id": "ho3",
			"dependencies": []string{}, "assets": assets}, "", "  ")
		ts.Check(err)
		ts.Check(tw.WriteHeader(hdr("manifest.json", tar.TypeReg, int64(len(m)))))
		_, err = tw.Write(m)
		ts.Check(err)
	}
	need := func(n int) {
		if len(rest) != n {
			ts.Fatalf("hostile %s takes %d argument(s)", kind, n)
		}
	}
	gz := true
	var cut, extra bool
	switch kind {
	case "file":
		withManifest(rest...)
		regular(rest...)
	case "nomanifest":
		regular(rest...)
	case "symlink", "hardlink":
		need(2)
		withManifest()
		h := hdr(rest[0], tar.TypeSymlink, 0)
		if kind == "hardlink" {
			h.Typeflag = tar.TypeLink
		}
		h.Linkname = rest[1]
		ts.Check(tw.WriteHeader(h))
	case "chardev", "fifo":
		need(1)
		withManifest()
		h := hdr(rest[0], tar.TypeFifo, 0)
		if kind == "chardev" {
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, 1, 3
		}
		ts.Check(tw.WriteHeader(h))
	case "sizelie":
		need(1)
		withManifest()
		ts.Check(tw.WriteHeader(hdr(rest[0], tar.TypeReg, 100)))
		_, err := tw.Write([]byte("ten bytes\n"))
		ts.Check(err)
		// No Close: the tar stream ends inside the member's data.
	case "truncgz", "trailing", "notgzip":
		need(0)
		withManifest("config/hostile.json")
		regular("config/hostile.json")
		cut, extra, gz = kind == "truncgz", kind == "trailing", kind != "notgzip"
	default:
		ts.Fatalf("hostile: unknown kind %q", kind)
	}
	if kind != "sizelie" {
		ts.Check(tw.Close())
	}
	data := tb.Bytes()
	if gz {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		_, err := zw.Write(data)
		ts.Check(err)
		ts.Check(zw.Close())
		data = zb.Bytes()
	}
	if cut {
		data = data[:len(data)/2]
	}
	if extra {
		data = append(data, "trailing garbage"...)
	}
	ts.Check(os.WriteFile(out, data, 0o644))
}

// sha256var VAR FILE sets $VAR to "sha256:" + the SHA-256 of FILE's bytes
// (a turn header's declared input).
func cmdSHA256Var(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sha256var VAR FILE")
	}
	sum := sha256.Sum256([]byte(ts.ReadFile(args[1])))
	ts.Setenv(args[0], "sha256:"+hex.EncodeToString(sum[:]))
}

// expand IN OUT writes IN to OUT with $VAR and ${VAR} replaced by the
// script's variables (a request built from earlier answers).
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: expand IN OUT")
	}
	out := os.Expand(ts.ReadFile(args[0]), ts.Getenv)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(out), 0o644))
}
