// Package legacy verifies JSONL ledgers written by the Python Control Plane
// v2, so that old ledgers can be audited and imported (verify --legacy).
//
// # Lines
//
// The input is split on "\n"; a single "\n" at EOF does not start another
// line, and a missing final newline is fine. Every line is an entry and its
// 0-based line index is its seq, so a blank line counts (and is MALFORMED).
// A "\r" before the "\n" is JSON whitespace and thus harmless.
//
// Each line is parsed as Python's json.loads would (see Parse): duplicate keys
// keep the last value, NaN/Infinity/-Infinity are accepted, integers are
// exact. A line that is not valid UTF-8 (Python's file read would fail), not
// valid JSON, nested deeper than 1000 levels (Python raises RecursionError),
// or not a JSON object is MALFORMED. Integers of any length are accepted,
// even beyond CPython 3.11's 4300-digit conversion limit.
//
// # Hash rule
//
// For an entry (a parsed object) the expected entry_hash is
//
//	hashlib.sha256(json.dumps(e, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
//
// where e is the object as parsed from the line minus its top-level
// "entry_hash" key; see Dumps for the exact text. The line's own spacing and
// key order do not matter. The stored entry_hash is that lowercase hex
// string, or the same string after a "sha256:" prefix (HashPrefix: CPv2's
// agent runtime writes its session evidence ledgers that way; DESIGN.md §5
// makes both forms the same rule, and a ledger may hold both). An entry
// whose stored entry_hash is neither, is missing, or is not a string has a
// HASH_MISMATCH issue (its message wants the form the entry used). An entry with a string holding a lone surrogate (such as
// "\ud800") has a HASH_MISMATCH issue saying its text cannot be UTF-8 encoded:
// Python's encode fails there, so no stored hash can be right.
//
// # Chain rule
//
// An entry's previous_hash must be a string equal to the stored entry_hash
// string of the previous entry as written (whatever that string is, right or
// wrong, prefixed or not), or
// "" for the first entry; otherwise the entry has a CHAIN_BROKEN issue. If
// the previous entry has no string entry_hash, the entry always has a
// CHAIN_BROKEN issue whose message says there is nothing to chain to.
// MALFORMED lines are not entries and the chain skips them: the previous
// entry is the nearest non-MALFORMED line above. So an inserted junk line is
// only MALFORMED, while a line replaced by junk also breaks the chain at the
// next entry.
//
// Every broken entry is reported, in seq order; one entry can have a
// HASH_MISMATCH issue followed by a CHAIN_BROKEN issue.
package legacy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// HashPrefix is the prefix CPv2's agent runtime writes before an entry_hash's
// hex; an entry_hash with it or without it is checked by the same rule.
const HashPrefix = "sha256:"

// Issue codes.
const (
	CodeHashMismatch = "HASH_MISMATCH"
	CodeChainBroken  = "CHAIN_BROKEN"
	CodeMalformed    = "MALFORMED"
)

// Issue is one broken entry.
type Issue struct {
	Seq     int64  `json:"seq"`
	ID      string `json:"id"` // the entry's "id" if it is a string, else ""
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Report is the outcome of Verify.
type Report struct {
	Entries  int64   // number of lines
	Issues   []Issue // in seq order
	LastHash string  // stored entry_hash of the last non-MALFORMED line, "" if none or not a string
	// Prefixed counts the entries whose stored entry_hash carries
	// HashPrefix (right or wrong): the sha256: form.
	Prefixed int64
}

// Verify reads a legacy ledger from r and reports every broken entry; the
// error is only for read failures, with the report covering the lines read.
func Verify(r io.Reader) (Report, error) {
	return Scan(r, nil)
}

// Line is one line of a legacy ledger as Scan reads it, with its verdict.
type Line struct {
	Seq int64  // the 0-based line index
	Raw []byte // the line without its "\n"; valid only until fn returns
	// Entry is the line parsed (Parse), its entry_hash key removed; nil
	// for a MALFORMED line.
	Entry map[string]Value
	// EntryHash is the line's stored entry_hash, when it has one.
	EntryHash    Value
	HasEntryHash bool
	// Issues are this line's issues, in Verify's order; none: the line
	// holds by CPv2's rule.
	Issues []Issue
}

// Scan reads a legacy ledger from r as Verify does and, when fn is not
// nil, calls it with each line and that line's verdict, in order. An error
// from fn stops the scan and is returned with the report so far.
func Scan(r io.Reader, fn func(Line) error) (Report, error) {
	v := verifier{prevSeq: -1}
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		var err error
		var nl bool
		line, nl, err = readLine(br, line[:0])
		if err != nil {
			return v.report(), err
		}
		if !nl && len(line) == 0 {
			return v.report(), nil
		}
		first := len(v.rep.Issues)
		l := v.check(line)
		if fn != nil {
			l.Raw = line
			if len(v.rep.Issues) > first {
				l.Issues = v.rep.Issues[first:len(v.rep.Issues):len(v.rep.Issues)]
			}
			if err := fn(l); err != nil {
				return v.report(), err
			}
		}
		if !nl {
			return v.report(), nil
		}
	}
}

