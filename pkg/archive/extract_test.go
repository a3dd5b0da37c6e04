package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// newStaging makes parent/staging and returns both.
func newStaging(t testing.TB) (parent, staging string) {
	t.Helper()
	parent = t.TempDir()
	staging = filepath.Join(parent, "staging")
	require.NoError(t, os.Mkdir(staging, 0o700))
	return parent, staging
}

// requireUntouched checks that staging is empty and parent holds nothing
// but staging.
func requireUntouched(t testing.TB, parent, staging string) {
	t.Helper()
	ents, err := os.ReadDir(staging)
	require.NoError(t, err)
	require.Empty(t, ents, "staging dir must be empty after a refusal")
	requireOnlyStaging(t, parent)
}

func requireOnlyStaging(t testing.TB, parent string) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{"staging"}, names, "nothing may be written outside the staging dir")
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestHostileCorpus(t *testing.T) {
	for _, tc := range hostileCorpus() {
		t.Run(tc.name, func(t *testing.T) {
			parent, staging := newStaging(t)
			data := tc.data(parent)

			c, err := Extract(bytes.NewReader(data), staging, tc.lim)
			require.Nil(t, c)
			var ue *UnsafeError
			require.ErrorAs(t, err, &ue)
			require.Equal(t, tc.rule, ue.Rule, "error: %v", err)
			require.Equal(t, "ARCHIVE_UNSAFE", ue.Code())
			require.Contains(t, ue.Error(), "ARCHIVE_UNSAFE: "+tc.rule)
			requireUntouched(t, parent, staging)
			for _, p := range tc.evil {
				_, err := os.Lstat(filepath.Join(parent, p))
				require.ErrorIs(t, err, fs.ErrNotExist, "%s must not exist", p)
			}

			c, err = Scan(bytes.NewReader(data), tc.lim)
			require.Nil(t, c)
			require.ErrorAs(t, err, &ue)
			require.Equal(t, tc.rule, ue.Rule, "Scan error: %v", err)
			requireOnlyStaging(t, parent)
		})
	}
}

// TestEveryRuleCovered keeps the corpus honest: each documented rule has
// at least one hostile archive.
func TestEveryRuleCovered(t *testing.T) {
	rules := []string{
		"not_gzip", "truncated", "corrupt_gzip", "corrupt_tar", "trailing_data",
		"symlink", "hardlink", "device", "fifo", "sparse", "unsupported_type",
		"absolute_name", "dot_dot", "unclean_name", "bad_char", "name_too_long",
		"duplicate_name", "case_fold_collision", "reserved_target",
		"too_many_files", "file_too_large", "archive_too_large", "size_mismatch",
		"manifest_missing", "manifest_not_regular", "manifest_too_large",
	}
	seen := map[string]bool{}
	for _, tc := range hostileCorpus() {
		seen[tc.rule] = true
	}
	for _, r := range rules {
		require.True(t, seen[r], "no hostile archive for rule %s", r)
	}
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	for r := range seen {
		require.Contains(t, string(doc), "//\t"+r+" ", "rule %s is not documented", r)
	}
}

