// Package ledgerimport re-chains a CPv2 ledger into a new ledger of ours
// (cp-ledger import --legacy, DESIGN.md §16): one LEGACY_ENTRY per legacy
// line, keeping the line, its legacy hashes and CPv2's verdict on it, so
// broken history comes over and stays visible. It depends on the ledger
// alone, so cp-ledger links it without internal/cpv2's installer.
package ledgerimport

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/legacy"
)

// EventLegacyEntry is the event type of an imported legacy line: one per
// line of the CPv2 ledger, at the same seq.
const EventLegacyEntry = "LEGACY_ENTRY"

// EventLegacyImported records an import in HO3's own ledger.
const EventLegacyImported = "LEGACY_IMPORTED"

// Decisions of a LEGACY_ENTRY: the verdict of CPv2's rule on its line.
const (
	Verified  = "VERIFIED"  // the line holds: its hash and its link
	Broken    = "BROKEN"    // HASH_MISMATCH and/or CHAIN_BROKEN
	Malformed = "MALFORMED" // not a JSON object: kept as bytes
)

// MaxLineKept bounds the legacy line kept in an entry's metadata; a longer
// line is kept as its hash alone (metadata.legacy.text_omitted says so).
const MaxLineKept = 1 << 20

// importBatch is how many entries one append carries.
const importBatch = 1024

// LedgerImport is what ImportLedger did.
type LedgerImport struct {
	Source       string         `json:"source"`        // the legacy ledger as the request named it
	SourceSHA256 string         `json:"source_sha256"` // the legacy file's bytes
	Ledger       string         `json:"ledger"`        // the new ledger (set by the caller)
	Entries      int64          `json:"entries"`       // lines read = entries written
	Verified     int64          `json:"verified"`
	Broken       int64          `json:"broken"`
	Malformed    int64          `json:"malformed"`
	Prefixed     int64          `json:"prefixed"` // entries whose entry_hash is sha256: + hex
	Valid        bool           `json:"valid"`    // the legacy ledger held whole
	Issues       []legacy.Issue `json:"issues"`
	RootHash     string         `json:"root_hash"` // the new ledger's
	Head         string         `json:"head"`      // its last entry_hash
}

// ImportLedger re-chains the CPv2 ledger read from src into dst, which
// must be empty (LEDGER_NOT_EMPTY): one LEGACY_ENTRY per legacy line, at
// the line's index as its seq, each recording (metadata.legacy) the line's
// sha256, its stored entry_hash, event type, timestamp and id, the verdict
// of CPv2's rule (legacy.Scan) with its issues, and the line itself (as
// text when it is UTF-8, else base64; omitted beyond MaxLineKept). No line
// is dropped: a broken or unparsable one is kept with its verdict, so the
// history and its breaks stay visible. source names the legacy ledger in
// the entries.
//
// A legacy ledger with no line makes a new ledger with none, which gets a
// checkpoint of its empty tree with origin (signed by the store's key, as
// every append's is), so that it verifies as the plane's ledgers must.
//
// Entries are appended in batches; a failure part way leaves the entries
// appended so far (the ledger is then not empty, and a second import into
// it is refused: Compare says how far it got).
func ImportLedger(ctx context.Context, src io.Reader, source, origin string, dst ledger.Store) (*LedgerImport, error) {
	st, err := dst.State(ctx)
	if err != nil {
		return nil, err
	}
	if st.Size != 0 {
		return nil, &ImportError{code: "LEDGER_NOT_EMPTY", Msg: fmt.Sprintf("the target ledger already holds %d entries: a legacy ledger is imported only into a new, empty one", st.Size)}
	}
	im := &LedgerImport{Source: source, Issues: []legacy.Issue{}}
	whole := sha256.New()
	var batch []ledger.Draft
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		es, err := dst.Append(ctx, batch)
		if err != nil {
			return err
		}
		if n := len(es); n > 0 {
			im.Head = es[n-1].EntryHash
		}
		batch = batch[:0]
		return nil
	}
	rep, err := legacy.Scan(io.TeeReader(src, whole), func(l legacy.Line) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := Draft(source, l)
		switch d.Decision {
		case Verified:
			im.Verified++
		case Broken:
			im.Broken++
		default:
			im.Malformed++
		}
		batch = append(batch, d)
		if len(batch) == importBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return im, err
	}
	im.SourceSHA256 = "sha256:" + hex.EncodeToString(whole.Sum(nil))
	im.Entries, im.Prefixed, im.Valid = rep.Entries, rep.Prefixed, len(rep.Issues) == 0
	im.Issues = append(im.Issues, rep.Issues...)
	if rep.Entries == 0 {
		if _, _, err := dst.Checkpoint(ctx, origin); err != nil {
			return im, err
		}
	}
	if st, err = dst.State(ctx); err != nil {
		return im, err
	}
	if st.Size != im.Entries {
		return im, fmt.Errorf("imported %d legacy lines, but the ledger holds %d entries", im.Entries, st.Size)
	}
	im.RootHash = hex.EncodeToString(st.Root[:])
	return im, nil
}

