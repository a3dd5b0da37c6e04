package framework

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/control-plane/cp/pkg/manifest"
)

// Forms a framework's metadata is stated in, in order of precedence: when
// several state a field, the first in this order is taken (and the others
// that disagree are named in Notes). Statements of the id must all agree.
const (
	FormFrontMatter   = "front_matter"   // our --- block
	FormMetadataList  = "metadata_list"  // CPv2: "- version: 1.0.0" under "## Metadata"
	FormBold          = "bold"           // CPv2: "**Version:** 1.0.0" on a line of its own
	FormStatusSection = "status_section" // CPv2: the first line of a "## Status" section
	FormHeading       = "heading"        // CPv2: the first "# FMWK-123: Title"
	FormFileName      = "file_name"      // CPv2: "FMWK-123_some_title.md"
	FormDefault       = "default"        // stated nowhere: version 1.0.0, status active, title the id
)

// Precedence lists the forms in order of precedence.
var Precedence = []string{FormFrontMatter, FormMetadataList, FormBold, FormStatusSection, FormHeading, FormFileName}

// Default values of a CPv2 document's fields it does not state.
const (
	DefaultVersion = "1.0.0"
	DefaultStatus  = "active"
)

const (
	fieldID      = "framework_id"
	fieldTitle   = "title"
	fieldVersion = "version"
	fieldStatus  = "status"
)

// statement is one statement of a metadata field.
type statement struct {
	field, value, form string
	line               int // 0 for the file name
}

func (s statement) where() string {
	switch s.form {
	case FormFileName:
		return "the file name"
	case FormFrontMatter:
		return fmt.Sprintf("the metadata block (line %d)", s.line)
	case FormMetadataList:
		return fmt.Sprintf("the ## Metadata list (line %d)", s.line)
	case FormBold:
		return fmt.Sprintf("a bold line (line %d)", s.line)
	case FormStatusSection:
		return fmt.Sprintf("the ## Status section (line %d)", s.line)
	}
	return fmt.Sprintf("the heading (line %d)", s.line)
}

// fieldOf maps a metadata key as CPv2 spells it to the field it states, or
// "" for a key that states none of them.
func fieldOf(key string) string {
	switch key {
	case "framework_id", "framework", "id", "fmwk_id":
		return fieldID
	case "title", "name":
		return fieldTitle
	case "version":
		return fieldVersion
	case "status":
		return fieldStatus
	}
	return ""
}

func fieldValue(f *Framework, field string) string {
	switch field {
	case fieldID:
		return f.ID
	case fieldTitle:
		return f.Title
	case fieldVersion:
		return f.Version
	}
	return f.Status
}

