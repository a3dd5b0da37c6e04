// Package registry reads and writes the plane's five CSV registries under
// <root>/registries/ (DESIGN.md §4). Only cp-install and cp-pkg write them,
// and only through Update and UpdateMany; everything else reads.
//
// # Files
//
// A registry is RFC 4180 CSV exactly as encoding/csv writes it: UTF-8
// without a byte order mark, "\n" line endings, a field quoted only when it
// must be. The first line is the header, the table's columns in order; each
// further line is one row with as many fields. Update writes rows sorted by
// the primary key (byte-wise), so equal tables are equal files. The layouts,
// primary key first:
//
//	frameworks_registry.csv  framework_id,title,version,status,path,sha256,registered_at,registered_by
//	specs_registry.csv       spec_id,framework_id,title,version,status,path,sha256,registered_at,registered_by
//	prompts_registry.csv     prompt_pack_id,package_id,path,sha256,version,status,registered_at
//	file_ownership.csv       path,package_id,sha256,size,classification,installed_at
//	packages_state.csv       package_id,version,manifest_hash,archive_sha256,status,signature,installed_at,actor,work_order_id
//
// Field values:
//
//   - every field is valid UTF-8 without NUL, CR or LF;
//   - primary keys are unique and non-empty;
//   - framework_id, spec_id, prompt_pack_id, version, classification,
//     registered_by and actor are non-empty and hold no white space;
//     work_order_id is empty or likewise; title is free text;
//   - package_id matches ^PKG-[A-Z0-9-]+$ (DESIGN.md §6);
//   - path is a clean slash path relative to the plane root: never absolute
//     (no leading "/", no drive letter), no backslash, no "." or ".."
//     element, no empty element, no trailing slash;
//   - sha256, manifest_hash and archive_sha256 are "sha256:" followed by 64
//     lower-case hex digits;
//   - registered_at and installed_at are RFC 3339 UTC times exactly as
//     time.RFC3339Nano formats them ("2026-01-02T03:04:05Z");
//   - size is a byte count in decimal, without sign or leading zeros;
//   - status is active, deprecated or retired in the frameworks, specs and
//     prompts registries, installed or failed in packages_state.csv;
//   - signature is "signed:<key name>" (a note key name: no white space, no
//     '+') or "waived" (CONTROL_PLANE_ALLOW_UNSIGNED).
//
// Read accepts a file only if it is exactly the encoding of its own rows and
// every rule holds; anything else (a missing, extra or reordered column, a
// wrong field count, a stray quote, a CR, a blank line, a missing final
// newline, an empty file) is a REGISTRY_INVALID *Error naming the file and
// line. Update refuses, the same way, rows that would break a rule.
//
// Compatibility: a column is never renamed, removed, reordered or given a
// new meaning. Adding one changes the header, which older readers refuse (fail
// closed), so a new column ships together with every reader that knows it.
//
// # Writing and atomicity
//
// Writers serialize on an advisory lock, registries/.lock (flock(2),
// exclusive). Update re-reads the table under the lock, lets the caller
// compute the new rows, writes them to a temporary file in registries/,
// fsyncs it, renames it over the table and fsyncs the directory. A crash at
// any instant leaves each file wholly old or wholly new; a temporary file it
// leaves behind is ignored by Read and removed by the next writer. Readers
// take no lock: a rename replaces a file in one step (but a reader of several
// tables can see an UpdateMany half done).
//
// UpdateMany writes several tables under the one lock, but several renames
// are not one atomic step: a crash between them leaves the tables renamed so
// far new and the rest old, each file whole. A caller that needs the tables
// to change together (cp-install, for file_ownership.csv and
// packages_state.csv) records its intent in its own journal and finishes or
// undoes it on recovery.
package registry

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/regfile"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Table describes one registry file.
type Table struct {
	File    string   // file name inside registries/
	Columns []string // the header, in order
	Key     string   // the primary-key column
}

