package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"strconv"
	"time"

	"github.com/control-plane/cp/pkg/jcs"
	"golang.org/x/mod/sumdb/tlog"
)

// Entry is one ledger line (DESIGN.md §5). On disk it is canonical JSON
// (RFC 8785) with every field present; EntryHash is the lowercase hex RFC 6962
// leaf hash, SHA-256(0x00 ‖ canonical JSON of the entry without entry_hash),
// and so also the entry's Merkle leaf at index Seq.
type Entry struct {
	Seq          int64          `json:"seq"`
	ID           string         `json:"id"`
	Timestamp    string         `json:"timestamp"`
	EventType    string         `json:"event_type"`
	SubmissionID string         `json:"submission_id"`
	Decision     string         `json:"decision"`
	Reason       string         `json:"reason"`
	PromptsUsed  []string       `json:"prompts_used"`
	Metadata     map[string]any `json:"metadata"`
	Actor        string         `json:"actor"`
	PreviousHash string         `json:"previous_hash"`
	EntryHash    string         `json:"entry_hash"`

	// canonical is Metadata's canonical form, written as it is (Draft.Canonical).
	canonical jcs.Raw
}

// Draft is what a caller asks to append; the ledger assigns the rest.
type Draft struct {
	EventType    string
	SubmissionID string
	Decision     string
	Reason       string
	PromptsUsed  []string
	Metadata     map[string]any
	// Canonical, when set, is the metadata's canonical form, made by the
	// writer (jcs.Object, jcs.MarshalRaw): the line holds these bytes,
	// and Metadata is not encoded. A jcs.Raw is canonical whatever its
	// maker does (only package jcs makes one), and it must be an object.
	// Metadata then need hold only what the ledger reads of it, with the
	// same values as Canonical: the auth stamp (_auth) and every member
	// the index finds entries by (IndexedKey); the entries Append returns
	// carry that Metadata. When Options.AuthOff is set and Metadata lacks
	// the auth stamp, the metadata is Canonical decoded, stamped and
	// encoded instead (slower, never partial). It is for in-process
	// writers that build the metadata from their own values (cp-route's
	// stream, whose drafts hold the auth stamp and _work_order_id), never
	// for bytes that came from input.
	Canonical jcs.Raw
}

// TimeFormat is the entry timestamp layout: RFC 3339 UTC with microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// newID makes the id of the entry at seq: "LED-" and 16 lowercase hex
// digits that name seq, so that the entry an id names is found by its
// position (IDSeq), with no index entry of its own (an index posting per
// entry cost appends a fifth of their speed). The digits are k-1 (one
// digit: k, from 1 to 10, is how many hex digits seq takes), seq in k
// digits, then 15-k random digits (math/rand/v2's top-level generator:
// ChaCha8, seeded by the runtime from the kernel's randomness at
// start-up). Ids must be unique, not secret: within a ledger the seq makes
// them so; across ledgers two entries can share an id only at the same
// seq, and then with a chance of 2^-(60-4k) (2^-52 below seq 256, 2^-40
// below 1,048,576, 2^-20 at the most). crypto/rand would do too, but its
// first read arms a timer that wakes a second thread, which a one-entry
// append process pays for (about 0.04 ms). A seq of 2^40 or more (never
// reached: the index stops there) gets 16 random digits.
func newID(seq int64) string {
	const digits = "0123456789abcdef"
	var out [20]byte
	copy(out[:], "LED-")
	r := mathrand.Uint64()
	k := 1
	for seq>>(4*k) != 0 {
		k++
	}
	i := 4
	if seq >= 0 && k <= maxIDSeqDigits {
		out[i] = digits[k-1]
		i++
		for j := k - 1; j >= 0; j-- {
			out[i] = digits[(seq>>(4*j))&15]
			i++
		}
	}
	for ; i < len(out); i++ {
		out[i] = digits[r&15]
		r >>= 4
	}
	return string(out[:])
}

// maxIDSeqDigits is the most hex digits of a seq an id names (2^40).
const maxIDSeqDigits = 10