var (
	fenceRE    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("^ {0,3}(```|~~~)") })
	headingRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`) })
	itemRE     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(\s*)(?:[-*+]|\d{1,9}[.)])\s+(.*)$`) })
	keyValueRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:\*\*|__)?` + "`?" + `([A-Za-z][A-Za-z0-9 _-]*?)` + "`?" + `(?:\s*:\s*(?:\*\*|__)|(?:\*\*|__)\s*:|\s*:)\s*(.*)$`)
	})
	boldRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\s*(?:[-*+]\s+)?(?:\*\*|__)([A-Za-z][A-Za-z0-9 _-]*?)(?:\s*:\s*(?:\*\*|__)|(?:\*\*|__)\s*:)\s*(.*)$`)
	})
	// An id in a heading: "FMWK-123: Title", "FMWK-123 — Title", "FMWK-123 Title", "FMWK-123".
	headingIDRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(FMWK-[A-Za-z0-9-]*[A-Za-z0-9])(?:\s*[:–—]\s*|\s+-\s+|\s+|$)(.*)$`)
	})
	mustRE    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bMUST\b`) })
	bracketRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\[(MUST(?:\s+NOT)?)\]\s*(.*)$`) })
	// A mention of the keyword, not a use: in a code span or quotes.
	mentionRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("`[^`]*`|[\"“'‘]MUST(?: NOT)?[\"”'’]") })
	tableSepRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?$`) })
)

// scanned is what a CPv2 reading of a document's lines found.
type scanned struct {
	statements []statement
	extra      map[string]string
	invariants []string
	problems   []*Error // statements that cannot be read: a refusal in CPv2's form
}

func (sc *scanned) problem(line int, format string, args ...any) {
	sc.problems = append(sc.problems, &Error{line, fmt.Sprintf(format, args...)})
}

// state adds a statement of field, checking its value.
func (sc *scanned) state(field, value, form string, line int) {
	value = cleanValue(value)
	switch field {
	case fieldID:
		if !idRE().MatchString(value) {
			sc.problem(line, "framework id %q must match %s", value, idRE())
			return
		}
	case fieldTitle:
		if value == "" {
			return
		}
	case fieldVersion, fieldStatus:
		// "Active (since 2025-03)", "Draft — under review", "1.2.0, 2025-04-01"
		if w := strings.FieldsFunc(value, func(r rune) bool { return r == ' ' || r == '(' || r == ',' || r == ';' }); len(w) > 0 {
			value = strings.TrimRight(strings.Trim(w[0], "*_`"), ".,;:—–-")
		}
		if value == "" {
			sc.problem(line, "%s is empty", field)
			return
		}
	}
	sc.statements = append(sc.statements, statement{field, value, form, line})
}

// cleanValue strips emphasis and code markers around a value.
func cleanValue(v string) string {
	v = strings.TrimSpace(v)
	for {
		w := strings.TrimSpace(strings.Trim(v, "*_`"))
		if w == v {
			return normalize(v)
		}
		v = w
	}
}

// normKey is a metadata key in one spelling: lower case, "_" for spaces and
// hyphens.
func normKey(k string) string {
	return strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(k)))
}

