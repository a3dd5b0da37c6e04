package workorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/schemas"
)

// HeaderSchema is the embedded schema of a turn header.
const HeaderSchema = "turn_header.schema.json"

// Header is a turn header (DESIGN.md §13): what one agent turn declares.
type Header struct {
	TurnNumber     int64    `json:"turn_number"`
	WorkOrderID    string   `json:"work_order_id"`
	DeclaredInputs []Input  `json:"declared_inputs"`
	PromptsUsed    []string `json:"prompts_used,omitempty"`
	Outputs        []Output `json:"outputs,omitempty"`
}

// Input is one declared input, of exactly one of three forms: a file
// ({path, sha256}), a ledger entry ({ledger, seq, entry_hash}, ledger its
// checkpoint origin), or a registered artifact ({artifact, version}).
type Input struct {
	Path      string `json:"path,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	Ledger    string `json:"ledger,omitempty"`
	Seq       *int64 `json:"seq,omitempty"`
	EntryHash string `json:"entry_hash,omitempty"`
	Artifact  string `json:"artifact,omitempty"`
	Version   string `json:"version,omitempty"`
}

// Output is one declared output: a file ({path, sha256}) or a text
// ({text_sha256}).
type Output struct {
	Path       string `json:"path,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	TextSHA256 string `json:"text_sha256,omitempty"`
}

var headerSchema = sync.OnceValues(func() (*schema.Schema, error) {
	return schema.NewCompiler(schemas.FS, schemas.BaseURL).Compile(HeaderSchema)
})

// ParseHeader reads a turn header strictly: valid JSON without duplicate
// keys, valid against turn_header.schema.json, no unknown field
// (WO_INVALID otherwise).
func ParseHeader(b []byte) (*Header, error) {
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, refuse(CodeInvalid, nil, "turn header: not valid JSON: %v", err)
	}
	s, err := headerSchema()
	if err != nil {
		return nil, fmt.Errorf("workorder: compiling %s: %w", HeaderSchema, err)
	}
	if ps := s.Validate(v); len(ps) > 0 {
		at := ps[0].Path
		if at == "" {
			at = "/"
		}
		return nil, refuse(CodeInvalid, map[string]any{"path": ps[0].Path}, "turn header %s: %s", at, ps[0].Message)
	}
	return DecodeHeader(b)
}

// DecodeHeader decodes the JSON of a turn header that was already held
// to turn_header.schema.json, strictly: no unknown field, no second value
// (WO_INVALID otherwise). cp-wo turn, whose request is already decoded,
// uses HeaderOf; any caller with bytes not yet validated, ParseHeader.
func DecodeHeader(b []byte) (*Header, error) {
	var h Header
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.DisallowUnknownFields()
	if err := d.Decode(&h); err != nil {
		return nil, refuse(CodeInvalid, nil, "turn header: %v", err)
	}
	if d.More() {
		return nil, refuse(CodeInvalid, nil, "turn header: more than one JSON value")
	}
	return &h, nil
}

// HeaderOf builds a turn header from request members already held to
// turn_header.schema.json's fields (cp-wo turn's request schema holds
// them to it), valued as the request path decodes JSON (json.Number for
// numbers), without a JSON round trip: what DecodeHeader of their JSON
// gives, as strictly (a member that is no header field, a value of
// another type, a turn number that is not an integer: WO_INVALID).
func HeaderOf(m map[string]any) (*Header, error) {
	bad := func(format string, args ...any) (*Header, error) {
		return nil, refuse(CodeInvalid, nil, "turn header: %s", fmt.Sprintf(format, args...))
	}
	h := &Header{}
	for k, v := range m {
		var ok bool
		switch k {
		case "turn_number":
			h.TurnNumber, ok = intOf(v)
		case "work_order_id":
			h.WorkOrderID, ok = v.(string)
		case "declared_inputs":
			var xs []any
			if xs, ok = v.([]any); ok {
				h.DeclaredInputs = make([]Input, len(xs))
				for i, x := range xs {
					if ok = inputOf(x, &h.DeclaredInputs[i]); !ok {
						return bad("declared_inputs[%d] is not an input ({path, sha256}, {ledger, seq, entry_hash} or {artifact, version})", i)
					}
				}
			}
		case "prompts_used":
			var xs []any
			if xs, ok = v.([]any); ok {
				h.PromptsUsed = make([]string, len(xs))
				for i, x := range xs {
					if h.PromptsUsed[i], ok = x.(string); !ok {
						break
					}
				}
			}
		case "outputs":
			var xs []any
			if xs, ok = v.([]any); ok {
				h.Outputs = make([]Output, len(xs))
				for i, x := range xs {
					if ok = outputOf(x, &h.Outputs[i]); !ok {
						return bad("outputs[%d] is not an output ({path, sha256} or {text_sha256})", i)
					}
				}
			}
		default:
			return bad("unknown field %q", k)
		}
		if !ok {
			return bad("%s: a value of the wrong type", k)
		}
	}
	return h, nil
}

