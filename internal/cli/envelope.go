package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Envelope is the one JSON line printed per request.
type Envelope struct {
	Status   string         `json:"status"`
	Result   any            `json:"result,omitempty"`
	Error    *Error         `json:"error,omitempty"`
	Evidence map[string]any `json:"evidence,omitempty"`
}

func (r *runner) evidence(extra map[string]any) map[string]any {
	ev := map[string]any{
		"timestamp":   time.Now().UTC().Format(time.RFC3339Nano),
		"duration_ms": float64(time.Since(r.start).Microseconds()) / 1000,
	}
	for k, v := range extra {
		ev[k] = v
	}
	return ev
}

func (r *runner) emitOK(result any, extra map[string]any) {
	r.write(Envelope{Status: "ok", Result: result, Evidence: r.evidence(extra)})
}

func (r *runner) write(env Envelope) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		// Results are built by our own code from JSON-safe values; failing to
		// encode one is a bug, reported as such rather than half-printed.
		fmt.Fprintf(r.stderr, "%s: error: encoding response: %v\n", r.tool.Name, err)
		buf.Reset()
		fallback := Envelope{Status: "error", Error: &Error{Code: "INTERNAL", Message: "encoding response: " + err.Error()}}
		enc.Encode(fallback)
	}
	r.out.Write(buf.Bytes())
}

// fail prints err as an error envelope and its message on stderr, and
// returns its exit code.
func (r *runner) fail(err error) int { return r.failWith(AsError(err), Outcome{}) }

func (r *runner) failWith(e *Error, o Outcome) int {
	if e.passthrough != nil {
		// An upstream failure: print it unchanged, act on nothing.
		r.out.Write(e.passthrough)
		r.out.WriteString("\n")
		fmt.Fprintf(r.stderr, "%s: error: %s\n", r.tool.Name, e.Message)
		return e.Exit
	}
	result := e.Result
	if result == nil {
		result = o.Result
	}
	r.write(Envelope{Status: "error", Result: result, Error: e, Evidence: r.evidence(o.Evidence)})
	fmt.Fprintf(r.stderr, "%s: error: %s\n", r.tool.Name, e.Message)
	if e.Hint != "" {
		fmt.Fprintf(r.stderr, "%s: hint: %s\n", r.tool.Name, e.Hint)
	}
	if e.Exit == ExitOK {
		return ExitInternal // an error is never success
	}
	return e.Exit
}
