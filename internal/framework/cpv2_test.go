package framework

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/control-plane/cp/pkg/manifest"
	"github.com/stretchr/testify/require"
)

// cpv2Dir holds framework documents written in CPv2's forms.
const cpv2Dir = "../../testdata/cpv2/frameworks"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cpv2Dir, name))
	require.NoError(t, err)
	return b
}

func TestCPv2Fixtures(t *testing.T) {
	for _, tc := range []struct {
		file                       string
		id, title, version, status string
		sources                    map[string]string
		invariants                 int
		first                      string // the first invariant
		notes                      []string
	}{
		{"FMWK-000_governance_kernel.md", "FMWK-000", "Governance Kernel", "1.0.0", "active",
			map[string]string{"framework_id": FormMetadataList, "title": FormMetadataList, "version": FormMetadataList, "status": FormMetadataList},
			4, "MUST Every change to a governed root arrive as a package that passed every gate.", nil},
		{"FMWK-001_package_law.md", "FMWK-001", "Package Law", "1.1.0", "active",
			map[string]string{"framework_id": FormBold, "title": FormHeading, "version": FormBold, "status": FormBold},
			3, "Every package MUST carry a manifest that lists each of its files with a SHA-256 hash.", nil},
		{"FMWK-002_agent_runtime.md", "FMWK-002", "Agent Runtime", "1.0.0", "draft",
			map[string]string{"framework_id": FormHeading, "title": FormHeading, "version": FormDefault, "status": FormStatusSection},
			6, "AR-1 | Every model call goes through the gateway | critical", []string{"no version stated: 1.0.0"}},
		{"FMWK-003_naming_conventions.md", "FMWK-003", "Naming Conventions", "1.0.0", "active",
			map[string]string{"framework_id": FormHeading, "title": FormHeading, "version": FormDefault, "status": FormDefault},
			0, "", []string{"no version stated: 1.0.0", "no status stated: active", "states no MUST invariants: registered with none"}},
		{"FMWK-004_ledger_evidence.md", "FMWK-004", "Ledger Evidence", "1.0.0", "active",
			map[string]string{"framework_id": FormFileName, "title": FormHeading, "version": FormDefault, "status": FormDefault},
			3, "MUST hash-chain every entry to the one before it.", nil},
		{"FMWK-005_work_orders.md", "FMWK-005", "Work Orders", "2.1.0", "active",
			map[string]string{"framework_id": FormMetadataList, "title": FormHeading, "version": FormMetadataList, "status": FormBold},
			4, "An approver MUST NOT approve a work order they created.", []string{
				`version "2.0.0" in a bold line (line 3) is not read: the ## Metadata list (line 9), which takes precedence, says "2.1"`,
				`version "2.1" read as 2.1.0`}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := ParseNamed(filepath.Join(cpv2Dir, tc.file), readFixture(t, tc.file))
			require.NoError(t, err)
			require.Equal(t, []string{tc.id, tc.title, tc.version, tc.status}, []string{f.ID, f.Title, f.Version, f.Status})
			require.Equal(t, tc.sources, f.Sources)
			require.Len(t, f.Invariants, tc.invariants, "%q", f.Invariants)
			if tc.first != "" {
				require.Equal(t, tc.first, f.Invariants[0])
			}
			for _, n := range tc.notes {
				require.Contains(t, f.Notes, n)
			}
			for _, inv := range f.Invariants {
				require.NotContains(t, inv, "examples do not count", "a code block is not law")
				require.NotContains(t, inv, "SHOULD", "only MUST statements are invariants")
			}
		})
	}
}

func TestCPv2FixtureDetails(t *testing.T) {
	f, err := ParseNamed("FMWK-000_governance_kernel.md", readFixture(t, "FMWK-000_governance_kernel.md"))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"owner": "platform-governance", "created": "2025-01-14", "tier": "HO3", "supersedes": "none"}, f.Extra)
	require.Equal(t, "MUST NOT A package overwrite a file owned by another package.", f.Invariants[3])

	f, err = ParseNamed("FMWK-001_package_law.md", readFixture(t, "FMWK-001_package_law.md"))
	require.NoError(t, err)
	require.Equal(t, []string{
		"Every package MUST carry a manifest that lists each of its files with a SHA-256 hash.",
		"The installer MUST write a receipt for every installed package, and it MUST NOT leave a partially installed package behind after a crash.",
		"A package MUST NOT depend on a package of a lower tier.",
	}, f.Invariants, "sentences across wrapped lines; quoted \"MUST\" is a mention")

	f, err = ParseNamed("FMWK-005_work_orders.md", readFixture(t, "FMWK-005_work_orders.md"))
	require.NoError(t, err)
	require.Equal(t, []string{
		"An approver MUST NOT approve a work order they created.",
		"Every state change MUST be recorded in the HO2 ledger!",
		"approve | admin | the approver MUST differ from the creator",
		"start | worker | only an approved work order starts",
	}, f.Invariants, "a table with a Rule column is an invariant table")
}