// The five registries (DESIGN.md §4).
var (
	Frameworks = Table{File: "frameworks_registry.csv", Key: "framework_id",
		Columns: []string{"framework_id", "title", "version", "status", "path", "sha256", "registered_at", "registered_by"}}
	Specs = Table{File: "specs_registry.csv", Key: "spec_id",
		Columns: []string{"spec_id", "framework_id", "title", "version", "status", "path", "sha256", "registered_at", "registered_by"}}
	Prompts = Table{File: "prompts_registry.csv", Key: "prompt_pack_id",
		Columns: []string{"prompt_pack_id", "package_id", "path", "sha256", "version", "status", "registered_at"}}
	Ownership = Table{File: "file_ownership.csv", Key: "path",
		Columns: []string{"path", "package_id", "sha256", "size", "classification", "installed_at"}}
	Packages = Table{File: "packages_state.csv", Key: "package_id",
		Columns: []string{"package_id", "version", "manifest_hash", "archive_sha256", "status", "signature", "installed_at", "actor", "work_order_id"}}
)

// All lists the five registries in the order Create writes them.
var All = []Table{Frameworks, Specs, Prompts, Ownership, Packages}

// Dir is the registries directory relative to the plane root.
const Dir = "registries"

// Row is one registry row, keyed by column name. A valid row holds exactly
// its table's columns.
type Row map[string]string

// Status values.
const (
	StatusActive     = "active"     // frameworks, specs, prompts
	StatusDeprecated = "deprecated" // frameworks, specs, prompts
	StatusRetired    = "retired"    // frameworks, specs, prompts
	StatusDraft      = "draft"      // frameworks, specs (CPv2's): registered, not yet law a package can answer to
	StatusInstalled  = "installed"  // packages
	StatusFailed     = "failed"     // packages
)

// SignatureWaived is the signature column of a package installed under
// CONTROL_PLANE_ALLOW_UNSIGNED=1; a signed package has "signed:<key name>".
const SignatureWaived = "waived"

// name is how errors name t's file: relative to the plane root.
func (t Table) name() string { return Dir + "/" + t.File }

// Read reads and checks the table t of the plane at root and returns its
// rows in file order. A file that breaks the format in the package doc, or
// repeats a primary key, is a REGISTRY_INVALID *Error; a missing file is an
// error satisfying errors.Is(err, fs.ErrNotExist).
func Read(root string, t Table) ([]Row, error) {
	data, err := regfile.ReadFile(filepath.Join(root, Dir, t.File))
	if err != nil {
		return nil, err
	}
	return parse(t, data)
}

