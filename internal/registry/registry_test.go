package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var ctx = context.Background()

var when = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// digest is a well-formed hash whose digits are all n's low hex digit.
func digest(n int) string { return "sha256:" + strings.Repeat(fmt.Sprintf("%x", n%16), 64) }

// fixtures returns a few valid rows of every table, keyed by file, including
// values that must be quoted.
func fixtures() map[string][]Row {
	return map[string][]Row{
		Frameworks.File: {
			Framework{ID: "FMWK-002", Title: `Law, "quoted"`, Version: "1.0.0", Status: StatusActive, Path: "frameworks/FMWK-002.md",
				SHA256: digest(2), RegisteredAt: when, RegisteredBy: "alice"}.Row(),
			Framework{ID: "FMWK-001", Title: " leading space, é ü", Version: "2.1.0", Status: StatusRetired, Path: "frameworks/FMWK-001.md",
				SHA256: digest(1), RegisteredAt: when.Add(time.Millisecond), RegisteredBy: "bob"}.Row(),
		},
		Specs.File: {
			Spec{ID: "SPEC-001", FrameworkID: "FMWK-001", Title: "", Version: "0.1.0", Status: StatusDeprecated, Path: "specs/SPEC-001/manifest.yaml",
				SHA256: digest(3), RegisteredAt: when, RegisteredBy: "alice"}.Row(),
		},
		Prompts.File: {
			Prompt{ID: "PRM-ROUTE-001", PackageID: "PKG-PROMPTS-001", Path: "governed_prompts/route.md", SHA256: digest(4),
				Version: "1.0.0", Status: StatusActive, RegisteredAt: when}.Row(),
		},
		Ownership.File: {
			own("lib/b.py", "PKG-A-001", 10),
			own("config/governed_roots.json", "PKG-KERNEL-001", 0),
			own("lib/a b,c.py", "PKG-A-001", 1<<40),
		},
		Packages.File: {
			Package{ID: "PKG-KERNEL-001", Version: "1.0.0", ManifestHash: digest(5), ArchiveSHA256: digest(6), Status: StatusInstalled,
				Signature: "signed:control-plane-dev", InstalledAt: when, Actor: "bootstrap"}.Row(),
			Package{ID: "PKG-A-001", Version: "1.2.3", ManifestHash: digest(7), ArchiveSHA256: digest(8), Status: StatusFailed,
				Signature: SignatureWaived, InstalledAt: when, Actor: "alice", WorkOrderID: "WO-20260102-001"}.Row(),
		},
	}
}

func own(path, pkg string, size int64) Row {
	return Owner{Path: path, PackageID: pkg, SHA256: digest(len(path)), Size: size, Classification: "code", InstalledAt: when}.Row()
}

// newPlane returns a plane root with empty registries.
func newPlane(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, Create(root))
	return root
}

func readFile(t *testing.T, root string, tb Table) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, Dir, tb.File))
	require.NoError(t, err)
	return string(b)
}

func writeFile(t *testing.T, root string, tb Table, data string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(root, Dir, tb.File), []byte(data), 0o644))
}

// requireError checks that err is a registry *Error with the given code,
// file, line and a message containing msg.
func requireError(t *testing.T, err error, code, file string, line int, msg string) {
	t.Helper()
	var e *Error
	require.ErrorAs(t, err, &e, "got %v", err)
	require.Equal(t, code, e.Code(), "code of %q", err)
	require.Equal(t, file, e.File, "file of %q", err)
	require.Equal(t, line, e.Line, "line of %q", err)
	require.Contains(t, e.Error(), msg)
}

func TestCreate(t *testing.T) {
	root := newPlane(t)
	for _, tb := range All {
		require.Equal(t, strings.Join(tb.Columns, ",")+"\n", readFile(t, root, tb))
		rows, err := Read(root, tb)
		require.NoError(t, err)
		require.Empty(t, rows)
	}
	ents, err := os.ReadDir(filepath.Join(root, Dir))
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{".lock", "frameworks_registry.csv", "specs_registry.csv", "prompts_registry.csv",
		"file_ownership.csv", "packages_state.csv"}, names, "no temporary files left")

	err = Create(root)
	requireError(t, err, CodeExists, "registries/frameworks_registry.csv", 0, "already exists")
}