func TestCPv2Refused(t *testing.T) {
	for file, want := range map[string]string{
		"refused/FMWK-006_release_train.md": "names two framework ids: FMWK-007 in the heading (line 1) and FMWK-006 in the file name",
		"refused/governance_notes.md":       "states no framework id",
		"refused/FMWK-008_retired_law.md":   `status "Superseded" in a bold line (line 3): want active, draft, deprecated, retired`,
	} {
		t.Run(file, func(t *testing.T) {
			_, err := ParseNamed(file, readFixture(t, file))
			require.Error(t, err)
			require.Equal(t, "FRAMEWORK_INVALID", err.(*Error).Code())
			require.Contains(t, err.Error(), want)
		})
	}
}

func TestForms(t *testing.T) {
	type want struct{ id, title, version, status, source string }
	for _, tc := range []struct {
		name, file, doc string
		want            want // source: where the id came from
		err             string
	}{
		// Each form alone.
		{"metadata list", "", "## Metadata\n- framework_id: FMWK-1\n- version: 2.0.0\n- status: deprecated\n- title: Law\n", want{"FMWK-1", "Law", "2.0.0", "deprecated", FormMetadataList}, ""},
		{"metadata list bold keys", "", "## Metadata\n* **Framework ID:** FMWK-1\n* **Version**: 1.2.0\n* `status`: Retired\n", want{"FMWK-1", "FMWK-1", "1.2.0", "retired", FormMetadataList}, ""},
		{"metadata list name", "", "## Metadata\n- id: FMWK-1\n- name: Named law\n", want{"FMWK-1", "Named law", "1.0.0", "active", FormMetadataList}, ""},
		{"bold lines", "", "# Law\n\n**Framework ID:** FMWK-1  \n**Version:** 1.0.1\n**Status:** Draft\n", want{"FMWK-1", "Law", "1.0.1", "draft", FormBold}, ""},
		{"bold colon outside", "", "**Framework**: FMWK-1\n__Version__: 3.0.0\n", want{"FMWK-1", "FMWK-1", "3.0.0", "active", FormBold}, ""},
		{"bold framework name is not an id", "", "# FMWK-1: Law\n**Framework:** Package law\n", want{"FMWK-1", "Law", "1.0.0", "active", FormHeading}, ""},
		{"status section", "", "# FMWK-1: Law\n\n## Status\n\n**Deprecated** since 2025-03.\n", want{"FMWK-1", "Law", "1.0.0", "deprecated", FormHeading}, ""},
		{"status section key", "", "# FMWK-1: Law\n## Status\n- Status: retired\n", want{"FMWK-1", "Law", "1.0.0", "retired", FormHeading}, ""},
		{"status section labelled", "", "# FMWK-1: Law\n## Status\nCurrent status: **Retired**\n", want{"FMWK-1", "Law", "1.0.0", "retired", FormHeading}, ""},
		{"status section prose", "", "# FMWK-1: Law\n## Status\nThis is in review.\n", want{}, `status "this" in the ## Status section (line 3)`},
		{"heading dash", "", "# FMWK-1 — The law\n", want{"FMWK-1", "The law", "1.0.0", "active", FormHeading}, ""},
		{"heading hyphen", "", "# FMWK-AB-1 - The law\n", want{"FMWK-AB-1", "The law", "1.0.0", "active", FormHeading}, ""},
		{"byte order mark", "", "\ufeff# FMWK-1: Law\r\n\r\n**Status:** draft\r\n", want{"FMWK-1", "Law", "1.0.0", "draft", FormHeading}, ""},
		{"heading id only", "", "# FMWK-1\n", want{"FMWK-1", "FMWK-1", "1.0.0", "active", FormHeading}, ""},
		{"heading bad id", "", "# FMWK-abc: Law\n", want{}, `framework id "FMWK-abc" must match`},
		{"only the first H1", "", "# FMWK-1: Law\n# FMWK-2: Other\n", want{"FMWK-1", "Law", "1.0.0", "active", FormHeading}, ""},
		{"file name", "law/FMWK-12_some_title.md", "# Some title\n- MUST hold.\n", want{"FMWK-12", "Some title", "1.0.0", "active", FormFileName}, ""},
		{"file name without title", "FMWK-12.md", "text\n", want{"FMWK-12", "FMWK-12", "1.0.0", "active", FormFileName}, ""},
		{"file name bad id", "FMWK-12a_x.md", "# Law\n", want{}, `the file name "FMWK-12a_x.md" begins like a framework id`},
		{"lower-case file name is no statement", "fmwk-12_x.md", "# FMWK-12: Law\n", want{"FMWK-12", "Law", "1.0.0", "active", FormHeading}, ""},
		{"no id", "law.md", "# Law\n**Version:** 1.0.0\n- MUST hold.\n", want{}, "states no framework id"},
		{"empty", "", "", want{}, "states no framework id"},
		// Mixtures: the same id everywhere, precedence for the rest.
		{"all forms agree", "FMWK-7_law.md", "# FMWK-7: Law\n**Framework ID:** FMWK-7\n**Status:** deprecated\n## Metadata\n- framework_id: FMWK-7\n- version: 1.1.0\n## Status\nActive\n",
			want{"FMWK-7", "Law", "1.1.0", "deprecated", FormMetadataList}, ""},
		{"list over bold", "", "## Metadata\n- framework_id: FMWK-7\n- status: active\n## Body\n**Status:** retired\n**Version:** 2.0.0\n",
			want{"FMWK-7", "FMWK-7", "2.0.0", "active", FormMetadataList}, ""},
		{"bold over status section", "", "# FMWK-7: Law\n**Status:** active\n## Status\nRetired\n", want{"FMWK-7", "Law", "1.0.0", "active", FormHeading}, ""},
		{"list title over heading", "", "# FMWK-7: Heading title\n## Metadata\n- title: List title\n", want{"FMWK-7", "List title", "1.0.0", "active", FormHeading}, ""},
		// Contradictions of the id.
		{"list against bold", "", "## Metadata\n- framework_id: FMWK-1\n## Body\n**Framework ID:** FMWK-2\n", want{}, "names two framework ids: FMWK-1 in the ## Metadata list (line 2) and FMWK-2 in a bold line (line 4)"},
		{"bold against heading", "", "# FMWK-1: Law\n**Framework ID:** FMWK-2\n", want{}, "names two framework ids: FMWK-1 in the heading (line 1) and FMWK-2 in a bold line (line 2)"},
		{"heading against file name", "FMWK-2_law.md", "# FMWK-1: Law\n", want{}, "FMWK-1 in the heading (line 1) and FMWK-2 in the file name"},
		{"list against itself", "", "## Metadata\n- framework_id: FMWK-1\n- id: FMWK-2\n", want{}, "names two framework ids"},
		{"invalid id in list", "", "## Metadata\n- framework_id: fmwk-1\n", want{}, `framework id "fmwk-1" must match`},
		// Values.
		{"version v prefix", "", "# FMWK-1: Law\n**Version:** v2.3\n", want{"FMWK-1", "Law", "2.3.0", "active", FormHeading}, ""},
		{"version with date", "", "# FMWK-1: Law\n**Version:** 1.4.0 (2025-02-01)\n", want{"FMWK-1", "Law", "1.4.0", "active", FormHeading}, ""},
		{"version four parts", "", "# FMWK-1: Law\n**Version:** 1.2.3.4\n", want{}, `version "1.2.3.4" in a bold line (line 2): not a semantic version`},
		{"status upper case", "", "# FMWK-1: Law\n**Status:** ACTIVE\n", want{"FMWK-1", "Law", "1.0.0", "active", FormHeading}, ""},
		{"status unknown", "", "# FMWK-1: Law\n**Status:** proposed\n", want{}, `status "proposed" in a bold line (line 2): want active, draft, deprecated, retired`},
		// HTML comments (not shown) state nothing.
		{"comments", "", "# FMWK-1: Law\n<!-- **Status:** retired -->\n<!--\n**Framework ID:** FMWK-2\n## Status\nretired\n-->\n**Version:** 1.0.0 <!-- was 0.9 --> \n", want{"FMWK-1", "Law", "1.0.0", "active", FormHeading}, ""},
		{"comment in heading", "", "# <!-- FMWK-2: --> Law\n", want{}, "states no framework id"},
		// Code blocks state nothing.
		{"fenced metadata", "", "# FMWK-1: Law\n```\n**Framework ID:** FMWK-2\n## Status\nretired\n```\n~~~md\n# FMWK-3: x\n~~~\n", want{"FMWK-1", "Law", "1.0.0", "active", FormHeading}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseNamed(tc.file, []byte(tc.doc))
			if tc.err != "" {
				require.Error(t, err)
				require.Equal(t, "FRAMEWORK_INVALID", err.(*Error).Code())
				require.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, want{f.ID, f.Title, f.Version, f.Status, f.Sources["framework_id"]})
		})
	}
}