// scan reads lines as CPv2 wrote them; first is the line number of
// lines[0] minus one.
func scan(lines []string, first int) (*scanned, error) {
	sc := &scanned{extra: map[string]string{}}
	section := ""   // the current heading's text, lower case
	level := 0      // its level
	fence := ""     // the open code fence, if any
	seenH1 := false // the first H1 is the heading that may state the id
	statusLine := 0 // the ## Status section's first line, once read
	inv := invariants{seen: map[string]bool{}}
	invariantTable := false
	var tableHeader []string
	comment := false // inside an HTML comment: not shown, so it states nothing
	for i, raw := range lines {
		n := first + i + 1
		l := raw
		if fence == "" {
			if l, comment = stripComments(raw, comment); l != raw && strings.TrimSpace(l) == "" {
				continue // all comment
			}
		}
		if m := fenceRE().FindStringSubmatch(l); m != nil {
			inv.flush()
			if fence == "" {
				fence = m[1]
			} else if m[1] == fence {
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		if m := heading(l); m != nil {
			inv.flush()
			level = len(m[1])
			section = strings.ToLower(cleanValue(m[2]))
			tableHeader, invariantTable = nil, false
			if level == 1 && !seenH1 {
				seenH1 = true
				sc.heading(cleanValue(m[2]), n)
			}
			continue
		}
		trimmed := strings.TrimSpace(l)
		switch {
		case section == "metadata":
			inv.flush()
			if m := itemRE().FindStringSubmatch(l); m != nil {
				if kv := keyValueRE().FindStringSubmatch(m[2]); kv != nil {
					key := normKey(kv[1])
					if f := fieldOf(key); f != "" && (f != fieldID || key != "framework" || strings.HasPrefix(cleanValue(kv[2]), "FMWK-")) {
						sc.state(f, kv[2], FormMetadataList, n)
					} else if v := cleanValue(kv[2]); v != "" {
						sc.extra[key] = v
					}
				}
			}
			continue
		case section == "status" && level <= 2:
			inv.flush()
			if statusLine == 0 && trimmed != "" {
				statusLine = n
				v := trimmed
				if m := itemRE().FindStringSubmatch(l); m != nil {
					v = m[2]
				}
				if kv := keyValueRE().FindStringSubmatch(v); kv != nil && strings.Contains(normKey(kv[1]), "status") {
					v = kv[2]
				}
				sc.state(fieldStatus, strings.ToLower(cleanValue(v)), FormStatusSection, n)
			}
			continue
		}
		if m := boldLine(l); m != nil {
			key := normKey(m[1])
			if key == "framework" && !strings.HasPrefix(cleanValue(m[2]), "FMWK-") {
				key = "" // "**Framework:** Package law" names, it does not identify
			}
			if f := fieldOf(key); f != "" && key != "id" && key != "name" {
				inv.flush()
				sc.state(f, m[2], FormBold, n)
				continue
			}
		}
		// The body: invariants.
		if strings.HasPrefix(trimmed, ">") {
			trimmed = strings.TrimSpace(strings.TrimLeft(trimmed, ">"))
			l = trimmed
		}
		switch {
		case trimmed == "":
			inv.flush()
			tableHeader = nil
		case strings.HasPrefix(trimmed, "|"):
			inv.flush()
			if tableSepRE().MatchString(trimmed) {
				continue
			}
			if tableHeader == nil {
				cells := tableCells(trimmed)
				// A table's first row is its header when a separator follows.
				if i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "|") && tableSepRE().MatchString(strings.TrimSpace(lines[i+1])) {
					tableHeader = cells
					invariantTable = strings.Contains(section, "invariant") || slices.ContainsFunc(cells, isInvariantColumn)
					continue
				}
				tableHeader = []string{}
			}
			if invariantTable || mustRE().MatchString(mentionRE().ReplaceAllString(trimmed, "")) {
				inv.add(strings.Join(tableCells(trimmed), " | "))
			}
		default:
			if m := itemRE().FindStringSubmatch(l); m != nil {
				inv.flush()
				inv.start(m[2], true)
			} else {
				inv.cont(trimmed)
			}
		}
	}
	inv.flush()
	sc.invariants = inv.out
	return sc, nil
}

// stripComments drops the HTML comments from a line; open says whether
// one is open at its start, and the result whether one is open at its end.
func stripComments(l string, open bool) (string, bool) {
	var b strings.Builder
	for {
		if open {
			end := strings.Index(l, "-->")
			if end < 0 {
				return b.String(), true
			}
			l, open = l[end+3:], false
			continue
		}
		start := strings.Index(l, "<!--")
		if start < 0 {
			b.WriteString(l)
			return b.String(), false
		}
		b.WriteString(l[:start])
		l, open = l[start+4:], true
	}
}

// heading matches headingRE(), which only a line starting with # (after at
// most three spaces) can.
func heading(l string) []string {
	if !strings.HasPrefix(strings.TrimLeft(l, " "), "#") {
		return nil
	}
	return headingRE().FindStringSubmatch(l)
}

// boldLine matches boldRE(), which only a line holding ** or __ can, with a
// key of at most 40 characters.
func boldLine(l string) []string {
	if !strings.Contains(l, "**") && !strings.Contains(l, "__") {
		return nil
	}
	if m := boldRE().FindStringSubmatch(l); m != nil && len(m[1]) <= 40 {
		return m
	}
	return nil
}

// heading reads the first H1: "FMWK-123: Title" states the id and title,
// any other text the title.
func (sc *scanned) heading(text string, line int) {
	if m := headingIDRE().FindStringSubmatch(text); m != nil {
		sc.state(fieldID, m[1], FormHeading, line)
		sc.state(fieldTitle, m[2], FormHeading, line)
		return
	}
	if strings.HasPrefix(strings.ToUpper(text), "FMWK-") {
		sc.problem(line, "the heading %q begins like a framework id but is not one (want %s)", text, idRE())
		return
	}
	sc.state(fieldTitle, text, FormHeading, line)
}

func isInvariantColumn(c string) bool {
	c = strings.ToLower(c)
	return strings.Contains(c, "invariant") || c == "rule" || c == "requirement" || c == "constraint"
}

func tableCells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(row, "|")
	row = strings.TrimSuffix(row, "|")
	var cells []string
	for _, c := range strings.Split(row, "|") {
		cells = append(cells, cleanStatement(c))
	}
	return cells
}