// Create writes all five registries of the plane at root with their headers
// and no rows, creating registries/ if needed. It refuses (REGISTRY_EXISTS)
// if any of them exists, and then writes nothing. Each file is written
// atomically; a crash part way leaves some registries absent, which the next
// Create refuses: bootstrap's own recovery owns that case.
func Create(root string) error {
	dir := filepath.Join(root, Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	l, err := lock(context.Background(), dir)
	if err != nil {
		return err
	}
	defer l.unlock()
	removeTemps(dir)
	for _, t := range All {
		if _, err := os.Lstat(filepath.Join(dir, t.File)); err == nil {
			return &Error{File: t.name(), Msg: "registry already exists", code: CodeExists}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	var ws []write
	for _, t := range All {
		ws = append(ws, write{t: t, data: format(t, nil)})
	}
	if err := commit(dir, ws); err != nil {
		return err
	}
	return atomicfile.SyncDir(root)
}

var bom = []byte("\uFEFF")

// parse checks data as the contents of t's file and returns its rows.
func parse(t Table, data []byte) ([]Row, error) {
	file := t.name()
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:off], []byte("\n")) }
	switch {
	case len(data) == 0:
		return nil, invalidf(file, 1, "empty file: want header %q", strings.Join(t.Columns, ","))
	case bytes.HasPrefix(data, bom):
		return nil, invalidf(file, 1, "file starts with a byte order mark")
	}
	if i := bytes.IndexByte(data, '\r'); i >= 0 {
		return nil, invalidf(file, lineAt(int64(i)), "carriage return: lines end with \\n alone")
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1 // counted below, with a better message
	r.ReuseRecord = true   // the fields are copied into each Row
	var canon bytes.Buffer // each record re-encoded, to compare with its bytes
	cw := csv.NewWriter(&canon)
	var (
		rows   []Row
		header bool
		keys   = map[string]int{} // primary key → line
		prev   int64              // end of the last record read
	)
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvErr(file, err)
		}
		line, _ := r.FieldPos(0)
		off := r.InputOffset()
		canon.Reset()
		cw.Write(rec)
		cw.Flush() // writing to a bytes.Buffer cannot fail
		if got, want := data[prev:off], canon.Bytes(); !bytes.Equal(got, want) {
			switch {
			case got[0] == '\n':
				return nil, invalidf(file, lineAt(prev), "blank line")
			case got[len(got)-1] != '\n':
				return nil, invalidf(file, line, "last line does not end with a newline")
			}
			return nil, invalidf(file, line, "not in canonical CSV form: want %q", want)
		}
		prev = off
		if !header {
			if err := checkHeader(t, rec); err != "" {
				return nil, invalidf(file, line, "%s; want header %q", err, strings.Join(t.Columns, ","))
			}
			header = true
			continue
		}
		if len(rec) != len(t.Columns) {
			return nil, invalidf(file, line, "%d fields, want %d", len(rec), len(t.Columns))
		}
		row, err := toRow(t, rec, file, func(i int) int { l, _ := r.FieldPos(i); return l })
		if err != nil {
			return nil, err
		}
		k := row[t.Key]
		if first, dup := keys[k]; dup {
			return nil, invalidf(file, line, "duplicate %s %q (first on line %d)", t.Key, k, first)
		}
		keys[k] = line
		rows = append(rows, row)
	}
	if prev != int64(len(data)) {
		return nil, invalidf(file, lineAt(prev), "blank line")
	}
	if !header {
		return nil, invalidf(file, 1, "no header: want %q", strings.Join(t.Columns, ","))
	}
	return rows, nil
}

// checkHeader says how rec differs from t's columns, or returns "".
func checkHeader(t Table, rec []string) string {
	if slices.Equal(rec, t.Columns) {
		return ""
	}
	for _, c := range t.Columns {
		if !slices.Contains(rec, c) {
			return fmt.Sprintf("missing column %q", c)
		}
	}
	for _, c := range rec {
		if !slices.Contains(t.Columns, c) {
			return fmt.Sprintf("unknown column %q", c)
		}
	}
	if len(rec) != len(t.Columns) {
		return "repeated column"
	}
	return "columns out of order"
}

// validate checks rows as the new contents of t: every row is valid and
// the primary keys are unique.
func validate(t Table, rows []Row) error {
	keys := make(map[string]int, len(rows))
	for i, row := range rows {
		if p := checkShape(t, row); p != "" {
			return invalidf(t.name(), 0, "refusing to write rows[%d]: %s", i, p)
		}
		k := row[t.Key]
		if j, dup := keys[k]; dup {
			return invalidf(t.name(), 0, "refusing to write rows[%d]: duplicate %s %q (also rows[%d])", i, t.Key, k, j)
		}
		keys[k] = i
	}
	return nil
}

// checkShape checks that row holds exactly t's columns and that every value
// follows its rule, and says what is wrong or returns "".
func checkShape(t Table, row Row) string {
	for _, c := range t.Columns {
		if _, ok := row[c]; !ok {
			return fmt.Sprintf("missing column %q", c)
		}
	}
	if len(row) != len(t.Columns) {
		var extra []string
		for c := range row {
			if !slices.Contains(t.Columns, c) {
				extra = append(extra, c)
			}
		}
		slices.Sort(extra)
		return fmt.Sprintf("unknown column %q", extra[0])
	}
	if col, p := checkRow(t, row); p != "" {
		return fmt.Sprintf("%s %q: %s: %s", t.Key, row[t.Key], col, p)
	}
	return ""
}