func TestCPv2Invariants(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"bracket items", "- [MUST] a\n- [MUST NOT] b\n* **[MUST]** c\n- [SHOULD] d\n1. [MUST] e\n", []string{"MUST a", "MUST NOT b", "MUST c", "MUST e"}},
		{"keyword items", "- MUST a\n- **MUST NOT** b\n- plain\n", []string{"MUST a", "MUST NOT b"}},
		{"wrapped item", "- [MUST] keep\n  going\n- next MUST x\n", []string{"MUST keep going", "next MUST x"}},
		{"sentences", "Agents MAY read. Agents MUST log\nevery call. They SHOULD be quiet. The gate MUST NOT\nskip.\n", []string{"Agents MUST log every call.", "The gate MUST NOT skip."}},
		{"mentions", "The word `MUST` marks law. Write \"MUST\" in capitals. MUSTN'T is not a keyword.\n", nil},
		{"invariant section table", "## Invariants\n| ID | Statement |\n|---|---|\n| I-1 | files have one owner |\n| I-2 | **ledgers** chain |\n", []string{"I-1 | files have one owner", "I-2 | ledgers chain"}},
		{"invariant column", "## Rules\n| # | Invariant |\n|:--|--:|\n| 1 | a |\n", []string{"1 | a"}},
		{"other table", "## Roles\n| Role | May |\n|---|---|\n| admin | install |\n| worker | MUST stay in scope |\n", []string{"worker | MUST stay in scope"}},
		{"header row is not an invariant", "## Invariants\n| MUST |\n|---|\n", nil},
		{"blockquote", "> Every file MUST be owned.\n", []string{"Every file MUST be owned."}},
		{"duplicates once", "- [MUST] a\n- [MUST] a\n", []string{"MUST a"}},
		{"metadata and status say nothing", "## Metadata\n- note: MUST x\n## Status\nActive. It MUST y.\n", nil},
		{"fences", "```\n- [MUST] no\n```\n- [MUST] yes\n", []string{"MUST yes"}},
		{"comments", "<!-- - [MUST] hidden -->\n<!--\nAll MUST hide.\n-->\n- [MUST] shown <!-- not this -->\n", []string{"MUST shown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseNamed("FMWK-1.md", []byte(tc.doc))
			require.NoError(t, err)
			require.Equal(t, tc.want, f.Invariants)
		})
	}
}