// readLine appends the next line to buf, without its "\n"; nl reports
// whether the "\n" was there (it is not at EOF).
func readLine(br *bufio.Reader, buf []byte) (line []byte, nl bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		buf = append(buf, frag...)
		switch err {
		case nil:
			return buf[:len(buf)-1], true, nil
		case bufio.ErrBufferFull:
		case io.EOF:
			return buf, false, nil
		default:
			return buf, false, err
		}
	}
}

type verifier struct {
	rep      Report
	prevSeq  int64  // seq of the last entry (non-MALFORMED line), -1 if none
	prevHash string // its stored entry_hash
	prevOK   bool   // whether that was a string
	text     []byte // scratch for Dumps
}

func (v *verifier) report() Report {
	r := v.rep
	if v.prevOK {
		r.LastHash = v.prevHash
	}
	return r
}

func (v *verifier) add(seq int64, id, code, format string, args ...any) {
	v.rep.Issues = append(v.rep.Issues, Issue{Seq: seq, ID: id, Code: code, Message: fmt.Sprintf(format, args...)})
}

func (v *verifier) check(line []byte) Line {
	seq := v.rep.Entries
	v.rep.Entries++
	l := Line{Seq: seq}
	if len(bytes.Trim(line, " \t\r")) == 0 {
		v.add(seq, "", CodeMalformed, "empty line")
		return l
	}
	val, err := Parse(line)
	if err != nil {
		v.add(seq, "", CodeMalformed, "invalid JSON: %v", err)
		return l
	}
	obj, ok := val.(map[string]Value)
	if !ok {
		v.add(seq, "", CodeMalformed, "not a JSON object")
		return l
	}
	id, _ := obj["id"].(string)

	stored, hasStored := obj["entry_hash"]
	storedStr, storedOK := stored.(string)
	delete(obj, "entry_hash")
	v.text, err = appendDumps(v.text[:0], obj)
	if err != nil {
		v.add(seq, id, CodeHashMismatch, "entry cannot be hashed: %v", err)
	} else if sum := sha256.Sum256(v.text); !storedOK || strings.TrimPrefix(storedStr, HashPrefix) != hex.EncodeToString(sum[:]) {
		form := ""
		if strings.HasPrefix(storedStr, HashPrefix) {
			form = HashPrefix
		}
		v.add(seq, id, CodeHashMismatch, "entry_hash is %s, want %s%x", describe(stored, hasStored), form, sum)
	}
	if storedOK && strings.HasPrefix(storedStr, HashPrefix) {
		v.rep.Prefixed++
	}

	prev, hasPrev := obj["previous_hash"]
	switch prevStr, ok := prev.(string); {
	case v.prevSeq < 0:
		if !ok || prevStr != "" {
			v.add(seq, id, CodeChainBroken, `previous_hash is %s, want "" for the first entry`, describe(prev, hasPrev))
		}
	case !v.prevOK:
		v.add(seq, id, CodeChainBroken, "previous_hash is %s, but the entry at seq %d has no string entry_hash to chain to", describe(prev, hasPrev), v.prevSeq)
	case !ok || prevStr != v.prevHash:
		v.add(seq, id, CodeChainBroken, "previous_hash is %s, want %s (entry_hash of seq %d)", describe(prev, hasPrev), quote(v.prevHash), v.prevSeq)
	}
	v.prevSeq, v.prevHash, v.prevOK = seq, storedStr, storedOK
	l.Entry, l.EntryHash, l.HasEntryHash = obj, stored, hasStored
	return l
}

// describe renders a field value for a message.
func describe(v Value, present bool) string {
	if !present {
		return "missing"
	}
	if s, ok := v.(string); ok {
		return quote(s)
	}
	text, err := Dumps(v)
	if err != nil {
		return "not a string"
	}
	if len(text) > maxShown {
		return fmt.Sprintf("not a string (%s... %d bytes)", text[:maxShown], len(text))
	}
	return fmt.Sprintf("not a string (%s)", text)
}

// maxShown bounds how many bytes of a value a message quotes.
const maxShown = 100

func quote(s string) string {
	if len(s) > maxShown {
		return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:maxShown]), len(s))
	}
	return strconv.Quote(s)
}
