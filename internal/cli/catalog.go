package cli

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// CodeInfo is one row of the catalogue of error codes: what a code means,
// its exit class (DESIGN.md §3), who emits it and what to do about it. The
// catalogue is what `cp-trace compliance troubleshoot --error CODE` serves,
// what every binary's -h lists under "Errors" and what docs/errors.md shows.
type CodeInfo struct {
	Code string `json:"code"`
	// Exit is the code's exit class, from the one code→exit table.
	Exit int `json:"exit"`
	// Meaning says what happened, in one sentence.
	Meaning string `json:"meaning"`
	// Fix says what a user can do about it, in one or two sentences.
	Fix string `json:"fix"`
	// EmittedBy names who emits the code, each one of: "cp-x verb" (a
	// verb), "cp-x" (every verb of the binary), "every binary" (verbs of
	// every binary: a library error any of them can meet), "request path"
	// (the shared code every verb runs: reading, validating and admitting
	// the request), or a gate or install rule ("G0A", "G2", "VERSION",
	// "OWNERSHIP", "RECEIPTS"), whose findings cp-gate reports and
	// cp-install refuses with. It is generated from the sources by the
	// catalogue test, which fails when it drifts (catalog_test.go says how).
	EmittedBy []string `json:"emitted_by"`
}

// codeRow is a catalogue row as written: the exit class comes from
// classes and EmittedBy from emittedBy (generated).
type codeRow struct {
	code, meaning, fix string
}

var catalogue = sync.OnceValue(func() map[string]CodeInfo {
	m := make(map[string]CodeInfo, len(codeRows))
	by := emittedBy()
	for _, r := range codeRows {
		m[r.code] = CodeInfo{Code: r.code, Exit: ExitFor(r.code), Meaning: r.meaning, Fix: r.fix,
			EmittedBy: by[r.code]}
	}
	return m
})

// Codes returns every row of the catalogue, sorted by code. The slice and
// its rows are the caller's.
func Codes() []CodeInfo {
	m := catalogue()
	out := make([]CodeInfo, 0, len(m))
	for _, code := range slices.Sorted(maps.Keys(m)) {
		out = append(out, clone(m[code]))
	}
	return out
}

// LookupCode returns the catalogue's row for code, and whether there is
// one. Codes are upper case; a code typed in lower case, or with spaces
// around it, is found all the same.
func LookupCode(code string) (CodeInfo, bool) {
	info, ok := catalogue()[strings.ToUpper(strings.TrimSpace(code))]
	if !ok {
		return CodeInfo{}, false
	}
	return clone(info), true
}

// clone copies a row; EmittedBy is never nil (a reserved code's is empty),
// so that its JSON is a list.
func clone(c CodeInfo) CodeInfo {
	c.EmittedBy = append([]string{}, c.EmittedBy...)
	return c
}

// emittedByTool reports whether an EmittedBy names tool (or every binary).
func emittedByTool(by []string, tool string) bool {
	for _, e := range by {
		if e == tool || strings.HasPrefix(e, tool+" ") {
			return true
		}
	}
	return false
}

// errorsHelp is the "Errors" section of tool's -h, drawn from the
// catalogue (never copied by hand): each code its own verbs emit, with its
// meaning; then, by name only, the gates' findings its verbs report or
// refuse with (for gateRunners), and the codes every binary may exit with.
func errorsHelp(tool string) string {
	var own, findings, common []CodeInfo
	for _, c := range Codes() {
		switch {
		case emittedByTool(c.EmittedBy, tool) && slices.Contains(gateRunners, tool) && slices.ContainsFunc(c.EmittedBy, isGate):
			findings = append(findings, c)
		case emittedByTool(c.EmittedBy, tool):
			own = append(own, c)
		case slices.Contains(c.EmittedBy, "every binary") || slices.Contains(c.EmittedBy, "request path"):
			common = append(common, c)
		}
	}
	var b strings.Builder
	b.WriteString("\nErrors (the code in .error.code; its exit status in brackets; the fix:\ndocs/errors.md, or cp-trace compliance troubleshoot --error CODE):\n")
	width := 0
	for _, c := range own {
		width = max(width, len(c.Code))
	}
	for _, c := range own {
		line := "  " + c.Code + strings.Repeat(" ", width-len(c.Code)) + " [" + strconv.Itoa(c.Exit) + "]"
		for _, w := range strings.Fields(strings.TrimSuffix(c.Meaning, ".")) {
			if len(line)+1+len(w) > 79 {
				b.WriteString(line + "\n")
				line = strings.Repeat(" ", 6)
			}
			line += " " + w
		}
		b.WriteString(line + "\n")
	}
	codeList(&b, "gate findings (in .result; the gates' codes):", findings)
	codeList(&b, "and, from any binary:", common)
	return b.String()
}

// gateRunners are the binaries whose verbs run the gates and answer with
// their findings (DESIGN.md §7): cp-gate reports them, cp-install refuses
// with them, cp-pkg preflight, stage and sign judge an archive by them,
// and cp-auth init trusts its key through cp-install's trust path (a
// kernel release, judged like any install). Their -h lists the gates'
// codes by name, so that it stays readable.
var gateRunners = []string{"cp-auth", "cp-gate", "cp-install", "cp-pkg"}

// isGate reports whether an EmittedBy element names a gate or rule.
func isGate(e string) bool {
	return e != "every binary" && e != "request path" && !strings.HasPrefix(e, "cp-")
}

// codeList writes codes by name after a title, wrapped at 79 columns.
func codeList(b *strings.Builder, title string, codes []CodeInfo) {
	if len(codes) == 0 {
		return
	}
	line := "  " + title
	for _, c := range codes {
		if len(line)+1+len(c.Code) > 79 {
			b.WriteString(line + "\n")
			line = "   "
		}
		line += " " + c.Code
	}
	b.WriteString(line + "\n")
}

// help is the tool's -h text: its Usage, then its Errors section.
func (t *Tool) help() string {
	return t.Usage + errorsHelp(t.Name)
}