// sorted returns rows sorted by t's primary key; rows is not modified.
func sorted(t Table, rows []Row) []Row {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b Row) int { return strings.Compare(a[t.Key], b[t.Key]) })
	return rows
}

// format encodes the header and rows, in the order given, as t's file.
func format(t Table, rows []Row) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(t.Columns)
	rec := make([]string, len(t.Columns))
	for _, row := range rows {
		for i, c := range t.Columns {
			rec[i] = row[c]
		}
		w.Write(rec)
	}
	w.Flush() // writing to a bytes.Buffer cannot fail
	return b.Bytes()
}

// Lookup returns the row of the table t of the plane at root whose primary
// key is key, or nil when there is none: what a reader that needs one row
// (config's owner of one file, at every call) pays instead of Read's check
// of every row. The file is read as Read reads it (a regular file, never
// through a link), its header must be t's, and the row found is checked as
// Read checks each (its canonical CSV form, its fields' rules); a key
// that appears twice is REGISTRY_INVALID, as in Read. The other rows are
// not judged here: the gates (cp-gate) and Read do that.
func Lookup(root string, t Table, key string) (Row, error) {
	rows, err := Select(root, t, func(k string) bool { return k == key })
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return rows[0], nil
}

// Select is Lookup for every row whose primary key keep accepts: the rows
// a reader needs (cp-route's policy and the modules' capabilities.json)
// found and checked as Read checks each, in file order, and the others
// only read past, which costs a process a fraction of Read's check of
// every row. A key keep accepts that appears twice is REGISTRY_INVALID.
// It returns an empty, non-nil slice when no row is selected.
func Select(root string, t Table, keep func(key string) bool) ([]Row, error) {
	path := filepath.Join(root, Dir, t.File)
	f, err := regfile.Open(path)
	if err != nil {
		return nil, err
	}
	rows, lines, err := selectStream(f, t, keep, 4096)
	f.Close()
	if lines {
		return rows, err
	}
	// Not a file of lines (or not one selectStream could read): read
	// whole, as it is now.
	data, err := regfile.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return selectData(t, data, keep)
}

// selectData is Select over the whole file's data.
func selectData(t Table, data []byte, keep func(key string) bool) ([]Row, error) {
	if len(data) == 0 || bytes.HasPrefix(data, bom) || bytes.IndexByte(data, '\r') >= 0 {
		return parseSome(t, data, keep) // Read's own messages for a broken file
	}
	if bytes.IndexByte(data, '"') < 0 {
		return selectLines(t, data, keep)
	}
	return selectCSV(t, data, keep)
}

// selectStream is selectLines over f read size bytes at a time into one
// buffer (grown only for a longer line), not into a buffer of the whole
// file: a 24 KB ownership registry read whole cost a gateway process 6
// page faults of fresh memory at every call, a 4 KiB buffer one. lines
// is false, and nothing else is to be believed, when f is not a file
// selectLines reads (empty, a byte-order mark, a carriage return or a
// quote in it), or a read failed: the caller reads it whole
// (FuzzSelectStream holds the two to each other).
func selectStream(f io.Reader, t Table, keep func(key string) bool, size int) (rows []Row, lines bool, err error) {
	ls := newLineSelect(t, keep)
	buf := make([]byte, size)
	n, total := 0, 0 // buf[:n]: the bytes of lines not taken yet
	var head [3]byte // the file's first bytes
	for {
		m, rerr := f.Read(buf[n:])
		copy(head[min(total, len(head)):], buf[n:n+m])
		total, n = total+m, n+m
		if bytes.ContainsAny(buf[n-m:n], "\r\"") || total >= len(head) && head == [3]byte(bom) {
			return nil, false, nil
		}
		if rerr != nil && rerr != io.EOF {
			return nil, false, nil
		}
		taken := 0
		for err == nil {
			i := bytes.IndexByte(buf[taken:n], '\n')
			if i < 0 {
				break
			}
			err = ls.next(buf[taken:taken+i+1], i)
			taken += i + 1
		}
		if rerr == io.EOF {
			if total == 0 {
				return nil, false, nil
			}
			if err == nil && taken < n {
				err = ls.next(buf[taken:n], n-taken) // the last line, without its newline
			}
			if err != nil {
				return nil, true, err
			}
			rows, err := ls.s.result(ls.header)
			return rows, true, err
		}
		if err != nil {
			// Refused: the rest is still read for a byte that would
			// have the file read another way.
			taken = n
		}
		n = copy(buf, buf[taken:n])
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...) // a line longer than the buffer
		}
	}
}