func TestCreateRefusesIfAnyExists(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, Dir), 0o755))
	writeFile(t, root, Packages, "anything")
	err := Create(root)
	requireError(t, err, CodeExists, "registries/packages_state.csv", 0, "already exists")
	for _, tb := range All[:4] {
		_, err := os.Stat(filepath.Join(root, Dir, tb.File))
		require.ErrorIs(t, err, fs.ErrNotExist, "%s written by a refused Create", tb.File)
	}
	require.Equal(t, "anything", readFile(t, root, Packages))
}

func TestReadMissing(t *testing.T) {
	_, err := Read(t.TempDir(), Specs)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestRoundTrip(t *testing.T) {
	root := newPlane(t)
	fx := fixtures()
	for _, tb := range All {
		require.NoError(t, Update(ctx, root, tb, func(rows []Row) ([]Row, error) {
			require.Empty(t, rows)
			return fx[tb.File], nil
		}))
		got, err := Read(root, tb)
		require.NoError(t, err)
		require.Equal(t, sorted(tb, fx[tb.File]), got, "%s: Read returns what Update wrote, sorted", tb.File)
	}

	// Typed rows survive Row → file → Parse.
	fws, _ := Read(root, Frameworks)
	f, err := ParseFramework(fws[1])
	require.NoError(t, err)
	require.Equal(t, Framework{ID: "FMWK-002", Title: `Law, "quoted"`, Version: "1.0.0", Status: StatusActive,
		Path: "frameworks/FMWK-002.md", SHA256: digest(2), RegisteredAt: when, RegisteredBy: "alice"}, f)
	owners, _ := Read(root, Ownership)
	o, err := ParseOwner(owners[2])
	require.NoError(t, err)
	require.Equal(t, int64(10), o.Size)
	require.Equal(t, "lib/b.py", o.Path)
	for _, tb := range All {
		rows, err := Read(root, tb)
		require.NoError(t, err)
		for _, r := range rows {
			require.Equal(t, r, parseRow(t, tb, r), "%s: Parse then Row is the identity", tb.File)
		}
	}
}

// parseRow parses r with tb's typed Parse function and returns its Row.
func parseRow(t testing.TB, tb Table, r Row) Row {
	t.Helper()
	var (
		out Row
		err error
	)
	switch tb.File {
	case Frameworks.File:
		var v Framework
		v, err = ParseFramework(r)
		out = v.Row()
	case Specs.File:
		var v Spec
		v, err = ParseSpec(r)
		out = v.Row()
	case Prompts.File:
		var v Prompt
		v, err = ParsePrompt(r)
		out = v.Row()
	case Ownership.File:
		var v Owner
		v, err = ParseOwner(r)
		out = v.Row()
	case Packages.File:
		var v Package
		v, err = ParsePackage(r)
		out = v.Row()
	}
	require.NoError(t, err)
	return out
}

func TestGolden(t *testing.T) {
	root := newPlane(t)
	require.NoError(t, Update(ctx, root, Frameworks, func([]Row) ([]Row, error) { return fixtures()[Frameworks.File], nil }))
	want := "framework_id,title,version,status,path,sha256,registered_at,registered_by\n" +
		`FMWK-001," leading space, é ü",2.1.0,retired,frameworks/FMWK-001.md,` + digest(1) + ",2026-01-02T03:04:05.001Z,bob\n" +
		`FMWK-002,"Law, ""quoted""",1.0.0,active,frameworks/FMWK-002.md,` + digest(2) + ",2026-01-02T03:04:05Z,alice\n"
	require.Equal(t, want, readFile(t, root, Frameworks))
}

func TestDeterminism(t *testing.T) {
	var rows []Row
	for i := range 50 {
		rows = append(rows, own(fmt.Sprintf("lib/m%02d/f.py", (i*37)%50), "PKG-A-001", int64(i)))
	}
	var want string
	for i := range 5 {
		root := newPlane(t)
		shuffled := append([]Row(nil), rows...)
		rand.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		require.NoError(t, Update(ctx, root, Ownership, func([]Row) ([]Row, error) { return shuffled, nil }))
		got := readFile(t, root, Ownership)
		if i == 0 {
			want = got
			continue
		}
		require.Equal(t, want, got, "same rows in another order give the same bytes")
	}
	require.True(t, strings.HasPrefix(want, "path,package_id,sha256,size,classification,installed_at\nlib/m00/f.py,"))
}

// TestReadRefusals covers every way a file on disk can break the format.
func TestReadRefusals(t *testing.T) {
	const hdr = "path,package_id,sha256,size,classification,installed_at\n"
	row := func(path string) string { return path + ",PKG-A-001," + digest(1) + ",3,code,2026-01-02T03:04:05Z\n" }
	good := row("lib/a.py")
	rowWith := func(col, val string) string {
		r := own("lib/a.py", "PKG-A-001", 3)
		r[col] = val
		return string(format(Ownership, []Row{r}))[len(hdr):]
	}
	cases := []struct {
		name string
		tb   Table
		data string
		line int
		msg  string
	}{
		{"empty file", Ownership, "", 1, "empty file"},
		{"only a newline", Ownership, "\n", 1, "blank line"},
		{"header without newline", Ownership, strings.TrimSuffix(hdr, "\n"), 1, "does not end with a newline"},
		{"missing column", Ownership, "path,package_id,sha256,size,classification\n", 1, `missing column "installed_at"`},
		{"extra column", Ownership, strings.TrimSuffix(hdr, "\n") + ",owner\n", 1, `unknown column "owner"`},
		{"reordered columns", Ownership, "package_id,path,sha256,size,classification,installed_at\n", 1, "columns out of order"},
		{"repeated column", Ownership, strings.TrimSuffix(hdr, "\n") + ",path\n", 1, "repeated column"},
		{"header of another table", Packages, hdr, 1, `missing column "version"`},
		{"header case", Ownership, strings.ToUpper(hdr), 1, "missing column"},
		{"byte order mark", Ownership, "\uFEFF" + hdr, 1, "byte order mark"},
		{"CRLF", Ownership, strings.ReplaceAll(hdr+good, "\n", "\r\n"), 1, "carriage return"},
		{"CR in a field", Ownership, hdr + rowWith("classification", "a\rb"), 2, "carriage return"},
		{"too few fields", Ownership, hdr + "lib/a.py,PKG-A-001," + digest(1) + ",3,code\n", 2, "5 fields, want 6"},
		{"too many fields", Ownership, hdr + strings.TrimSuffix(good, "\n") + ",x\n", 2, "7 fields, want 6"},
		{"bare quote", Ownership, hdr + row(`lib/a"b.py`), 2, `bare "`},
		{"unterminated quote", Ownership, hdr + `"lib/a.py,PKG-A-001` + "\n", 2, `extraneous or missing "`},
		{"text after closing quote", Ownership, hdr + `"lib/a.py"x,PKG-A-001` + "\n", 2, `extraneous or missing "`},
		{"blank line between rows", Ownership, hdr + good + "\n" + row("lib/b.py"), 3, "blank line"},
		{"blank line after header", Ownership, hdr + "\n" + good, 2, "blank line"},
		{"leading blank line", Ownership, "\n" + hdr, 1, "blank line"},
		{"trailing blank line", Ownership, hdr + good + "\n", 3, "blank line"},
		{"row without newline", Ownership, hdr + strings.TrimSuffix(good, "\n"), 2, "does not end with a newline"},
		{"needless quotes", Ownership, hdr + `"lib/a.py"` + good[len("lib/a.py"):], 2, "not in canonical CSV form"},
		{"duplicate key", Ownership, hdr + good + row("lib/b.py") + good, 4, `duplicate path "lib/a.py" (first on line 2)`},
		{"empty key", Packages, strings.Join(Packages.Columns, ",") + "\n" + ",1.0.0," + digest(1) + "," + digest(2) + ",installed,waived,2026-01-02T03:04:05Z,alice,\n", 2, "empty primary key"},
		{"absolute path", Ownership, hdr + row("/etc/passwd"), 2, "is absolute"},
		{"dot-dot path", Ownership, hdr + row("lib/../../etc/passwd"), 2, ".. element"},
		{"dot-dot alone", Ownership, hdr + row(".."), 2, ".. element"},
		{"backslash path", Ownership, hdr + row(`lib\a.py`), 2, "backslash"},
		{"drive letter", Ownership, hdr + row("C:/x"), 2, "drive letter"},
		{"unclean path", Ownership, hdr + row("lib//a.py"), 2, "not a clean relative path"},
		{"dot path", Ownership, hdr + row("./lib/a.py"), 2, "not a clean relative path"},
		{"trailing slash", Ownership, hdr + row("lib/"), 2, "not a clean relative path"},
		{"LF in a quoted field", Ownership, hdr + rowWith("classification", "a\nb"), 2, `classification: contains '\n'`},
		{"NUL in a field", Ownership, hdr + rowWith("classification", "a\x00b"), 2, `classification: contains '\x00'`},
		{"invalid UTF-8", Ownership, hdr + rowWith("classification", "a\xffb"), 2, "classification: not valid UTF-8"},
		{"bad hash", Ownership, hdr + rowWith("sha256", "sha256:ABC"), 2, "sha256: \"sha256:ABC\" is not sha256:"},
		{"upper-case hash", Ownership, hdr + rowWith("sha256", strings.ToUpper(digest(10))), 2, "is not sha256:"},
		{"negative size", Ownership, hdr + rowWith("size", "-1"), 2, "size:"},
		{"size with leading zero", Ownership, hdr + rowWith("size", "01"), 2, "size:"},
		{"time not UTC", Ownership, hdr + rowWith("installed_at", "2026-01-02T03:04:05+00:00"), 2, "installed_at:"},
		{"time not RFC 3339", Ownership, hdr + rowWith("installed_at", "2026-01-02 03:04:05"), 2, "installed_at:"},
		{"bad package id", Ownership, hdr + rowWith("package_id", "pkg-a"), 2, "not a package id"},
		{"empty classification", Ownership, hdr + rowWith("classification", ""), 2, "classification: empty"},
		{"white space in an id", Frameworks, string(format(Frameworks, []Row{withField(fixtures()[Frameworks.File][0], "framework_id", "FMWK 1")})), 2, "white space"},
		{"bad framework status", Frameworks, string(format(Frameworks, []Row{withField(fixtures()[Frameworks.File][0], "status", "installed")})), 2, "status: \"installed\" is not one of active, deprecated, retired"},
		{"bad package status", Packages, string(format(Packages, []Row{withField(fixtures()[Packages.File][0], "status", "active")})), 2, "not one of installed, failed"},
		{"bad signature", Packages, string(format(Packages, []Row{withField(fixtures()[Packages.File][0], "signature", "unsigned")})), 2, "neither signed:<key name> nor waived"},
		{"signature without key", Packages, string(format(Packages, []Row{withField(fixtures()[Packages.File][0], "signature", "signed:")})), 2, "signature:"},
		{"absolute spec path", Specs, string(format(Specs, []Row{withField(fixtures()[Specs.File][0], "path", "/specs/x")})), 2, "is absolute"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(root, Dir), 0o755))
			writeFile(t, root, tc.tb, tc.data)
			rows, err := Read(root, tc.tb)
			require.Nil(t, rows)
			requireError(t, err, CodeInvalid, "registries/"+tc.tb.File, tc.line, tc.msg)
		})
	}
}