// intOf reads an integer as the request path decodes it.
func intOf(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 64)
		return i, err == nil
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}

func inputOf(x any, in *Input) bool {
	m, ok := x.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range m {
		var s string
		if k != "seq" {
			if s, ok = v.(string); !ok {
				return false
			}
		}
		switch k {
		case "path":
			in.Path = s
		case "sha256":
			in.SHA256 = s
		case "ledger":
			in.Ledger = s
		case "seq":
			n, ok := intOf(v)
			if !ok {
				return false
			}
			in.Seq = &n
		case "entry_hash":
			in.EntryHash = s
		case "artifact":
			in.Artifact = s
		case "version":
			in.Version = s
		default:
			return false
		}
	}
	return true
}

func outputOf(x any, o *Output) bool {
	m, ok := x.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return false
		}
		switch k {
		case "path":
			o.Path = s
		case "sha256":
			o.SHA256 = s
		case "text_sha256":
			o.TextSHA256 = s
		default:
			return false
		}
	}
	return true
}

// value returns the header as plain JSON values, as json.Marshal of it
// and a decode would (empty optional members left out).
func (h *Header) value() map[string]any {
	m := map[string]any{"turn_number": json.Number(strconv.FormatInt(h.TurnNumber, 10)), "work_order_id": h.WorkOrderID,
		"declared_inputs": inputValues(h.DeclaredInputs)}
	if h.DeclaredInputs == nil {
		m["declared_inputs"] = nil
	}
	if len(h.PromptsUsed) > 0 {
		ps := make([]any, len(h.PromptsUsed))
		for i, p := range h.PromptsUsed {
			ps[i] = p
		}
		m["prompts_used"] = ps
	}
	if len(h.Outputs) > 0 {
		m["outputs"] = outputValues(h.Outputs)
	}
	return m
}

// inputValues and outputValues are the metadata TURN records of a
// header's inputs and outputs: each as its JSON (empty fields left out).
func inputValues(ins []Input) []any {
	out := make([]any, len(ins))
	for i, in := range ins {
		m := map[string]any{}
		for _, f := range [...]struct{ k, v string }{{"path", in.Path}, {"sha256", in.SHA256}, {"ledger", in.Ledger},
			{"entry_hash", in.EntryHash}, {"artifact", in.Artifact}, {"version", in.Version}} {
			if f.v != "" {
				m[f.k] = f.v
			}
		}
		if in.Seq != nil {
			m["seq"] = json.Number(strconv.FormatInt(*in.Seq, 10))
		}
		out[i] = m
	}
	return out
}

func outputValues(os []Output) []any {
	out := make([]any, len(os))
	for i, o := range os {
		m := map[string]any{}
		for _, f := range [...]struct{ k, v string }{{"path", o.Path}, {"sha256", o.SHA256}, {"text_sha256", o.TextSHA256}} {
			if f.v != "" {
				m[f.k] = f.v
			}
		}
		out[i] = m
	}
	return out
}

// Hash returns "sha256:" + the SHA-256 of the header's canonical JSON:
// the hash TURN and TURN_REFUSED record. The canonical form is made from
// the header's values directly; a header they do not encode (a string
// that is not UTF-8) is hashed as it always was, through encoding/json
// (which replaces such bytes), so that one header has one hash.
func (h *Header) Hash() (string, error) {
	if c, err := jcs.Marshal(h.value()); err == nil {
		return sha(c), nil
	}
	return h.hashJSON()
}

// hashJSON is Hash through encoding/json.
func (h *Header) hashJSON() (string, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	c, err := jcs.Canonicalize(b)
	if err != nil {
		return "", err
	}
	return sha(c), nil
}