// selectCSV is Select over data read as CSV record by record: the rows
// keep accepts checked, the others read past.
func selectCSV(t Table, data []byte, keep func(key string) bool) ([]Row, error) {
	s := newSelected(t)
	ki := slices.Index(t.Columns, t.Key)
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header := false
	var prev int64 // where the record read next starts
	for {
		start := prev
		rec, err := r.Read()
		prev = r.InputOffset()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvErr(s.file, err)
		}
		line, _ := r.FieldPos(0)
		if !header {
			if err := s.header(rec, line); err != nil {
				return nil, err
			}
			header = true
			continue
		}
		if ki >= len(rec) || !keep(rec[ki]) {
			continue
		}
		if err := s.add(rec[ki], func() []string { return rec }, data[start:prev], line,
			func(i int) int { l, _ := r.FieldPos(i); return l }); err != nil {
			return nil, err
		}
	}
	return s.result(header)
}

// selectLines is selectCSV for data without a quote (nor a carriage
// return, nor a byte-order mark): every record is then one line and its
// fields are what lies between its commas, which is how encoding/csv
// reads such a file (an empty line skipped, a last line without its
// newline a record), and no such file is malformed CSV. Only the lines
// whose key keep accepts are split and checked (FuzzSelectLines holds it
// to selectCSV): a gateway reads one row of the ownership registry at
// every call.
func selectLines(t Table, data []byte, keep func(key string) bool) ([]Row, error) {
	ls := newLineSelect(t, keep)
	for off := 0; off < len(data); {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return ls.finish(data[off:], len(data)-off)
		}
		if err := ls.next(data[off:off+i+1], i); err != nil {
			return nil, err
		}
		off += i + 1
	}
	return ls.s.result(ls.header)
}

// lineSelect is selectLines' reading of one line after another.
type lineSelect struct {
	s       *selected
	ki      int
	keep    func(key string) bool
	header  bool
	line    int
	empties int // empty lines since the last record
}

func newLineSelect(t Table, keep func(key string) bool) *lineSelect {
	return &lineSelect{s: newSelected(t), ki: slices.Index(t.Columns, t.Key), keep: keep}
}

// finish takes the last line (raw, without a newline) and gives the result.
func (ls *lineSelect) finish(raw []byte, n int) ([]Row, error) {
	if err := ls.next(raw, n); err != nil {
		return nil, err
	}
	return ls.s.result(ls.header)
}

// next takes the next line: raw its bytes (its newline included, if it
// has one), n the length of its text.
func (ls *lineSelect) next(raw []byte, n int) error {
	ls.line++
	text := raw[:n]
	if len(text) == 0 {
		ls.empties++ // an empty line, as encoding/csv skips it
		return nil
	}
	if ls.empties > 0 {
		// The record's bytes as selectCSV counts them start where the
		// last one ended: the empty lines between are its own.
		raw = append(bytes.Repeat([]byte{'\n'}, ls.empties), raw...)
		ls.empties = 0
	}
	if !ls.header {
		ls.header = true
		return ls.s.header(strings.Split(string(text), ","), ls.line)
	}
	key, ok := fieldAt(text, ls.ki)
	if !ok || !ls.keep(key) {
		return nil
	}
	line := ls.line
	return ls.s.add(key, func() []string { return strings.Split(string(text), ",") }, raw, line,
		func(int) int { return line })
}