// TestOursUnchanged: a document in our form reads exactly as it did before
// CPv2's forms were read, unless it names two ids.
func TestOursUnchanged(t *testing.T) {
	ours := doc + "\n# FMWK-001: Tools\n## Metadata\n- version: 9.9.9\n**Status:** retired\n- [MUST] bracket\nProse MUST be ignored.\n"
	f, err := ParseNamed("FMWK-001_tools.md", []byte(ours))
	require.NoError(t, err)
	old, err := parseBefore([]byte(ours))
	require.NoError(t, err)
	require.Equal(t, old, &Framework{ID: f.ID, Title: f.Title, Version: f.Version, Status: f.Status, Invariants: f.Invariants})
	require.Equal(t, map[string]string{"framework_id": FormFrontMatter, "title": FormFrontMatter, "version": FormFrontMatter, "status": FormDefault}, f.Sources)
	require.Contains(t, f.Notes, `version "9.9.9" stated by the ## Metadata list (line 14) is not read: the metadata block says "1.2.0"`)

	for name, text := range map[string]string{
		"heading":   "---\nframework_id: FMWK-001\ntitle: t\nversion: 1.0.0\n---\n# FMWK-002: Other\n",
		"bold":      doc + "**Framework ID:** FMWK-002\n",
		"list":      doc + "## Metadata\n- framework_id: FMWK-002\n",
		"file name": doc,
	} {
		_, err := ParseNamed("FMWK-002_x.md", []byte(text))
		if name != "file name" {
			_, err = ParseNamed("", []byte(text))
		}
		require.ErrorContains(t, err, "names two framework ids: FMWK-001 in the metadata block (line 2) and FMWK-002", name)
	}
}