// TurnResult is what Turn recorded.
type TurnResult struct {
	ID            string       `json:"wo_id"`
	SessionID     string       `json:"session_id"`
	TurnNumber    int64        `json:"turn_number"`
	TurnsUsed     int64        `json:"turns_used"`
	TurnsBudget   int64        `json:"turns_budget"`
	HeaderHash    string       `json:"header_sha256"`
	InputsChecked int          `json:"inputs_checked"`
	Seq           int64        `json:"seq"`
	Entry         ledger.Entry `json:"-"`
}

// testHookAfterEarlyRead, when set by a test, runs after the early read of
// the work order's file and before its state is read: where a file
// rewritten in between makes the early verdict another file's.
var testHookAfterEarlyRead func()

// Turn records turn header h in session sid's ledger as TURN. Under the
// plane's work-order lock (so that two turns with the same number, two
// sessions spending the last turn of a budget, or a turn and a complete
// are never judged on the same state): the work order must be started and
// pass Approved; the session must be one its WO_STARTED entries opened,
// its ledger still starting with the GENESIS WO_STARTED recorded
// (SESSION_MISMATCH); then, refused and recorded in the session ledger as
// TURN_REFUSED (code, reason, header hash): a turn_number that is not the
// session's previous + 1 (TURN_OUT_OF_ORDER), a work order whose
// budget.turns its sessions have spent (TURN_BUDGET_EXCEEDED), a declared
// path or output outside scope.paths (SCOPE_VIOLATION), a declared input
// that does not match the disk, the ledger or the registries
// (DECLARED_INPUT_MISMATCH; see checkInputs).
func Turn(ctx context.Context, root, sid string, h *Header, opts Options) (*TurnResult, error) {
	if !plane.ValidSessionID(sid) {
		return nil, refuse(CodeSessionMismatch, map[string]any{"session_id": sid}, "%q is not a session id (SES-YYYYMMDD-<8 hex>)", sid)
	}
	id := h.WorkOrderID
	if err := CheckID(id); err != nil {
		return nil, err
	}
	hh, err := h.Hash()
	if err != nil {
		return nil, err
	}
	unlock, err := lock(ctx, root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// The declared inputs are checked on another goroutine while the
	// turn reads the work order's state, checks its approval and anchors
	// the step's ledgers (the inputs' check only reads: the disk, the
	// ledgers, the registries); its verdict is taken in its place below,
	// after the approval, the turn's order and budget, under the same
	// lock. It starts as soon as the lock is held, against the scope of
	// the work order's file as it is now (earlyWorkOrder), since hashing
	// 10 files of 64 KiB outlasted everything the turn did beside it; the
	// verdict counts only if that file is the one the state then accepts
	// (its payload hash is the recorded one, fh below), else the inputs
	// are checked again against the accepted file's scope.
	verdict := make(chan error, 1)
	early := ""
	if w0, ph, ok := earlyWorkOrder(root, id); ok {
		early = ph
		go func() { verdict <- checkInputs(ctx, root, sid, w0, h) }()
	}
	started := early != ""
	if testHookAfterEarlyRead != nil {
		testHookAfterEarlyRead()
	}
	var inputsErr error
	waited := false
	checked := func() error {
		if !waited {
			inputsErr, waited = <-verdict, true
		}
		return inputsErr
	}
	defer func() {
		if started {
			checked()
		}
	}()
	// The step's ledgers (HO3's, HO2's, HO1's own and the session's) are
	// opened once: the work order's state is read, the anchors before and
	// after the turn are taken and the turn is appended through them.
	ch, err := plane.OpenChain(root, opts.Actor, id, sid)
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	w, fh, st, _, err := openIn(ctx, ch, root, id, opts, true)
	if err != nil {
		return nil, err
	}
	if st.State != StateStarted {
		return nil, stateRefusal(st, "turn", StateStarted)
	}
	var ses *Session
	for i := range st.Sessions {
		if st.Sessions[i].ID == sid {
			ses = &st.Sessions[i]
		}
	}
	if ses == nil {
		return nil, refuse(CodeSessionMismatch, map[string]any{"session_id": sid, "wo_id": id},
			"session %s was not started under work order %s", sid, id)
	}
	// w is the file whose hash is the one recorded at creation (openIn),
	// which the approval must then name too: a work order whose approval
	// does not hold refuses the turn before the verdict is looked at.
	if early != fh {
		if started {
			checked() // against another file's scope: not this turn's verdict
		}
		waited, started = false, true
		go func() { verdict <- checkInputs(ctx, root, sid, w, h) }()
	}
	a, err := approvedWith(root, id, w, fh, st, opts.now())
	if err != nil {
		return nil, err
	}
	if a.WorkOrder != w {
		return nil, fmt.Errorf("workorder: the approval names another work order than the one whose inputs are checked") // never: approvedWith returns w
	}
	var others int64
	for _, s := range st.Sessions {
		if s.ID == sid {
			continue
		}
		n, _, err := sessionTurns(ctx, root, s.ID)
		if err != nil {
			return nil, err
		}
		others += n
	}
	// The session (and HO1's own ledger, and HO2's) is held to its
	// anchors before the turn: a ledger cut below one stops here, and
	// what was appended to it since is anchored.
	if _, err := ch.Anchor(ctx); err != nil {
		return nil, err
	}
	l := ch.Session()
	if l == nil { // Anchor refuses a missing session ledger first
		return nil, refuse(CodeSessionMismatch, map[string]any{"session_id": sid, "wo_id": id}, "session %s has no ledger", sid)
	}
	genesis, err := firstEntry(ctx, l)
	if err != nil {
		return nil, err
	}
	if genesis == nil || genesis.EventType != "GENESIS" || genesis.EntryHash != ses.GenesisHash {
		return nil, refuse(CodeSessionMismatch, map[string]any{"session_id": sid, "wo_id": id, "genesis_hash": ses.GenesisHash},
			"session %s's ledger does not start with the GENESIS WO_STARTED (HO2 seq %d) recorded", sid, ses.Seq)
	}
	// Turn numbers run 1, 2, ... in a session (each the previous + 1), so
	// the last one is also the session's count.
	// The search for the last turn starts where the anchor pass just
	// read the session's size (the turns since, if any, are found too).
	sst, read := ch.SessionRead()
	if !read {
		if sst, err = l.State(ctx); err != nil {
			return nil, err
		}
	}
	last, err := lastTurnBelow(ctx, l, sst.Size)
	if err != nil {
		return nil, err
	}
	n := last
	stamp := func(m map[string]any) map[string]any {
		m["_tier"], m["_session_id"], m["_work_order_id"] = "HO1", sid, id
		m["turn_number"], m["header_sha256"] = h.TurnNumber, hh
		return m
	}
	refused := func(e *Error) error {
		m := stamp(map[string]any{"code": e.code})
		if _, rerr := l.Append(ctx, []ledger.Draft{{EventType: EventTurnRefused, SubmissionID: id, Decision: "REFUSED",
			Reason: e.msg, Metadata: m}}); rerr != nil {
			return errors.Join(e, fmt.Errorf("recording the refusal: %w", rerr))
		}
		return e
	}
	if h.TurnNumber != last+1 {
		return nil, refused(refuse(CodeTurnOrder, map[string]any{"session_id": sid, "turn_number": h.TurnNumber, "expected": last + 1},
			"session %s: turn %d is not the next turn (%d)", sid, h.TurnNumber, last+1))
	}
	if used := others + n; used >= w.Budget.Turns {
		return nil, refused(refuse(CodeTurnBudget, map[string]any{"wo_id": id, "turns": used, "budget": w.Budget.Turns},
			"work order %s has spent its budget of %d turns (%d recorded)", id, w.Budget.Turns, used))
	}
	if err := checked(); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, refused(e)
		}
		return nil, err
	}
	es, err := l.Append(ctx, []ledger.Draft{{EventType: EventTurn, SubmissionID: id, Decision: "RECORDED",
		Reason: fmt.Sprintf("turn %d: %d inputs checked", h.TurnNumber, len(h.DeclaredInputs)), PromptsUsed: h.PromptsUsed,
		Metadata: stamp(turnMetadata(h))}})
	if err != nil {
		return nil, err
	}
	e := es[0]
	// After it, what the turn changed: the session, then HO2.
	if _, err := ch.AnchorSteps(ctx); err != nil {
		return nil, afterStep(err, id, e)
	}
	return &TurnResult{ID: id, SessionID: sid, TurnNumber: h.TurnNumber, TurnsUsed: others + n + 1, TurnsBudget: w.Budget.Turns,
		HeaderHash: hh, InputsChecked: len(h.DeclaredInputs), Seq: e.Seq, Entry: e}, nil
}