// Draft is the LEGACY_ENTRY of legacy line l of the ledger named source.
func Draft(source string, l legacy.Line) ledger.Draft {
	sum := sha256.Sum256(l.Raw)
	m := map[string]any{"source": source, "line": l.Seq, "line_sha256": "sha256:" + hex.EncodeToString(sum[:])}
	d := ledger.Draft{EventType: EventLegacyEntry, Decision: Verified, Reason: "holds by CPv2's rule"}
	if l.Entry != nil {
		if l.HasEntryHash {
			if s, ok := l.EntryHash.(string); ok && utf8.ValidString(s) {
				m["entry_hash"] = s
			}
		}
		for _, k := range []string{"event_type", "timestamp", "id", "entry_id", "previous_hash"} {
			// A string with a lone surrogate ("\ud800") is not
			// UTF-8: the line's text keeps it.
			if s, ok := l.Entry[k].(string); ok && utf8.ValidString(s) {
				m[k] = s
			}
		}
		if id, ok := m["id"].(string); ok {
			d.SubmissionID = id
		} else if id, ok := m["entry_id"].(string); ok {
			d.SubmissionID = id
		}
	}
	var issues []any
	var why []string
	for _, is := range l.Issues {
		issues = append(issues, map[string]any{"code": is.Code, "message": is.Message})
		why = append(why, is.Code+": "+is.Message)
		if is.Code == legacy.CodeMalformed {
			d.Decision = Malformed
		} else if d.Decision != Malformed {
			d.Decision = Broken
		}
	}
	if len(issues) > 0 {
		m["issues"] = issues
		d.Reason = strings.Join(why, "; ")
	}
	m["verdict"] = strings.ToLower(d.Decision)
	switch {
	case len(l.Raw) > MaxLineKept:
		m["text_omitted"] = fmt.Sprintf("the line is %d bytes, over %d: kept as its sha256", len(l.Raw), MaxLineKept)
	case utf8.Valid(l.Raw):
		m["text"] = string(l.Raw)
	default:
		m["text_base64"] = base64.StdEncoding.EncodeToString(l.Raw)
	}
	d.Metadata = map[string]any{"legacy": m}
	return d
}

// ImportError is an import or stage refused: Code is its error code,
// with a hint and details for the person at the terminal.
type ImportError struct {
	code    string
	Msg     string
	hint    string
	details map[string]any
}

func refusef(code, format string, args ...any) *ImportError {
	return &ImportError{code: code, Msg: fmt.Sprintf(format, args...)}
}

// Refusef is an ImportError with code and a message (internal/cpv2's
// import and stage refuse with it too).
func Refusef(code, format string, args ...any) *ImportError { return refusef(code, format, args...) }

// WithHint sets what to do about e and returns e.
func (e *ImportError) WithHint(h string) *ImportError {
	e.hint = h
	return e
}

