package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

var updateCatalog = flag.Bool("update", false, "rewrite catalog_emitters.go and docs/errors.md from the sources and the catalogue")

// TestCatalogRows holds the catalogue to the code→exit table: one row per
// code of classes and no other, each with a meaning and a fix written as
// sentences (which may start with a command or a path).
func TestCatalogRows(t *testing.T) {
	seen := map[string]bool{}
	for i, r := range codeRows {
		require.False(t, seen[r.code], "catalog_rows.go: %s has two rows", r.code)
		seen[r.code] = true
		if i > 0 && codeRows[i-1].code > r.code {
			t.Errorf("catalog_rows.go: row %s is after %s (keep the rows sorted by code)", r.code, codeRows[i-1].code)
		}
		if _, ok := classes[r.code]; !ok {
			t.Errorf("catalog_rows.go: row %s names a code that classes in errors.go does not hold (renamed? removed?)", r.code)
		}
		for what, s := range map[string]string{"meaning": r.meaning, "fix": r.fix} {
			if s == "" || unicode.IsLower([]rune(s)[0]) && !strings.HasPrefix(s, "cp-") && !strings.HasPrefix(s, "config/") || !strings.HasSuffix(s, ".") {
				t.Errorf("catalog_rows.go: %s's %s %q: want a sentence (a capital, a command or a path first; a period last)", r.code, what, s)
			}
		}
	}
	for _, code := range slices.Sorted(maps.Keys(classes)) {
		if !seen[code] {
			t.Errorf("catalog_rows.go: %s (exit %d) has no row: add {%q, meaning, fix} to codeRows", code, classes[code], code)
		}
	}
}

// TestCatalogEmitters fails when a code is emitted in the source (see
// emitters_test.go for what the scan reads and how it follows calls) and
// has no row, when a row's code is emitted nowhere a verb, a gate or the
// request path reaches (reserved aside), and when a row's EmittedBy is not
// what the sources say. EmittedBy is generated: `go test ./internal/cli
// -run TestCatalog -update` rewrites catalog_emitters.go (and
// docs/errors.md).
func TestCatalogEmitters(t *testing.T) {
	scan := derive(t, filepath.Join("..", ".."))
	require.Contains(t, scan.emitters, "cp-install install", "the scan found cp-install's verbs")
	require.Contains(t, scan.emitters, "G2", "the scan found the gates")
	require.Contains(t, scan.emitters, "request path", "the scan found the request path")
	for _, code := range slices.Sorted(maps.Keys(scan.sites)) {
		for _, st := range scan.sites[code] {
			if len(scan.reachedBy(st)) == 0 {
				t.Logf("%s at %s (in %s): no verb, gate or request path reaches it (test support, or code only tests call)", code, st.at, st.node)
			}
		}
	}
	for _, b := range scan.built {
		t.Errorf("%s: a code built at run time; emit constant codes, so that the catalogue can hold each", b)
	}
	want := map[string][]string{}
	for _, code := range slices.Sorted(maps.Keys(scan.sites)) {
		by := compress(scan.derivedEmitters(code), scan.verbs)
		if _, ok := classes[code]; !ok {
			t.Errorf("code %s, emitted at %s (by %s), has no row: add it to classes in errors.go and to codeRows in catalog_rows.go",
				code, sitesOf(scan.sites[code]), strings.Join(by, ", "))
			continue
		}
		if len(by) > 0 {
			want[code] = by
		}
	}
	for _, code := range reserved {
		if len(want[code]) > 0 {
			t.Errorf("%s is in reserved (errors_test.go) but emitted at %s: drop it from reserved", code, sitesOf(scan.sites[code]))
		}
	}
	for _, code := range slices.Sorted(maps.Keys(classes)) {
		if len(want[code]) == 0 && !slices.Contains(reserved, code) {
			where := "nowhere"
			if len(scan.sites[code]) > 0 {
				where = "only at " + sitesOf(scan.sites[code]) + ", which no verb, gate or request path reaches"
			}
			t.Errorf("%s is emitted %s: remove its rows (classes, codeRows), or list it in reserved (errors_test.go)", code, where)
		}
	}
	if *updateCatalog {
		writeEmitters(t, want)
		require.NoError(t, os.MkdirAll(filepath.Dir(docFile), 0o755))
		require.NoError(t, os.WriteFile(docFile, catalogDoc(want), 0o644))
		return
	}
	for _, code := range slices.Sorted(maps.Keys(classes)) {
		if have := emittedBy()[code]; !slices.Equal(have, want[code]) {
			t.Errorf("%s: EmittedBy is %q, the sources say %q (emitted at %s): run go test ./internal/cli -run TestCatalog -update",
				code, have, want[code], sitesOf(scan.sites[code]))
		}
	}
	for code := range emittedBy() {
		if _, ok := classes[code]; !ok {
			t.Errorf("catalog_emitters.go holds %s, which classes does not: run go test ./internal/cli -run TestCatalog -update", code)
		}
	}
}