// selected is what Select's readers share: the header's check, and each
// selected row's (its key once, its field count, its canonical form, its
// values), in file order.
type selected struct {
	t     Table
	file  string
	rows  []Row
	lines map[string]int // selected key → its line
}

func newSelected(t Table) *selected { return &selected{t: t, file: t.name(), rows: []Row{}} }

// header checks the header record, on line.
func (s *selected) header(rec []string, line int) error {
	if p := checkHeader(s.t, rec); p != "" {
		return invalidf(s.file, line, "%s; want header %q", p, strings.Join(s.t.Columns, ","))
	}
	return nil
}

// add checks and keeps the row of key on line: fields gives its fields
// (split only once the key is known not to repeat), raw its bytes as
// read (newline included), fieldLine the line of its field i.
func (s *selected) add(key string, fields func() []string, raw []byte, line int, fieldLine func(int) int) error {
	if first, dup := s.lines[key]; dup {
		return invalidf(s.file, line, "duplicate %s %q (first on line %d)", s.t.Key, key, first)
	}
	rec := fields()
	if len(rec) != len(s.t.Columns) {
		return invalidf(s.file, line, "%d fields, want %d", len(rec), len(s.t.Columns))
	}
	var canon bytes.Buffer
	cw := csv.NewWriter(&canon)
	cw.Write(rec)
	cw.Flush()
	if !bytes.Equal(raw, canon.Bytes()) {
		return invalidf(s.file, line, "not in canonical CSV form: want %q", canon.Bytes())
	}
	row, err := toRow(s.t, rec, s.file, fieldLine)
	if err != nil {
		return err
	}
	if s.lines == nil {
		s.lines = map[string]int{}
	}
	s.lines[key] = line
	s.rows = append(s.rows, row)
	return nil
}

// result is the rows selected, or REGISTRY_INVALID for a file without a
// header.
func (s *selected) result(header bool) ([]Row, error) {
	if !header {
		return nil, invalidf(s.file, 1, "no header: want %q", strings.Join(s.t.Columns, ","))
	}
	return s.rows, nil
}

// fieldAt returns the field i of a line without quotes (false: the line
// has fewer fields).
func fieldAt(line []byte, i int) (string, bool) {
	for ; i > 0; i-- {
		j := bytes.IndexByte(line, ',')
		if j < 0 {
			return "", false
		}
		line = line[j+1:]
	}
	if j := bytes.IndexByte(line, ','); j >= 0 {
		line = line[:j]
	}
	return string(line), true
}

// csvErr codes a CSV reader's error: a parse error is REGISTRY_INVALID
// at its line.
func csvErr(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &Error{File: file, Line: pe.Line, Msg: pe.Err.Error(), code: CodeInvalid, err: err}
	}
	return err
}

// toRow makes the record just read (of t's width) a Row, checked by its
// fields' rules (checkRow); lineOf gives the line a field starts on.
func toRow(t Table, rec []string, file string, lineOf func(field int) int) (Row, error) {
	row := make(Row, len(t.Columns))
	for i, c := range t.Columns {
		row[c] = rec[i]
	}
	if col, p := checkRow(t, row); p != "" {
		return nil, invalidf(file, lineOf(slices.Index(t.Columns, col)), "%s: %s", col, p)
	}
	return row, nil
}

// parseSome is Select through Read's whole check: for a file whose shape
// is already wrong, so that both refuse it with the same message.
func parseSome(t Table, data []byte, keep func(string) bool) ([]Row, error) {
	rows, err := parse(t, data)
	if err != nil {
		return nil, err
	}
	found := []Row{}
	for _, r := range rows {
		if keep(r[t.Key]) {
			found = append(found, r)
		}
	}
	return found, nil
}