func TestExtract(t *testing.T) {
	long := strings.Repeat("d/", 60) + "long.md" // > 100 bytes: needs PAX
	exe := file("bin/run", "#!/bin/sh\n")
	exe.mode = 0o700
	data := gz(append(rawTar(true,
		dir("lib/"),
		file("lib/x.py", "print(1)\n"),
		manifest(),
		rawMember{name: "ignored", typ: tar.TypeReg, mode: 0o600, size: -1, body: []byte("long"), pax: map[string]string{"path": long}},
		exe,
		file("frameworks/FMWK-001.md", "# F\n"),
		file("lib/tier.json", "{}"),
		file("empty", ""),
		dir("assets/"),
	), make([]byte, 10240)...)) // record padding is accepted

	parent, staging := newStaging(t)
	c, err := Extract(bytes.NewReader(data), staging, Limits{})
	require.NoError(t, err)
	requireOnlyStaging(t, parent)

	want := []File{
		{Path: "bin/run", Size: 10, SHA256: sha([]byte("#!/bin/sh\n")), Mode: 0o755},
		{Path: long, Size: 4, SHA256: sha([]byte("long")), Mode: 0o644},
		{Path: "empty", Size: 0, SHA256: sha(nil), Mode: 0o644},
		{Path: "frameworks/FMWK-001.md", Size: 4, SHA256: sha([]byte("# F\n")), Mode: 0o644},
		{Path: "lib/tier.json", Size: 2, SHA256: sha([]byte("{}")), Mode: 0o644},
		{Path: "lib/x.py", Size: 9, SHA256: sha([]byte("print(1)\n")), Mode: 0o644},
		{Path: ManifestName, Size: int64(len(manifestBody)), SHA256: sha([]byte(manifestBody)), Mode: 0o644},
	}
	require.Equal(t, want, c.Files)
	require.Equal(t, manifestBody, string(c.Manifest))
	require.Equal(t, sha(data), c.ArchiveSHA256)

	for _, f := range want {
		b, err := os.ReadFile(filepath.Join(staging, filepath.FromSlash(f.Path)))
		require.NoError(t, err)
		require.Equal(t, f.SHA256, sha(b))
		fi, err := os.Stat(filepath.Join(staging, filepath.FromSlash(f.Path)))
		require.NoError(t, err)
		require.Equal(t, f.Mode, fi.Mode().Perm(), f.Path)
	}
	fi, err := os.Stat(filepath.Join(staging, "assets"))
	require.NoError(t, err)
	require.True(t, fi.IsDir())

	s, err := Scan(bytes.NewReader(data), Limits{})
	require.NoError(t, err)
	require.Equal(t, c, s)
}

func TestExtractAtLimits(t *testing.T) {
	lim := Limits{MaxFiles: 3, MaxTotalBytes: 100, MaxFileBytes: 60, MaxNameBytes: 13, MaxManifestBytes: int64(len(manifestBody))}
	data := tgz(manifest(), file("a", strings.Repeat("x", 60)), file("bbbbbbbbbbbbb", strings.Repeat("y", 100-60-len(manifestBody))))
	_, staging := newStaging(t)
	c, err := Extract(bytes.NewReader(data), staging, lim)
	require.NoError(t, err)
	require.Len(t, c.Files, 3)
}

func TestExtractStagingMustBeEmpty(t *testing.T) {
	parent, staging := newStaging(t)
	keep := filepath.Join(staging, "keep")
	require.NoError(t, os.WriteFile(keep, []byte("keep"), 0o644))
	_, err := Extract(bytes.NewReader(tgz(manifest())), staging, Limits{})
	require.Error(t, err)
	var ue *UnsafeError
	require.False(t, errors.As(err, &ue), "a non-empty staging dir is a caller error, not a refusal")
	b, err := os.ReadFile(keep)
	require.NoError(t, err)
	require.Equal(t, "keep", string(b))
	requireOnlyStaging(t, parent)

	_, err = Extract(bytes.NewReader(tgz(manifest())), filepath.Join(parent, "missing"), Limits{})
	require.ErrorIs(t, err, fs.ErrNotExist)
	requireOnlyStaging(t, parent)
}

var errBoom = errors.New("boom")

// failingReader returns its data and then errBoom.
type failingReader struct{ r io.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errBoom
	}
	return n, err
}