// invariants gathers MUST statements from list items and paragraphs, which
// may run over several lines.
type invariants struct {
	buf    []string
	isItem bool
	out    []string
	seen   map[string]bool
}

func (v *invariants) start(text string, item bool) {
	v.buf, v.isItem = []string{text}, item
}

func (v *invariants) cont(text string) {
	if v.buf == nil {
		v.start(text, false)
		return
	}
	v.buf = append(v.buf, text)
}

func (v *invariants) flush() {
	if v.buf == nil {
		return
	}
	text := strings.Join(v.buf, " ")
	v.buf = nil
	if v.isItem {
		t := cleanStatement(text)
		if m := bracketRE().FindStringSubmatch(t); m != nil {
			v.add(normalize(m[1] + " " + m[2]))
			return
		}
		if mustRE().MatchString(mentionRE().ReplaceAllString(t, "")) {
			v.add(t)
		}
		return
	}
	for _, s := range sentences(text) {
		if mustRE().MatchString(mentionRE().ReplaceAllString(s, "")) {
			v.add(cleanStatement(s))
		}
	}
}

func (v *invariants) add(s string) {
	if s == "" || v.seen[s] {
		return
	}
	v.seen[s] = true
	v.out = append(v.out, s)
}

// cleanStatement is a statement's text: emphasis markers dropped, spaces
// collapsed.
func cleanStatement(s string) string { return normalize(emphasis.Replace(s)) }

var emphasis = strings.NewReplacer("**", "", "__", "")

// sentences splits a paragraph after ".", "!" or "?" followed by a space
// and a capital letter (or an opening mark).
func sentences(p string) []string {
	var out []string
	rs := []rune(p)
	start := 0
	for i := 0; i < len(rs); i++ {
		if rs[i] != '.' && rs[i] != '!' && rs[i] != '?' {
			continue
		}
		j := i + 1
		for j < len(rs) && rs[j] == ' ' {
			j++
		}
		if j == i+1 || j >= len(rs) {
			continue
		}
		if c := rs[j]; (c >= 'A' && c <= 'Z') || strings.ContainsRune("*_`[\"", c) {
			out = append(out, strings.TrimSpace(string(rs[start:i+1])))
			start = j
		}
	}
	if rest := strings.TrimSpace(string(rs[start:])); rest != "" {
		out = append(out, rest)
	}
	return out
}

// fileNameID is the id a file name states: "FMWK-123_title.md" or
// "FMWK-123.md". A name that begins with "FMWK-" states an id, which must
// be valid.
func fileNameID(name string) (*statement, error) {
	base := path.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "" || !strings.HasPrefix(base, "FMWK-") {
		return nil, nil
	}
	id := base
	if i := strings.IndexAny(base, "_."); i >= 0 {
		id = base[:i]
	}
	if !idRE().MatchString(id) {
		return nil, &Error{0, fmt.Sprintf("the file name %q begins like a framework id but %q is not one (want %s, then _ or .)", base, id, idRE())}
	}
	return &statement{fieldID, id, FormFileName, 0}, nil
}

// agreedID is the one id the statements name, as stated in the form of
// highest precedence: two different ids are a contradiction.
func agreedID(stated []statement) (*statement, error) {
	var first, best *statement
	for i, s := range stated {
		if s.field != fieldID {
			continue
		}
		if first == nil {
			first, best = &stated[i], &stated[i]
			continue
		}
		if s.value != first.value {
			return nil, &Error{0, fmt.Sprintf("the document names two framework ids: %s in %s and %s in %s; state one", first.value, first.where(), s.value, s.where())}
		}
		if slices.Index(Precedence, s.form) < slices.Index(Precedence, best.form) {
			best = &stated[i]
		}
	}
	return best, nil
}