func FuzzParseNamed(f *testing.F) {
	f.Add("", []byte(doc))
	for _, dir := range []string{cpv2Dir, filepath.Join(cpv2Dir, "refused")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.md"))
		if err != nil || len(files) == 0 {
			f.Fatalf("no fixtures in %s: %v", dir, err)
		}
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(filepath.Base(p), b)
			f.Add("", b)
		}
	}
	f.Fuzz(func(t *testing.T, name string, b []byte) {
		fw, err := ParseNamed(name, b)
		if before, berr := parseBefore(b); strings.HasPrefix(string(b), "---\n") || strings.HasPrefix(string(b), "---\r\n") {
			// Our form: exactly what it was, unless the document names two ids.
			switch {
			case berr == nil && err == nil:
				if !reflect.DeepEqual(before, &Framework{ID: fw.ID, Title: fw.Title, Version: fw.Version, Status: fw.Status, Invariants: fw.Invariants}) {
					t.Fatalf("our form read differently: before %+v, now %+v", before, fw)
				}
			case berr == nil && !strings.Contains(err.Error(), "two framework ids") && !strings.Contains(err.Error(), "file name"):
				t.Fatalf("our form refused now (%v), accepted before", err)
			case berr != nil && err == nil && fw.Status != "draft":
				t.Fatalf("our form accepted now, refused before (%v)", berr)
			}
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if !idRE().MatchString(fw.ID) || fw.Title == "" || !manifest.ValidVersion(fw.Version) || !slices.Contains(Statuses, fw.Status) {
			t.Fatalf("accepted %+v", fw)
		}
		for _, k := range []string{"framework_id", "title", "version", "status"} {
			if fw.Sources[k] == "" {
				t.Fatalf("no source for %s: %v", k, fw.Sources)
			}
		}
		if st, _ := fileNameID(name); st != nil && st.value != fw.ID {
			t.Fatalf("file name states %s, read %s", st.value, fw.ID)
		}
		again, err := ParseNamed(name, b)
		if err != nil || !reflect.DeepEqual(fw, again) {
			t.Fatalf("not deterministic: %+v then %+v, %v", fw, again, err)
		}
		if len(Removed(fw, fw)) != 0 {
			t.Fatal("a framework removes invariants from itself")
		}
	})
}

// parseBefore is Parse as it was before CPv2's forms were read (commit
// 4f5f7a7), kept to hold our form's reading unchanged.
func parseBefore(doc []byte) (*Framework, error) {
	sc := bufio.NewScanner(strings.NewReader(string(doc)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	f := &Framework{Status: "active"}
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return strings.TrimRight(sc.Text(), "\r"), true
	}
	if l, ok := next(); !ok || l != "---" {
		return nil, &Error{1, "must open with a --- metadata block"}
	}
	seen := map[string]bool{}
	for {
		l, ok := next()
		if !ok {
			return nil, &Error{line, "metadata block is not closed with ---"}
		}
		if l == "---" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, &Error{line, fmt.Sprintf("want key: value, got %q", l)}
		}
		if seen[k] {
			return nil, &Error{line, fmt.Sprintf("key %s repeated", k)}
		}
		seen[k] = true
		switch k {
		case "framework_id":
			f.ID = v
		case "title":
			f.Title = v
		case "version":
			f.Version = v
		case "status":
			f.Status = v
		default:
			return nil, &Error{line, fmt.Sprintf("unknown key %q", k)}
		}
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		if m := invariantRE().FindStringSubmatch(l); m != nil {
			f.Invariants = append(f.Invariants, normalize(m[1]))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{line, err.Error()}
	}
	switch {
	case !idRE().MatchString(f.ID):
		return nil, &Error{0, fmt.Sprintf("framework_id %q must match %s", f.ID, idRE())}
	case f.Title == "":
		return nil, &Error{0, "title is required"}
	case !manifest.ValidVersion(f.Version):
		return nil, &Error{0, fmt.Sprintf("version %q is not a semantic version", f.Version)}
	case !slices.Contains([]string{"active", "deprecated", "retired"}, f.Status):
		return nil, &Error{0, fmt.Sprintf("status %q: want active, deprecated or retired", f.Status)}
	}
	return f, nil
}

// BenchmarkParse reads our form (the baseline) and CPv2's largest fixture
// forms in the same run.
func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct{ name, file string }{
		{"ours", ""}, {"cpv2-metadata-list", "FMWK-000_governance_kernel.md"}, {"cpv2-bold-sentences", "FMWK-001_package_law.md"},
		{"cpv2-status-table", "FMWK-002_agent_runtime.md"},
	} {
		text := []byte(doc)
		if tc.file != "" {
			text = readFixture(b, tc.file)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := ParseNamed(tc.file, text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