// WithDetails sets e's details and returns e.
func (e *ImportError) WithDetails(d map[string]any) *ImportError {
	e.details = d
	return e
}

func (e *ImportError) Error() string { return e.Msg }

// Code returns the error's code.
func (e *ImportError) Code() string { return e.code }

// ErrorHint returns what to do about it, or "".
func (e *ImportError) ErrorHint() string { return e.hint }

// ErrorDetails returns the error's details, or nil.
func (e *ImportError) ErrorDetails() map[string]any { return e.details }

// nameRE compiles on first use: at package init its 100-fold repetition
// cost every binary linking this package ~0.3 ms a process.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`) })

// ImportedName is the file name, in a tier's ledger directory, of the
// ledger a legacy ledger named name is imported into:
// "imported-<name>.jsonl". name is letters, digits, '_' and '-'.
func ImportedName(name string) (string, error) {
	if !nameRE().MatchString(name) {
		return "", &ImportError{code: "INVALID_INPUT", Msg: fmt.Sprintf("imported ledger name %q: want letters, digits, _ and - (at most 100, starting with a letter or digit)", name)}
	}
	return ImportedPrefix + name + ".jsonl", nil
}

// ImportedPrefix begins the file name of every imported legacy ledger.
const ImportedPrefix = "imported-"

// NameOf is the default name of the imported copy of the legacy ledger
// at path rel (slash-separated): its path without ".jsonl", each run of
// other characters than letters, digits, '_' and '-' made one '-'.
func NameOf(rel string) string {
	rel = strings.TrimSuffix(rel, ".jsonl")
	var b strings.Builder
	dash := false
	for _, r := range rel {
		ok := r < utf8.RuneSelf && (r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		if ok {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 100 {
		sum := sha256.Sum256([]byte(rel))
		s = s[:87] + "-" + hex.EncodeToString(sum[:6])
	}
	if s == "" || s[0] == '_' {
		s = "x" + s
	}
	return s
}

// Compare tells how much of the legacy ledger src the imported ledger dst
// already holds: held is the number of its leading entries that are the
// LEGACY_ENTRY of the same line (by the line's sha256), lines the legacy
// ledger's line count; complete when dst holds exactly every line.
func Compare(ctx context.Context, dst ledger.Store, src io.Reader) (held, lines int64, complete bool, err error) {
	var want []string
	_, err = legacy.Scan(src, func(l legacy.Line) error {
		sum := sha256.Sum256(l.Raw)
		want = append(want, "sha256:"+hex.EncodeToString(sum[:]))
		return nil
	})
	if err != nil {
		return 0, 0, false, err
	}
	lines = int64(len(want))
	var size int64
	err = dst.Lines(ctx, 0, -1, func(seq int64, line []byte) bool {
		size = seq + 1
		if seq >= lines || seq != held {
			return true
		}
		e, perr := ledger.ParseLine(line)
		if perr != nil || e.EventType != EventLegacyEntry {
			return true
		}
		if lm, ok := e.Metadata["legacy"].(map[string]any); ok && lm["line_sha256"] == want[seq] {
			held++
		}
		return true
	})
	if err != nil {
		return 0, 0, false, err
	}
	return held, lines, held == lines && size == lines, nil
}

// RecordDraft is the LEGACY_IMPORTED entry, for HO3's ledger, of import im.
func RecordDraft(im *LedgerImport) ledger.Draft {
	return ledger.Draft{EventType: EventLegacyImported, SubmissionID: im.Ledger, Decision: "IMPORTED",
		Reason: fmt.Sprintf("a CPv2 ledger re-chained: %d lines, %d verified, %d broken, %d malformed", im.Entries, im.Verified, im.Broken, im.Malformed),
		Metadata: map[string]any{"source": im.Source, "source_sha256": im.SourceSHA256, "ledger": im.Ledger, "entries": im.Entries,
			"verified": im.Verified, "broken": im.Broken, "malformed": im.Malformed, "valid": im.Valid, "root_hash": im.RootHash}}
}