func withField(r Row, col, val string) Row {
	out := Row{}
	for k, v := range r {
		out[k] = v
	}
	out[col] = val
	return out
}

// TestReadAcceptsUnsorted: Read returns rows in file order; only writers sort.
func TestReadAcceptsUnsorted(t *testing.T) {
	root := newPlane(t)
	rows := []Row{own("lib/z.py", "PKG-A-001", 1), own("lib/a.py", "PKG-A-001", 2)}
	writeFile(t, root, Ownership, string(format(Ownership, rows)))
	got, err := Read(root, Ownership)
	require.NoError(t, err)
	require.Equal(t, rows, got)
}

func TestParseRefusesBadRows(t *testing.T) {
	_, err := ParseOwner(Row{"path": "lib/a.py"})
	requireError(t, err, CodeInvalid, "registries/file_ownership.csv", 0, `missing column "package_id"`)
	_, err = ParsePackage(withField(fixtures()[Packages.File][0], "signature", ""))
	requireError(t, err, CodeInvalid, "registries/packages_state.csv", 0, "signature:")
	r := withField(fixtures()[Specs.File][0], "extra", "x")
	_, err = ParseSpec(r)
	requireError(t, err, CodeInvalid, "registries/specs_registry.csv", 0, `unknown column "extra"`)
	require.True(t, errors.As(err, new(*Error)))
}