// IDSeq returns the seq the entry id names, as newID writes it, and
// false for an id not of that form (another writer's, CPv2's, or one made
// before ids named their seq). It says where to look, not what is there:
// the entry at that seq may carry another id.
func IDSeq(id string) (int64, bool) {
	if len(id) != 20 || id[:4] != "LED-" {
		return 0, false
	}
	k := int(id[4]-'0') + 1
	if id[4] < '0' || id[4] > '9' || k > maxIDSeqDigits || (k > 1 && id[5] == '0') {
		return 0, false
	}
	var seq int64
	for _, c := range []byte(id[5 : 5+k]) {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		seq = seq<<4 | int64(d)
	}
	for _, c := range []byte(id[5+k:]) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, false
		}
	}
	return seq, true
}

// namesSeq reports whether id names seq (IDSeq): such an entry is found by
// its position, and needs no key of its own in the index.
func namesSeq(id string, seq int64) bool {
	s, ok := IDSeq(id)
	return ok && s == seq
}

// encode fills e.EntryHash and returns the entry's line (canonical JSON and
// "\n") appended to dst, and its leaf hash. Keys are written in RFC 8785
// order by hand: the field set is fixed, and this is the append hot path.
// entry_hash sorts between decision and event_type, so the hashed bytes are
// the line without that one member. On failure dst is returned with its
// original length.
func encode(dst []byte, e *Entry) ([]byte, tlog.Hash, error) {
	start := len(dst)
	dst, at, err := appendLine(dst, e)
	if err != nil {
		return dst[:start], tlog.Hash{}, err
	}
	line := dst[start:]
	leaf := leafHash(line[:at.hash-len(entryHashKey)], line[at.hash+entryHashTail:len(line)-1])
	setEntryHash(line, at, e, leaf)
	return dst, leaf, nil
}

// entryHashKey and entryHashTail frame the entry_hash member in a line:
// the key before the 64 hex digits, the quote and comma after them.
const (
	entryHashKey  = `"entry_hash":"`
	entryHashTail = 64 + len(`",`)
)

// lineAt is where a line's entry_hash and previous_hash values start, from
// the line's first byte.
type lineAt struct{ hash, prev int }

// appendLine appends e's line to dst with 64 zeros in place of the
// entry_hash value (e.EntryHash is not read), and returns where the
// entry_hash and previous_hash values start in it. The leaf hash is over
// the line without the entry_hash member (line[:at.hash-len(entryHashKey)]
// and line[at.hash+entryHashTail:], without the newline).
func appendLine(dst []byte, e *Entry) ([]byte, lineAt, error) {
	start := len(dst)
	var at lineAt
	var err error
	dst = append(dst, `{"actor":`...)
	if dst, err = jcs.AppendString(dst, e.Actor); err != nil {
		return dst, at, fieldErr("actor", err)
	}
	dst = append(dst, `,"decision":`...)
	if dst, err = jcs.AppendString(dst, e.Decision); err != nil {
		return dst, at, fieldErr("decision", err)
	}
	dst = append(dst, ',')
	dst = append(dst, entryHashKey...)
	at.hash = len(dst) - start
	dst = append(dst, "0000000000000000000000000000000000000000000000000000000000000000\","...)
	dst = append(dst, `"event_type":`...)
	if dst, err = jcs.AppendString(dst, e.EventType); err != nil {
		return dst, at, fieldErr("event_type", err)
	}
	dst = append(dst, `,"id":`...)
	if dst, err = jcs.AppendString(dst, e.ID); err != nil {
		return dst, at, fieldErr("id", err)
	}
	dst = append(dst, `,"metadata":`...)
	if e.canonical.IsObject() {
		dst = append(dst, e.canonical.Bytes()...)
	} else if e.Metadata == nil {
		dst = append(dst, "{}"...)
	} else if dst, err = jcs.Append(dst, e.Metadata); err != nil {
		return dst, at, fieldErr("metadata", err)
	}
	dst = append(dst, `,"previous_hash":`...)
	at.prev = len(dst) + 1 - start
	if dst, err = jcs.AppendString(dst, e.PreviousHash); err != nil {
		return dst, at, fieldErr("previous_hash", err)
	}
	dst = append(dst, `,"prompts_used":[`...)
	for i, p := range e.PromptsUsed {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = jcs.AppendString(dst, p); err != nil {
			return dst, at, fieldErr("prompts_used", err)
		}
	}
	dst = append(dst, `],"reason":`...)
	if dst, err = jcs.AppendString(dst, e.Reason); err != nil {
		return dst, at, fieldErr("reason", err)
	}
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, e.Seq, 10)
	dst = append(dst, `,"submission_id":`...)
	if dst, err = jcs.AppendString(dst, e.SubmissionID); err != nil {
		return dst, at, fieldErr("submission_id", err)
	}
	dst = append(dst, `,"timestamp":`...)
	if dst, err = jcs.AppendString(dst, e.Timestamp); err != nil {
		return dst, at, fieldErr("timestamp", err)
	}
	return append(dst, "}\n"...), at, nil
}