// parseCPv2 reads a document in CPv2's forms (see the package doc).
func parseCPv2(name string, lines []string) (*Framework, error) {
	sc, err := scan(lines, 0)
	if err != nil {
		return nil, err
	}
	if len(sc.problems) > 0 {
		return nil, sc.problems[0]
	}
	stated := sc.statements
	fn, err := fileNameID(name)
	if err != nil {
		return nil, err
	}
	if fn != nil {
		stated = append(stated, *fn)
	}
	idSt, err := agreedID(stated)
	if err != nil {
		return nil, err
	}
	if idSt == nil {
		return nil, &Error{0, "states no framework id: none in a --- block, a ## Metadata list (- framework_id: FMWK-...), a bold line (**Framework ID:** FMWK-...), the # FMWK-...: Title heading or the file name (FMWK-..._title.md)"}
	}
	f := &Framework{ID: idSt.value, Sources: map[string]string{fieldID: idSt.form}, Extra: sc.extra}
	rank := func(s statement) int { return slices.Index(Precedence, s.form) }
	for _, field := range []string{fieldTitle, fieldVersion, fieldStatus} {
		var chosen *statement
		for i, s := range stated {
			if s.field == field && (chosen == nil || rank(s) < rank(*chosen)) {
				chosen = &stated[i]
			}
		}
		if chosen == nil {
			f.Sources[field] = FormDefault
			continue
		}
		f.Sources[field] = chosen.form
		for _, s := range stated {
			if s.field == field && !strings.EqualFold(s.value, chosen.value) && field != fieldTitle {
				f.Notes = append(f.Notes, fmt.Sprintf("%s %q in %s is not read: %s, which takes precedence, says %q", field, s.value, s.where(), chosen.where(), chosen.value))
			}
		}
		switch field {
		case fieldTitle:
			f.Title = chosen.value
		case fieldVersion:
			v, note, err := readVersion(chosen.value)
			if err != nil {
				return nil, &Error{0, fmt.Sprintf("version %q in %s: %v", chosen.value, chosen.where(), err)}
			}
			if note != "" {
				f.Notes = append(f.Notes, note)
			}
			f.Version = v
		case fieldStatus:
			st := strings.ToLower(chosen.value)
			if !slices.Contains(Statuses, st) {
				return nil, &Error{0, fmt.Sprintf("status %q in %s: want %s", chosen.value, chosen.where(), strings.Join(Statuses, ", "))}
			}
			f.Status = st
		}
	}
	if f.Title == "" {
		f.Title = f.ID
		f.Notes = append(f.Notes, "no title stated: the id is the title")
	}
	if f.Version == "" {
		f.Version = DefaultVersion
		f.Notes = append(f.Notes, "no version stated: "+DefaultVersion)
	}
	if f.Status == "" {
		f.Status = DefaultStatus
		f.Notes = append(f.Notes, "no status stated: "+DefaultStatus)
	}
	f.Invariants = sc.invariants
	if len(f.Invariants) == 0 {
		f.Notes = append(f.Notes, "states no MUST invariants: registered with none")
	}
	return f, nil
}

// readVersion reads a version as CPv2 wrote it: a semantic version, or one
// with a "v" before it or fewer than three parts, completed with zeros.
func readVersion(v string) (string, string, error) {
	if manifest.ValidVersion(v) {
		return v, "", nil
	}
	w := strings.TrimPrefix(strings.TrimPrefix(v, "v"), "V")
	parts := strings.Split(w, ".")
	if len(parts) < 3 {
		for len(parts) < 3 {
			parts = append(parts, "0")
		}
		w = strings.Join(parts, ".")
	}
	if !manifest.ValidVersion(w) {
		return "", "", fmt.Errorf("not a semantic version")
	}
	return w, fmt.Sprintf("version %q read as %s", v, w), nil
}