// TestCatalogReach holds the scan to what the code does, for emitters the
// source makes plain.
func TestCatalogReach(t *testing.T) {
	scan := derive(t, filepath.Join("..", ".."))
	for code, by := range map[string][]string{
		"RESERVED_EVENT_TYPE": {"cp-ledger append"},
		"SELF_APPROVAL":       {"cp-wo approve"},
		"WO_IDS_EXHAUSTED":    {"cp-wo create"},
		"INVALID_JSON":        {"request path"},
		"WAIVER_UNRECORDED":   {"G5", "cp-gate check"},
		"PLANE_NESTED":        {"cp-install bootstrap"},
		"WEAKENED_CONTROL":    {"G3", "cp-gate check", "cp-install import cpv2", "cp-install install"}, // a warning: a code all the same
	} {
		require.Equal(t, by, scan.derivedEmitters(code), code)
	}
	for _, code := range []string{"ORPHAN", "GENESIS_UNLINKED", "TLOG_MISSING"} {
		require.NotContains(t, scan.derivedEmitters(code), "cp-install install", "%s: an integrity finding, not one of install's gates", code)
	}
	require.NotContains(t, scan.derivedEmitters("TOOL_DENIED"), "request path", "cp-auth check's verdict, not the firewall's")
}

// gateOrder is the order gates are listed in: cp-gate's, then the install
// rules and the receipts sweep.
var gateOrder = []string{"G0A", "G0B", "G0K", "G1", "G2", "G3", "G5", "G6", "VERSION", "OWNERSHIP", "RECEIPTS"}