// turnMetadata is what TURN records of h's inputs and outputs: each as
// its JSON, made directly when the header encodes as canonical JSON
// (Hash), else through encoding/json as before.
func turnMetadata(h *Header) map[string]any {
	if _, err := jcs.Marshal(h.value()); err == nil {
		return map[string]any{"declared_inputs": inputValues(h.DeclaredInputs), "outputs": outputValues(h.Outputs)}
	}
	inputs := make([]any, len(h.DeclaredInputs))
	for i, in := range h.DeclaredInputs {
		inputs[i] = in
	}
	outputs := make([]any, len(h.Outputs))
	for i, o := range h.Outputs {
		outputs[i] = o
	}
	return map[string]any{"declared_inputs": jsonValue(inputs), "outputs": jsonValue(outputs)}
}

// jsonValue turns v into plain JSON values (maps, slices, json.Number),
// as a ledger entry's metadata holds them.
func jsonValue(v any) any {
	b, _ := json.Marshal(v)
	out, _ := jcs.Decode(b)
	return out
}

// metaInt reads an integer metadata value (json.Number, or a Go number).
func metaInt(v any) int64 {
	switch n := v.(type) {
	case json.Number:
		i, _ := strconv.ParseInt(n.String(), 10, 64)
		return i
	case int64:
		return n
	case int:
		return int64(n)
	case float64:
		return int64(n)
	}
	return 0
}