// setEntryHash writes leaf, the leaf hash of line (made by appendLine at
// at), into line's entry_hash value and e.EntryHash.
func setEntryHash(line []byte, at lineAt, e *Entry, leaf tlog.Hash) {
	hex.Encode(line[at.hash:at.hash+64], leaf[:])
	e.EntryHash = string(line[at.hash : at.hash+64])
}

// leafHash is the RFC 6962 leaf hash of the concatenation of parts.
func leafHash(parts ...[]byte) tlog.Hash {
	h := sha256.New()
	h.Write([]byte{0})
	for _, p := range parts {
		h.Write(p)
	}
	var out tlog.Hash
	h.Sum(out[:0])
	return out
}

type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldError) Code() string  { return "INVALID_INPUT" }
func (e *fieldError) Unwrap() error { return e.err }

func fieldErr(field string, err error) error { return &fieldError{field, err} }

// ParseLine decodes one ledger line strictly: valid JSON, every field of
// Entry present with its type, and no other field. It does not check
// hashes (Verify does).
func ParseLine(line []byte) (*Entry, error) {
	v, err := jcs.Decode(line)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("entry is not a JSON object")
	}
	return entryFromObject(obj)
}

func entryFromObject(obj map[string]any) (*Entry, error) {
	var e Entry
	str := func(k string, dst *string) error {
		s, ok := obj[k].(string)
		if !ok {
			return fmt.Errorf("field %s: missing or not a string", k)
		}
		*dst = s
		return nil
	}
	for k, dst := range map[string]*string{
		"id": &e.ID, "timestamp": &e.Timestamp, "event_type": &e.EventType, "submission_id": &e.SubmissionID,
		"decision": &e.Decision, "reason": &e.Reason, "actor": &e.Actor, "previous_hash": &e.PreviousHash,
		"entry_hash": &e.EntryHash,
	} {
		if err := str(k, dst); err != nil {
			return nil, err
		}
	}
	n, ok := obj["seq"].(json.Number)
	if !ok {
		return nil, fmt.Errorf("field seq: missing or not a number")
	}
	seq, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || seq < 0 {
		return nil, fmt.Errorf("field seq: not a non-negative integer: %s", n)
	}
	e.Seq = seq
	prompts, ok := obj["prompts_used"].([]any)
	if !ok {
		return nil, fmt.Errorf("field prompts_used: missing or not an array")
	}
	e.PromptsUsed = make([]string, len(prompts))
	for i, p := range prompts {
		if e.PromptsUsed[i], ok = p.(string); !ok {
			return nil, fmt.Errorf("field prompts_used: item %d is not a string", i)
		}
	}
	if e.Metadata, ok = obj["metadata"].(map[string]any); !ok {
		return nil, fmt.Errorf("field metadata: missing or not an object")
	}
	if len(obj) != 12 {
		for k := range obj {
			switch k {
			case "seq", "id", "timestamp", "event_type", "submission_id", "decision", "reason",
				"prompts_used", "metadata", "actor", "previous_hash", "entry_hash":
			default:
				return nil, fmt.Errorf("unknown field %q", k)
			}
		}
	}
	return &e, nil
}

// stamp returns the entry timestamp for t, formatted as TimeFormat without
// going through the layout interpreter (it runs once per appended entry).
func stamp(t time.Time) string {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	var b [27]byte
	put := func(i, v, width int) {
		for j := i + width - 1; j >= i; j-- {
			b[j] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	b[4] = '-'
	put(5, int(mo), 2)
	b[7] = '-'
	put(8, d, 2)
	b[10] = 'T'
	put(11, h, 2)
	b[13] = ':'
	put(14, mi, 2)
	b[16] = ':'
	put(17, sec, 2)
	b[19] = '.'
	put(20, t.Nanosecond()/1000, 6)
	b[26] = 'Z'
	return string(b[:])
}