func TestExtractIOError(t *testing.T) {
	data := tgz(manifest(), file("lib/x.py", strings.Repeat("x", 100000)))
	for _, cut := range []int{0, 5, 30, len(data) / 2, len(data)} {
		parent, staging := newStaging(t)
		_, err := Extract(&failingReader{bytes.NewReader(data[:cut])}, staging, Limits{})
		require.ErrorIs(t, err, errBoom, "cut %d", cut)
		var ue *UnsafeError
		require.False(t, errors.As(err, &ue), "cut %d: I/O errors are not refusals", cut)
		requireUntouched(t, parent, staging)

		_, err = Scan(&failingReader{bytes.NewReader(data[:cut])}, Limits{})
		require.ErrorIs(t, err, errBoom, "cut %d", cut)
	}
}

// TestExtractRefusesLateAndCleansUp refuses after files were written.
func TestExtractRefusesLateAndCleansUp(t *testing.T) {
	data := tgz(file("lib/a.py", "a"), dir("d/"), file("d/e/f", "f"), file("lib/a.py", "again"))
	parent, staging := newStaging(t)
	_, err := Extract(bytes.NewReader(data), staging, Limits{})
	var ue *UnsafeError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, "duplicate_name", ue.Rule)
	require.Equal(t, "lib/a.py", ue.Name)
	requireUntouched(t, parent, staging)
}

func TestLimitsDefaults(t *testing.T) {
	d := DefaultLimits()
	require.Equal(t, Limits{MaxFiles: 20000, MaxTotalBytes: 1 << 30, MaxFileBytes: 256 << 20, MaxNameBytes: 255, MaxManifestBytes: 16 << 20}, d)
	require.Equal(t, d, Limits{}.withDefaults())
	require.Equal(t, d, Limits{MaxFiles: -1, MaxTotalBytes: -1, MaxFileBytes: -1, MaxNameBytes: -1, MaxManifestBytes: -1}.withDefaults())
	huge := Limits{MaxFiles: 1 << 62, MaxTotalBytes: 1 << 62}.withDefaults()
	require.Positive(t, huge.streamCap())
}

func TestCheckName(t *testing.T) {
	ok := []struct {
		name  string
		dir   bool
		clean string
	}{
		{"a", false, "a"},
		{"lib/x.py", false, "lib/x.py"},
		{"lib/", true, "lib"},
		{"lib", true, "lib"},
		{"...", false, "..."},
		{"a..b/c", false, "a..b/c"},
		{"ünïcödé/日本.md", false, "ünïcödé/日本.md"},
		{strings.Repeat("a", 255), false, strings.Repeat("a", 255)},
		{"with space.md", false, "with space.md"},
		{"ab:c", false, "ab:c"},
	}
	for _, tc := range ok {
		got, err := checkName(tc.name, tc.dir, 255)
		require.Nil(t, err, tc.name)
		require.Equal(t, tc.clean, got)
	}
	bad := []struct {
		name string
		dir  bool
		rule string
	}{
		{"", false, "unclean_name"},
		{"a\x00b", false, "unclean_name"},
		{"./x", false, "unclean_name"},
		{"a//b", false, "unclean_name"},
		{"a/./b", false, "unclean_name"},
		{"a/.", false, "unclean_name"},
		{"x/", false, "unclean_name"},
		{"lib//", true, "unclean_name"},
		{".", true, "unclean_name"},
		{"./", true, "unclean_name"},
		{"..", false, "dot_dot"},
		{"../", true, "dot_dot"},
		{"a/..", false, "dot_dot"},
		{"a/../b", false, "dot_dot"},
		{"/x", false, "absolute_name"},
		{"/", true, "absolute_name"},
		{"//srv/share", false, "absolute_name"},
		{"C:/x", false, "absolute_name"},
		{"C:", false, "absolute_name"},
		{"a:b", false, "absolute_name"},
		{`a\b`, false, "absolute_name"},
		{`\x`, false, "absolute_name"},
		{"a\nb", false, "bad_char"},
		{"a\x7fb", false, "bad_char"},
		{"a\u0085b", false, "bad_char"},
		{"\xc3", false, "bad_char"},
		{strings.Repeat("a", 256), false, "name_too_long"},
	}
	for _, tc := range bad {
		_, err := checkName(tc.name, tc.dir, 255)
		require.NotNil(t, err, "%q", tc.name)
		require.Equal(t, tc.rule, err.Rule, "%q", tc.name)
	}
	for _, tc := range []struct {
		name string
		dir  bool
		rule string
	}{
		{"a/" + strings.Repeat("b", 256), false, "name_too_long"},
		{strings.Repeat("b", 256) + "/", true, "name_too_long"},
	} {
		_, err := checkName(tc.name, tc.dir, 1000)
		require.NotNil(t, err, "%q", tc.name)
		require.Equal(t, tc.rule, err.Rule, "%q", tc.name)
	}
}