// checkPath refuses a declared path that is not a clean slash path
// relative to the plane root, or that scope.paths does not cover.
func checkPath(m *Matcher, id string, i int, kind, p string) error {
	bad := strings.HasPrefix(p, "/") || strings.Contains(p, `\`) || strings.ContainsRune(p, 0)
	for _, s := range strings.Split(p, "/") {
		bad = bad || s == "" || s == "." || s == ".."
	}
	if bad {
		return refuse(CodeScope, map[string]any{"index": i, "path": p}, "%s %d: %q is not a clean path relative to the plane root", kind, i, p)
	}
	if !m.Covers(p) {
		return refuse(CodeScope, map[string]any{"index": i, "path": p, "wo_id": id},
			"%s %d: %s is outside work order %s's scope.paths", kind, i, p, id)
	}
	return nil
}

// checkInputs checks every declared input of h, at record time, and every
// declared file output: its path inside scope.paths (SCOPE_VIOLATION),
// and the file there as a {path, sha256} input is checked, but refused as
// DECLARED_OUTPUT_MISMATCH (a turn declares what it wrote: a file that is
// not there, or not with those bytes, is not its output). The inputs:
//
//   - {path, sha256}: the path inside scope.paths (SCOPE_VIOLATION), a
//     regular file reached without a symbolic link anywhere on its path
//     (through an os.Root at the plane root, so never outside it; a link,
//     a FIFO, a device, a missing file: DECLARED_INPUT_MISMATCH) whose
//     bytes, read once, hash to sha256;
//   - {ledger, seq, entry_hash}: ledger is the checkpoint origin of one of
//     the plane's three tier ledgers, or of a session's ledger
//     (<plane>/ho1/sessions/<SES>, each session its own; the legacy
//     <plane>/ho1/session names the turn's own); the entry at seq exists
//     and its entry_hash is the one declared (the chain itself is G6's to
//     verify);
//   - {artifact, version}: the id is registered (frameworks, specs,
//     prompt packs) or installed (packages) at that version, not retired
//     or failed; a registry that cannot be read refuses (fail closed).
func checkInputs(ctx context.Context, root, sid string, w *WorkOrder, h *Header) error {
	m := w.Scope.Matcher()
	c := inputChecker{ctx: ctx, root: root, sid: sid}
	defer c.close()
	for i, in := range h.DeclaredInputs {
		var err error
		switch {
		case in.Path != "":
			if err = checkPath(m, w.ID, i, "declared input", in.Path); err == nil {
				err = c.file(in.Path, in.SHA256, func(d map[string]any, format string, args ...any) *Error {
					return mismatch(i, d, format, args...)
				})
			}
		case in.Ledger != "":
			err = c.entry(i, in)
		case in.Artifact != "":
			err = c.artifact(i, in)
		default:
			err = refuse(CodeInvalid, map[string]any{"index": i}, "declared input %d has no path, ledger or artifact", i)
		}
		if err != nil {
			return err
		}
	}
	for i, o := range h.Outputs {
		if o.Path == "" {
			continue
		}
		err := checkPath(m, w.ID, i, "output", o.Path)
		if err == nil {
			err = c.file(o.Path, o.SHA256, func(d map[string]any, format string, args ...any) *Error {
				d["index"] = i
				return refuse(CodeOutputMismatch, d, "declared output %d: %s", i, fmt.Sprintf(format, args...))
			})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

type inputChecker struct {
	ctx       context.Context
	root, sid string
	dir       *os.File // the plane root, for openBeneath
	portable  bool     // no openBeneath here: the portable path only
	r         *os.Root
	buf       []byte
	origins   map[string]string // checkpoint origin → ho3, ho2, ho1 or session:<SES>
	sesPrefix string            // <plane_name>/ho1/sessions/
	stores    map[string]ledger.Store
	rows      map[string][]registry.Row // by table file
}

func (c *inputChecker) close() {
	if c.dir != nil {
		c.dir.Close()
	}
	if c.r != nil {
		c.r.Close()
	}
	for _, s := range c.stores {
		s.Close()
	}
}

func mismatch(i int, details map[string]any, format string, args ...any) *Error {
	details["index"] = i
	return refuse(CodeInputMismatch, details, "declared input %d: %s", i, fmt.Sprintf(format, args...))
}

// file checks that the plane-relative path p (a clean path inside scope)
// is a regular file, reached without a link, whose bytes hash to want;
// bad makes the refusal from its details and message.
func (c *inputChecker) file(p, want string, bad func(d map[string]any, format string, args ...any) *Error) error {
	d := map[string]any{"path": p, "declared": want}
	// One openat2 where the kernel has it: what it opens was reached
	// without a link and below the root, so nothing needs checking twice.
	// Anything it does not open as a regular file (a link, a missing
	// file, a FIFO, ...) is judged again by the portable path below, which
	// names what it finds.
	if !c.portable {
		if c.dir == nil {
			dir, err := os.Open(c.root)
			if err != nil {
				return err
			}
			c.dir = dir
		}
		f, ok, err := openBeneath(c.dir, p)
		switch {
		case !ok:
			c.portable = true
		case err == nil:
			if regfile.Check(f) == nil {
				defer f.Close()
				return c.hash(f, p, want, bad, d)
			}
			f.Close()
		}
	}
	if c.r == nil {
		r, err := os.OpenRoot(c.root)
		if err != nil {
			return err
		}
		c.r = r
	}
	fi, err := c.noLinks(bad, d, p)
	if err != nil {
		return err
	}
	f, err := c.r.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return bad(d, "%s cannot be opened: %v", p, err)
	}
	defer f.Close()
	if err := regfile.Check(f); err != nil {
		return bad(d, "%s is not a regular file", p)
	}
	// What was opened is what was checked: the same file, reached by a
	// path that still holds no link (a directory swapped for a link in
	// between is caught here).
	ofi, err := f.Stat()
	if err != nil {
		return err
	}
	again, err := c.noLinks(bad, d, p)
	if err != nil {
		return err
	}
	if !os.SameFile(fi, ofi) || !os.SameFile(again, ofi) {
		return bad(d, "%s changed while it was opened", p)
	}
	return c.hash(f, p, want, bad, d)
}

// hash reads f (the file at p) to its end and refuses it unless its
// SHA-256 is want.
func (c *inputChecker) hash(f *os.File, p, want string, bad func(d map[string]any, format string, args ...any) *Error, d map[string]any) error {
	if c.buf == nil {
		// 32 KiB, io.Copy's size: each page of the buffer the first read
		// fills is a page fault (10-15 us here), and a read costs about
		// 1 us, so a larger buffer costs a short process more in faults
		// than it saves in reads (ten 64 KiB inputs: 16 faults with
		// 128 KiB, 8 with this, for 10 more reads).
		c.buf = make([]byte, 32<<10)
	}
	hs := sha256.New()
	for {
		n, err := f.Read(c.buf)
		hs.Write(c.buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	got := "sha256:" + hex.EncodeToString(hs.Sum(nil))
	if got != want {
		d["actual"] = got
		return bad(d, "%s hashes to %s, not %s as declared", p, got, want)
	}
	return nil
}

// noLinks checks every component of the plane-relative path p with
// Lstat: no symbolic link, directories on the way, a regular file at the
// end, which it returns.
func (c *inputChecker) noLinks(bad func(d map[string]any, format string, args ...any) *Error, d map[string]any, p string) (fs.FileInfo, error) {
	segs := strings.Split(p, "/")
	var fi fs.FileInfo
	for k := 1; k <= len(segs); k++ {
		name := strings.Join(segs[:k], "/")
		var err error
		fi, err = c.r.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, bad(d, "%s does not exist", p)
		}
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, bad(d, "%s is a symbolic link: a declared input is read where it is, never through a link", name)
		}
		if k < len(segs) && !fi.IsDir() {
			return nil, bad(d, "%s is not a directory", name)
		}
		if k == len(segs) && !fi.Mode().IsRegular() {
			return nil, bad(d, "%s is not a regular file (%s)", p, fi.Mode().Type())
		}
	}
	return fi, nil
}

// ledgerFor returns the ledger whose checkpoint origin is origin: one of
// the plane's three tier ledgers, or an HO1 session's
// (<plane_name>/ho1/sessions/<SES>: this session's or another's, when its
// ledger exists), or nil. The origin every session's checkpoints shared
// before each had its own, <plane_name>/ho1/session, still names this
// session's ledger, as it did.
func (c *inputChecker) ledgerFor(origin string) (ledger.Store, error) {
	if c.origins == nil {
		c.origins, c.stores = map[string]string{}, map[string]ledger.Store{}
		for _, lay := range plane.Layout {
			dir := filepath.Join(c.root, filepath.FromSlash(lay.Dir))
			t, err := plane.ReadTier(dir)
			if err != nil {
				return nil, err
			}
			c.origins[plane.Origin(t, plane.LedgerPath(dir, t))] = lay.PlaneID
			if lay.PlaneID == "ho1" {
				c.sesPrefix = plane.SessionOrigin(t, c.sid)
				c.sesPrefix = c.sesPrefix[:len(c.sesPrefix)-len(c.sid)]
				legacy := strings.TrimSuffix(c.sesPrefix, "/sessions/") + "/session"
				c.origins[legacy] = "session:" + c.sid
			}
		}
	}
	which, ok := c.origins[origin]
	if !ok {
		id, isSes := strings.CutPrefix(origin, c.sesPrefix)
		if !isSes || !plane.ValidSessionID(id) {
			return nil, nil
		}
		if _, err := os.Lstat(plane.SessionLedgerPath(c.root, id)); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		which = "session:" + id
	}
	if s := c.stores[which]; s != nil {
		return s, nil
	}
	var s ledger.Store
	var err error
	if id, ok := strings.CutPrefix(which, "session:"); ok {
		s, _, err = plane.OpenSessionLedger(c.root, id, plane.ForReading, plane.Actor{})
	} else {
		dir, _ := plane.Dir(c.root, which)
		s, _, err = plane.OpenLedger(dir, plane.ForReading, plane.Actor{})
	}
	if err != nil {
		return nil, err
	}
	c.stores[which] = s
	return s, nil
}

// entry checks a {ledger, seq, entry_hash} input.
func (c *inputChecker) entry(i int, in Input) error {
	d := map[string]any{"ledger": in.Ledger, "declared": in.EntryHash}
	if in.Seq == nil {
		return refuse(CodeInvalid, map[string]any{"index": i}, "declared input %d: a ledger input needs seq", i)
	}
	d["seq"] = *in.Seq
	s, err := c.ledgerFor(in.Ledger)
	if err != nil {
		return err
	}
	if s == nil {
		return mismatch(i, d, "%q is the checkpoint origin of no ledger of this plane (its tiers' ledgers, its sessions')", in.Ledger)
	}
	var e *ledger.Entry
	var perr error
	err = s.Lines(c.ctx, *in.Seq, *in.Seq+1, func(_ int64, line []byte) bool {
		e, perr = ledger.ParseLine(line)
		return false
	})
	if err != nil {
		return err
	}
	switch {
	case perr != nil:
		return mismatch(i, d, "%s seq %d does not parse: %v", in.Ledger, *in.Seq, perr)
	case e == nil:
		return mismatch(i, d, "%s has no entry at seq %d", in.Ledger, *in.Seq)
	case e.Seq != *in.Seq || e.EntryHash != in.EntryHash:
		d["actual"] = e.EntryHash
		return mismatch(i, d, "%s seq %d has entry_hash %s, not %s as declared", in.Ledger, *in.Seq, e.EntryHash, in.EntryHash)
	}
	return nil
}

// artifact checks an {artifact, version} input against the registries.
func (c *inputChecker) artifact(i int, in Input) error {
	d := map[string]any{"artifact": in.Artifact, "declared": in.Version}
	var t registry.Table
	bad := ""
	switch {
	case strings.HasPrefix(in.Artifact, "FMWK-"):
		t, bad = registry.Frameworks, registry.StatusRetired
	case strings.HasPrefix(in.Artifact, "SPEC-"):
		t, bad = registry.Specs, registry.StatusRetired
	case strings.HasPrefix(in.Artifact, "PRM-"):
		t, bad = registry.Prompts, registry.StatusRetired
	case strings.HasPrefix(in.Artifact, "PKG-"):
		t, bad = registry.Packages, registry.StatusFailed
	default:
		return mismatch(i, d, "%s is not a framework, spec, package or prompt pack id", in.Artifact)
	}
	if c.rows == nil {
		c.rows = map[string][]registry.Row{}
	}
	rows, ok := c.rows[t.File]
	if !ok {
		var err error
		if rows, err = registry.Read(c.root, t); err != nil {
			return mismatch(i, d, "registry %s/%s cannot be read (%v): the artifact cannot be checked, so the turn is refused", registry.Dir, t.File, err)
		}
		c.rows[t.File] = rows
	}
	for _, r := range rows {
		if r[t.Key] != in.Artifact {
			continue
		}
		if r["version"] != in.Version {
			d["actual"] = r["version"]
			return mismatch(i, d, "%s is at version %s in %s, not %s as declared", in.Artifact, r["version"], t.File, in.Version)
		}
		if r["status"] == bad {
			return mismatch(i, d, "%s %s is %s in %s", in.Artifact, in.Version, bad, t.File)
		}
		return nil
	}
	return mismatch(i, d, "%s is not in %s/%s", in.Artifact, registry.Dir, t.File)
}

// firstEntry returns the entry at seq 0 of l if it is a GENESIS (found
// through the store's index), or nil.
func firstEntry(ctx context.Context, l ledger.Store) (*ledger.Entry, error) {
	var g *ledger.Entry
	err := l.Find(ctx, ledger.Query{EventTypes: []string{"GENESIS"}}, func(e *ledger.Entry) bool {
		if e.Seq == 0 {
			g = e
		}
		return false
	})
	return g, err
}

// lastTurn returns the turn_number of the last TURN entry of session
// ledger l (0: none), looking back from its end through the store's index
// over a window (one entry, then four times wider each time: each TURN
// in it is read and parsed) until it holds one, so that a turn costs
// about the same however many came before it.
func lastTurn(ctx context.Context, l ledger.Store) (int64, error) {
	st, err := l.State(ctx)
	if err != nil {
		return 0, err
	}
	return lastTurnBelow(ctx, l, st.Size)
}

// lastTurnBelow is lastTurn with the windows counted back from size (the
// ledger's size as the caller read it: turns appended since are found
// too, the windows reaching to the end).
func lastTurnBelow(ctx context.Context, l ledger.Store, size int64) (int64, error) {
	for window := int64(1); ; window *= 4 {
		from := max(0, size-window)
		var last *ledger.Entry
		err := l.Find(ctx, ledger.Query{EventTypes: []string{EventTurn}, From: from}, func(e *ledger.Entry) bool {
			last = e
			return true
		})
		if err != nil {
			return 0, err
		}
		if last != nil {
			return metaInt(last.Metadata["turn_number"]), nil
		}
		if from == 0 {
			return 0, nil
		}
	}
}