// compress writes a derived set of emitters as EmittedBy says (catalog.go):
// the request path; "every binary" when verbs of every binary reach the
// code, else each binary whose every verb does, else its verbs; then the
// gates.
func compress(derived []string, verbs map[string][]string) []string {
	var out, gates []string
	has := map[string]bool{}
	for _, e := range derived {
		has[e] = true
		if e != "request path" && !strings.HasPrefix(e, "cp-") {
			gates = append(gates, e)
		}
	}
	if has["request path"] {
		out = append(out, "request path")
	}
	tools := slices.Sorted(maps.Keys(verbs))
	every := true
	for _, tool := range tools {
		every = every && slices.ContainsFunc(verbs[tool], func(v string) bool { return has[v] })
	}
	if every {
		out = append(out, "every binary")
	} else {
		for _, tool := range tools {
			vs := slices.Sorted(slices.Values(verbs[tool]))
			if !slices.ContainsFunc(vs, func(v string) bool { return !has[v] }) {
				out = append(out, tool)
				continue
			}
			for _, v := range vs {
				if has[v] {
					out = append(out, v)
				}
			}
		}
	}
	slices.SortStableFunc(gates, func(a, b string) int {
		ia, ib := slices.Index(gateOrder, a), slices.Index(gateOrder, b)
		if ia < 0 {
			ia = len(gateOrder)
		}
		if ib < 0 {
			ib = len(gateOrder)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	return append(out, gates...)
}

func sitesOf(sites []site) string {
	var s []string
	for _, st := range sites {
		s = append(s, st.at)
	}
	if len(s) == 0 {
		return "nowhere"
	}
	return strings.Join(s, ", ")
}

func writeEmitters(t *testing.T, want map[string][]string) {
	var b bytes.Buffer
	b.WriteString("// Code generated by go test ./internal/cli -run TestCatalog -update; DO NOT EDIT.\n\n")
	b.WriteString("package cli\n\n")
	b.WriteString("// emittedBy returns each code's EmittedBy (see CodeInfo), derived from\n// the sources by TestCatalogEmitters. A function, not a variable: a\n// process builds the table only when it answers -h or looks a code up.\n")
	b.WriteString("func emittedBy() map[string][]string {\n\treturn map[string][]string{\n")
	for _, code := range slices.Sorted(maps.Keys(want)) {
		fmt.Fprintf(&b, "\t%q: {", code)
		for i, e := range want[code] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", e)
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n}\n")
	src, err := format.Source(b.Bytes())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile("catalog_emitters.go", src, 0o644))
}

// TestCodesAPI: Codes is sorted and whole, LookupCode finds each row, and
// what they return is the caller's to change.
func TestCodesAPI(t *testing.T) {
	codes := Codes()
	require.Len(t, codes, len(classes))
	require.True(t, slices.IsSortedFunc(codes, func(a, b CodeInfo) int { return strings.Compare(a.Code, b.Code) }))
	for _, c := range codes {
		got, ok := LookupCode(c.Code)
		require.True(t, ok, c.Code)
		require.Equal(t, c, got)
		require.Equal(t, classes[c.Code], c.Exit, c.Code)
	}
	_, ok := LookupCode("NO_SUCH_CODE")
	require.False(t, ok)
	got, ok := LookupCode(" ledger_invalid\n")
	require.True(t, ok, "a code typed in lower case is found")
	require.Equal(t, "LEDGER_INVALID", got.Code)
	_, ok = LookupCode("")
	require.False(t, ok)

	provider, ok := LookupCode("UNSAFE_NUMBER")
	require.True(t, ok)
	raw, err := json.Marshal(provider)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"emitted_by":[]`, "a reserved code's emitters are an empty list, not null")

	c, _ := LookupCode("WO_REQUIRED")
	require.NotEmpty(t, c.EmittedBy)
	c.EmittedBy[0] = "changed"
	c2, _ := LookupCode("WO_REQUIRED")
	require.NotEqual(t, "changed", c2.EmittedBy[0], "a caller cannot change the catalogue")

	raw, err = json.Marshal(c2)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	require.ElementsMatch(t, []string{"code", "exit", "meaning", "fix", "emitted_by"}, slices.Collect(maps.Keys(m)))
}

// TestErrorsHelp: a binary's -h ends with its Errors section, drawn from
// the catalogue: its own codes with their meanings, the gates' findings and
// the codes of every binary by name.
func TestErrorsHelp(t *testing.T) {
	tool := &Tool{Name: "cp-ledger", Usage: "Usage: cp-ledger VERB\n", Verbs: []*Verb{{Name: "show", Run: func(context.Context, *Call, Request) Outcome { return Outcome{} }}}}
	var stdout, stderr bytes.Buffer
	require.Equal(t, ExitOK, Run(context.Background(), tool, []string{"-h"}, strings.NewReader(""), &stdout, &stderr))
	help := stderr.String()
	require.True(t, strings.HasPrefix(help, tool.Usage), "the usage first")
	require.Contains(t, help, "\nErrors (")
	info, _ := LookupCode("RESERVED_EVENT_TYPE")
	require.Regexp(t, `(?m)^  RESERVED_EVENT_TYPE +\[1\] `+strings.Fields(info.Meaning)[0], help, "an own code, with its meaning")
	require.Regexp(t, `(?m)^  and, from any binary:.* AUTH_EXPIRED`, help, "the request path's codes, by name")
	require.NotContains(t, help, "SELF_APPROVAL", "cp-wo's codes are not cp-ledger's")
	for _, line := range strings.Split(help, "\n") {
		require.LessOrEqual(t, len(line), 79, "a line of -h fits a terminal: %q", line)
	}
	require.Contains(t, errorsHelp("cp-install"), "gate findings", "cp-install refuses with the gates' codes")
}

// docFile is the catalogue as a document: generated, never edited.
var docFile = filepath.Join("..", "..", "docs", "errors.md")

// TestCatalogDoc holds docs/errors.md to the catalogue: `go test
// ./internal/cli -run TestCatalog -update` rewrites it.
func TestCatalogDoc(t *testing.T) {
	if *updateCatalog {
		t.Skip("TestCatalogEmitters writes it, with the emitters it derives")
	}
	want := catalogDoc(emittedBy())
	have, err := os.ReadFile(docFile)
	require.NoError(t, err)
	require.Equal(t, string(want), string(have), "docs/errors.md drifted from the catalogue: run go test ./internal/cli -run TestCatalog -update")
}

// catalogDoc renders the catalogue with the given emitters.
func catalogDoc(by map[string][]string) []byte {
	var b bytes.Buffer
	b.WriteString(`# Error codes

<!-- Generated from internal/cli (catalog_rows.go, errors.go, catalog_emitters.go)
by go test ./internal/cli -run TestCatalog -update; do not edit. -->

Every error a Control Plane binary prints carries one of these codes in ` + "`.error.code`" + `
(and in its stderr line), and exits with the code's class (DESIGN.md §3): 1 a negative
verdict, 2 usage, 3 invalid input, 4 unavailable (a retry may succeed), 5 internal. A
gate's findings (in ` + "`.result`" + `) use the same codes; a few are warnings, which never set
an exit status. A verb that refuses with a gate's finding (` + "`cp-install`" + `; G2 and G3 before
` + "`cp-pkg register-*`" + `) exits 1 whatever the code's class: the refusal is the verdict. Look a
code up with ` + "`cp-x -h`" + ` (its Errors section) or here;
` + "`cp-trace compliance troubleshoot --error CODE`" + ` serves the same catalogue.

**Emitted by**: a verb (` + "`cp-install install`" + `), every verb of a binary (` + "`cp-gate`" + `), verbs of
every binary (` + "`every binary`" + `), the request path every verb runs first (reading, validating
and admitting the request), or a gate or install rule (` + "`G0A`" + ` … ` + "`G6`" + `, ` + "`VERSION`" + `,
` + "`OWNERSHIP`" + `, ` + "`RECEIPTS`" + `), whose findings ` + "`cp-gate`" + ` reports and ` + "`cp-install`" + ` refuses with.
It is derived from the sources by a test, so it holds where the code can arise.

| code | exit | meaning | fix | emitted by |
|---|---|---|---|---|
`)
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, c := range Codes() {
		who := "reserved: nothing emits it yet"
		if len(by[c.Code]) > 0 {
			who = strings.Join(by[c.Code], ", ")
		}
		fmt.Fprintf(&b, "| `%s` | %d | %s | %s | %s |\n", c.Code, c.Exit, cell(c.Meaning), cell(c.Fix), cell(who))
	}
	return b.Bytes()
}