func TestFoldMatchesEqualFold(t *testing.T) {
	words := []string{"a", "A", "ß", "ẞ", "K", "k", "\u212a", "ǅ", "Ǆ", "ǆ", "Σ", "σ", "ς", "İ", "i", "I", "ı", "ſ", "s", "S", "Ω", "\u2126", "ω", "lib", "LIB", "Lib"}
	for _, a := range words {
		for _, b := range words {
			require.Equal(t, strings.EqualFold(a, b), Fold(a) == Fold(b), "%q %q", a, b)
		}
	}
}

// Key is Fold for names that are not canonically equivalent to another,
// and one key for canonical twins (NFC and NFD spellings), in any case.
func TestKey(t *testing.T) {
	require.Equal(t, Fold("lib/X.md"), Key("lib/X.md"))
	require.Equal(t, Key("caf\u00e9"), Key("cafe\u0301"))
	require.Equal(t, Key("CAF\u00c9"), Key("cafe\u0301"))
	require.Equal(t, Key("\u212a"), Key("k"))
	require.NotEqual(t, Key("cafe"), Key("caf\u00e9"))
	words := []string{"a", "A", "ß", "K", "\u212a", "Σ", "ς", "lib", "LIB", "é", "É", "e\u0301", "E\u0301", "\u00c5", "\u212b", "A\u030a"}
	for _, a := range words {
		for _, b := range words {
			na, nb := norm.NFC.String(a), norm.NFC.String(b)
			require.Equal(t, strings.EqualFold(na, nb), Key(a) == Key(b), "%+q %+q", a, b)
		}
	}
}

func TestReserved(t *testing.T) {
	for _, n := range []string{"ledger", "ledger/x", "LEDGER/x", "installed/a/b", "registries", "versions/v1", "packages_store/x", "_staging/x", "_journal/x", "planes/p", "tier.json", "Tier.JSON", "tier.json/x"} {
		require.NotNil(t, checkReserved(n), n)
	}
	for _, n := range []string{"lib/tier.json", "lib/ledger/x", "ledgers/x", "tier.json5", "_staging2", "frameworks/planes"} {
		require.Nil(t, checkReserved(n), n)
	}
}

func TestNameSet(t *testing.T) {
	s := nameSet{}
	require.Nil(t, s.add("lib/x", false))
	require.Nil(t, s.add("lib", true), "explicit dir after implied one")
	require.Nil(t, s.add("lib/y", false))
	require.Nil(t, s.add("lib/sub/z", false))
	require.Equal(t, "duplicate_name", s.add("lib", true).Rule)
	require.Equal(t, "case_fold_collision", s.add("lib/sub", false).Rule)
	require.Equal(t, "case_fold_collision", s.add("LIB/w", false).Rule)
	require.Equal(t, "case_fold_collision", s.add("lib/X", false).Rule)
	require.Equal(t, "case_fold_collision", s.add("lib/x/y", false).Rule)
	require.Equal(t, "duplicate_name", s.add("lib/x", false).Rule)
	names := make([]string, 0, len(s))
	for _, n := range s {
		names = append(names, n.name)
	}
	slices.Sort(names)
	require.Equal(t, []string{"lib", "lib/sub", "lib/sub/z", "lib/x", "lib/y"}, names)
}
