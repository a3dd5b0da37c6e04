package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// Envelope is the one JSON line printed per request.
type Envelope struct {
	Status   string         `json:"status"`
	Result   any            `json:"result,omitempty"`
	Error    *Error         `json:"error,omitempty"`
	Evidence map[string]any `json:"evidence,omitempty"`
}

// JSONAppender is a result that encodes itself: results on hot paths (one
// per appended entry) implement it to skip reflection.
type JSONAppender interface {
	AppendJSON(dst []byte) []byte
}

func (r *runner) emitOK(result any, extra map[string]any) {
	r.writeEnvelope("ok", result, nil, Outcome{Evidence: extra})
}

// writeEnvelope encodes {"status","result","error","evidence"} into the
// runner's reused buffer and writes it as one line. Evidence keys are sorted,
// as encoding/json sorts map keys: duration_ms, the outcome's own evidence
// (with ledger_entry_id and seq when a ledger was written), timestamp.
func (r *runner) writeEnvelope(status string, result any, e *Error, o Outcome) {
	b := append(r.buf[:0], `{"status":"`...)
	b = append(b, status...)
	b = append(b, '"')
	var err error
	if result != nil {
		b = append(b, `,"result":`...)
		if b, err = appendValue(b, result); err != nil {
			r.encodingFailed(err)
			return
		}
	}
	if e != nil {
		b = append(b, `,"error":`...)
		if b, err = appendValue(b, e); err != nil {
			r.encodingFailed(err)
			return
		}
	}
	b = append(b, `,"evidence":{"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(time.Since(r.start).Microseconds())/1000, 'f', -1, 64)
	var stack [8]string
	keys := stack[:0]
	for k := range o.Evidence {
		if k != "duration_ms" && k != "timestamp" && (o.LedgerEntryID == "" || k != "ledger_entry_id" && k != "seq") {
			keys = append(keys, k)
		}
	}
	if o.LedgerEntryID != "" {
		keys = append(keys, "ledger_entry_id", "seq")
	}
	keys = append(keys, "timestamp")
	slices.Sort(keys)
	for _, k := range keys {
		switch {
		case k == "timestamp":
			b = append(b, `,"timestamp":"`...)
			b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, '"')
		case k == "ledger_entry_id" && o.LedgerEntryID != "":
			b = append(b, `,"ledger_entry_id":`...)
			b = appendJSONString(b, o.LedgerEntryID)
		case k == "seq" && o.LedgerEntryID != "":
			b = append(b, `,"seq":`...)
			b = strconv.AppendInt(b, o.Seq, 10)
		default:
			if b, err = appendMember(b, k, o.Evidence[k]); err != nil {
				r.encodingFailed(err)
				return
			}
		}
	}
	b = append(b, "}}\n"...)
	r.buf = b
	r.out.Write(b)
}

func appendMember(b []byte, k string, v any) ([]byte, error) {
	b = append(b, ',')
	b = strconv.AppendQuote(b, k) // keys are our own ASCII names
	b = append(b, ':')
	return appendValue(b, v)
}

// appendValue encodes v: fast paths for our own hot types, encoding/json
// (without HTML escaping) for the rest.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case JSONAppender:
		return x.AppendJSON(b), nil
	case string:
		return appendJSONString(b, x), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	}
	out, err := marshalNoEscape(v)
	if err != nil {
		return b, err
	}
	return append(b, out...), nil
}

// marshalNoEscape is json.Marshal without HTML escaping.
func marshalNoEscape(v any) ([]byte, error) {
	var buf []byte
	w := &sliceWriter{&buf}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf[:len(buf)-1], nil // Encode adds a newline
}

type sliceWriter struct{ b *[]byte }

func (w *sliceWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

// appendJSONString appends s as a JSON string as encoding/json would with
// HTML escaping off (invalid UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			out, _ := marshalNoEscape(s)
			return append(b, out...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendJSONString is appendJSONString for tools' AppendJSON methods.
func AppendJSONString(b []byte, s string) []byte { return appendJSONString(b, s) }

func (r *runner) encodingFailed(err error) {
	// Results are built by our own code from JSON-safe values; failing to
	// encode one is a bug, reported as such rather than half-printed.
	fmt.Fprintf(r.stderr, "%s: error: encoding response: %v\n", r.tool.Name, err)
	fmt.Fprintf(r.out, `{"status":"error","error":{"code":"INTERNAL","message":%q}}`+"\n", "encoding response: "+err.Error())
}

// fail prints err as an error envelope and its message on stderr, and
// returns its exit code.
func (r *runner) fail(err error) int { return r.failWith(AsError(err), Outcome{}) }

func (r *runner) failWith(e *Error, o Outcome) int {
	if e.passthrough != nil {
		// An upstream failure: print it unchanged (for a person at a
		// terminal, as an error line), act on nothing.
		if r.text && (r.call == nil || r.call.Format == "text") {
			r.renderText(nil, nil, e, Outcome{})
		} else {
			r.out.Write(e.passthrough)
			r.out.WriteString("\n")
		}
		fmt.Fprintf(r.stderr, "%s: error: %s\n", r.tool.Name, e.Message)
		return e.Exit
	}
	e.Message = userMessage(e.Message)
	result := e.Result
	if result == nil {
		result = o.Result
	}
	format := "json"
	var verb *Verb
	switch {
	case r.call != nil:
		format, verb = r.call.Format, r.call.Verb
	case r.text: // failed before --format was read
		format = "text"
	}
	if render := verbFormat(verb, format); render != nil && result != nil && safeRenderTo(r.out, render, result) {
		// the verdict in the machine format asked for (SARIF, JUnit);
		// stderr says why
	} else if format != "text" || !r.renderText(verb, result, e, o) {
		r.writeEnvelope("error", result, e, o)
	}
	fmt.Fprintf(r.stderr, "%s: error: %s\n", r.tool.Name, e.Message)
	if e.Hint != "" {
		fmt.Fprintf(r.stderr, "%s: hint: %s\n", r.tool.Name, e.Hint)
	}
	if e.Exit == ExitOK {
		return ExitInternal // an error is never success
	}
	return e.Exit
}

// verbFormat returns the verb's renderer for a further format (not json or
// text), or nil.
func verbFormat(verb *Verb, format string) func(io.Writer, any) error {
	if verb == nil || format == "json" || format == "text" {
		return nil
	}
	return verb.Formats[format]
}

// safeRenderTo renders result into w whole, or writes nothing and reports
// false.
func safeRenderTo(w io.Writer, render func(io.Writer, any) error, result any) bool {
	var b bytes.Buffer
	if !safeRender(&b, render, result) {
		return false
	}
	w.Write(b.Bytes())
	return true
}
