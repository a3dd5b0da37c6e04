package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/control-plane/cp/pkg/jcs"
)

// Request is one decoded request object: flags and stdin JSON both build it,
// and it is validated against the verb's schema before the verb sees it.
// Numbers are json.Number, kept exact.
type Request map[string]any

// String returns the string field k, or "".
func (r Request) String(k string) string {
	s, _ := r[k].(string)
	return s
}

// Has reports whether field k is present.
func (r Request) Has(k string) bool {
	_, ok := r[k]
	return ok
}

// Bool returns the boolean field k, or false.
func (r Request) Bool(k string) bool {
	b, _ := r[k].(bool)
	return b
}

// Int returns the integer field k and whether it was present. A present
// field that is not an integer is an INVALID_INPUT error (the schema should
// have caught it first).
func (r Request) Int(k string) (int64, bool, error) {
	v, ok := r[k]
	if !ok {
		return 0, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return 0, true, Invalidf("INVALID_INPUT", "%s: want an integer, got %T", k, v)
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, true, Invalidf("INVALID_INPUT", "%s: want an integer, got %s", k, n)
	}
	return i, true, nil
}

// Strings returns the string-array field k, or nil.
func (r Request) Strings(k string) []string {
	arr, _ := r[k].([]any)
	out := make([]string, 0, len(arr))
	for _, v := range arr {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Object returns the object field k, or nil.
func (r Request) Object(k string) map[string]any {
	m, _ := r[k].(map[string]any)
	return m
}

// decodeValue parses one JSON text strictly: duplicate keys, invalid UTF-8 and
// trailing data are errors, numbers stay exact.
func decodeValue(b []byte) (any, error) {
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, Invalidf("INVALID_JSON", "stdin is not valid JSON: %v", err)
	}
	return v, nil
}

// input is one request read from stdin: either an object to act on, or an
// upstream error envelope to pass through unchanged.
type input struct {
	req         Request
	passthrough *Error
	// upstream marks req as an upstream envelope's result (Verb.Upstream).
	upstream bool
}

// fromUpstream is req as verb takes it: an upstream envelope's result
// through the verb's Upstream, if it declares one.
func (in input) fromUpstream(verb *Verb) Request {
	if in.upstream && verb.Upstream != nil {
		return verb.Upstream(in.req)
	}
	return in.req
}

// parseInput decodes one stdin request line or document. An upstream envelope
// with status "ok" yields its result; with status "error" it yields a
// pass-through error carrying the original bytes and the error's exit class.
func parseInput(b []byte) (input, error) {
	v, err := decodeValue(b)
	if err != nil {
		return input{}, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return input{}, Invalidf("INVALID_INPUT", "request must be a JSON object, got %s", jsonKind(v))
	}
	status, isEnv := obj["status"].(string)
	_, hasResult := obj["result"]
	_, hasError := obj["error"]
	if !isEnv || (!hasResult && !hasError) {
		return input{req: obj}, nil
	}
	switch status {
	case "ok":
		res, ok := obj["result"].(map[string]any)
		if !ok {
			return input{}, Invalidf("INVALID_INPUT", "upstream envelope result must be an object, got %s", jsonKind(obj["result"]))
		}
		return input{req: res, upstream: true}, nil
	case "error":
		code := "UPSTREAM_ERROR"
		msg := ""
		if e, ok := obj["error"].(map[string]any); ok {
			if c, ok := e["code"].(string); ok && c != "" {
				code = c
			}
			msg, _ = e["message"].(string)
		}
		raw := bytes.Clone(bytes.TrimSpace(b)) // b is the reader's buffer
		return input{passthrough: &Error{Exit: ExitFor(code), Code: code, Message: "upstream: " + msg, passthrough: raw}}, nil
	default:
		return input{}, Invalidf("INVALID_INPUT", "upstream envelope has unknown status %q", status)
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// readAllTrim reads the rest of r; more than limit bytes, once trailing
// whitespace is trimmed, is REQUEST_TOO_LARGE (nothing past the
// cap and a little slack for that whitespace is read); a document that is
// only whitespace is nil.
func readAllTrim(r io.Reader, limit int) ([]byte, error) {
	const slack = 64 << 10
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+slack+1))
	if err != nil {
		return nil, Errorf(ExitUnavailable, "IO_ERROR", "reading stdin: %v", err)
	}
	// Trailing whitespace (a final newline) is not the request's; leading
	// whitespace may be the indentation of a pretty-printed document's
	// second line, read after its first: it counts.
	b = skipDeltas(b)
	trimmed := bytes.TrimRight(b, " \t\r\n")
	if len(b) > limit+slack || len(trimmed) > limit {
		return nil, errTooLarge()
	}
	if len(bytes.TrimSpace(trimmed)) == 0 {
		return nil, nil
	}
	return b, nil
}

// snake turns a kebab-case flag name into its request field name.
func snake(flag string) string { return strings.ReplaceAll(flag, "-", "_") }