// Lookup checks the one row it returns, and the file's shape, not the
// rows it does not concern.
func TestLookup(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(root, Dir), 0o755))
	write := func(s string) {
		require.NoError(t, os.WriteFile(filepath.Join(root, Dir, Ownership.File), []byte(s), 0o644))
	}
	header := strings.Join(Ownership.Columns, ",") + "\n"
	row := func(path, hash string) string {
		return path + ",PKG-CONFIG-001," + hash + ",10,config,2026-01-02T03:04:05Z\n"
	}
	write(header + row("config/a.json", digest(1)) + row("config/providers.json", digest(2)))
	r, err := Lookup(root, Ownership, "config/providers.json")
	require.NoError(t, err)
	require.Equal(t, digest(2), r["sha256"])
	r, err = Lookup(root, Ownership, "config/none.json")
	require.NoError(t, err)
	require.Nil(t, r, "no row: nil, no error")

	// Another row's fault is not this lookup's: Read refuses the file.
	write(header + row("config/a.json", "sha256:bad") + row("config/providers.json", digest(2)))
	_, err = Read(root, Ownership)
	require.Error(t, err)
	_, err = Lookup(root, Ownership, "config/providers.json")
	require.NoError(t, err)

	for name, s := range map[string]string{
		"row's hash":    header + row("config/providers.json", "sha256:bad"),
		"duplicate":     header + row("config/providers.json", digest(2)) + row("config/providers.json", digest(3)),
		"header":        "path,package_id\n" + row("config/providers.json", digest(2)),
		"not canonical": header + `"config/providers.json"` + strings.TrimPrefix(row("config/providers.json", digest(2)), "config/providers.json"),
		"fields":        header + "config/providers.json,PKG-CONFIG-001\n",
		"carriage":      header + strings.TrimSuffix(row("config/providers.json", digest(2)), "\n") + "\r\n",
		"empty":         "",
	} {
		write(s)
		_, err := Lookup(root, Ownership, "config/providers.json")
		var e *Error
		require.ErrorAs(t, err, &e, name)
		require.Equal(t, CodeInvalid, e.Code(), name)
	}
	require.NoError(t, os.Remove(filepath.Join(root, Dir, Ownership.File)))
	_, err = Lookup(root, Ownership, "x")
	require.ErrorIs(t, err, fs.ErrNotExist)
}

// TestSelect: the rows a reader selects by key, in file order, each
// checked as Read checks it; a selected key twice is refused; the rows not
// selected are only read past.
func TestSelect(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(root, Dir), 0o755))
	write := func(s string) {
		require.NoError(t, os.WriteFile(filepath.Join(root, Dir, Ownership.File), []byte(s), 0o644))
	}
	header := strings.Join(Ownership.Columns, ",") + "\n"
	row := func(path, hash string) string {
		return path + ",PKG-CONFIG-001," + hash + ",10,config,2026-01-02T03:04:05Z\n"
	}
	modules := func(k string) bool { return strings.HasPrefix(k, "modules/") }
	write(header + row("modules/b/capabilities.json", digest(1)) + row("config/a.json", digest(2)) + row("modules/a/capabilities.json", digest(3)))
	rows, err := Select(root, Ownership, modules)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.Equal(t, "modules/b/capabilities.json", rows[0]["path"], "file order")
	require.Equal(t, digest(3), rows[1]["sha256"])
	rows, err = Select(root, Ownership, func(string) bool { return false })
	require.NoError(t, err)
	require.NotNil(t, rows, "none selected: empty, not nil")
	require.Empty(t, rows)

	// A row not selected is not judged here (Read and the gates do).
	write(header + row("config/a.json", "sha256:bad") + row("config/a.json", digest(2)) + row("modules/a/capabilities.json", digest(3)))
	rows, err = Select(root, Ownership, modules)
	require.NoError(t, err)
	require.Len(t, rows, 1)

	for name, s := range map[string]string{
		"row's hash":    header + row("config/a.json", digest(2)) + row("modules/a/capabilities.json", "sha256:bad"),
		"duplicate":     header + row("modules/a/capabilities.json", digest(2)) + row("config/a.json", digest(2)) + row("modules/a/capabilities.json", digest(3)),
		"not canonical": header + `"modules/a/capabilities.json"` + strings.TrimPrefix(row("modules/a/capabilities.json", digest(2)), "modules/a/capabilities.json"),
		"fields":        header + "modules/a/capabilities.json,PKG-CONFIG-001\n",
		"carriage":      header + strings.TrimSuffix(row("config/a.json", digest(2)), "\n") + "\r\n",
		"no header":     row("modules/a/capabilities.json", digest(2)),
		"empty":         "",
	} {
		write(s)
		_, err := Select(root, Ownership, modules)
		var e *Error
		require.ErrorAs(t, err, &e, name)
		require.Equal(t, CodeInvalid, e.Code(), name)
	}
}
