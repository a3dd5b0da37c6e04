package cp_test

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/control-plane/cp/internal/prompt"
)

// loadpack ROOT PRM-ID [VARIABLES] loads a registered prompt pack the
// way the gateway does (prompt.Load: re-hashed now against its registered
// digest) and renders it with VARIABLES (a JSON object), writing an
// envelope to stdout: {"status":"ok","result":{...}} or
// {"status":"error","error":{"code","message"}}. With !, it must fail.
// (cp-llm load-prompt is the same call through the tool.)
func cmdLoadPack(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: loadpack ROOT PRM-ID [VARIABLES]")
	}
	var vars map[string]any
	if len(args) == 3 {
		dec := json.NewDecoder(bytes.NewReader([]byte(args[2])))
		dec.UseNumber()
		ts.Check(dec.Decode(&vars))
	}
	var out any
	p, err := prompt.Load(ts.MkAbs(args[0]), args[1])
	var r *prompt.Rendered
	if err == nil {
		r, err = p.Render(vars)
	}
	var pe *prompt.Error
	switch {
	case err == nil:
		out = map[string]any{"status": "ok", "result": r}
	case errors.As(err, &pe):
		out = map[string]any{"status": "error", "error": map[string]any{"code": pe.Code(), "message": pe.Error(), "details": pe.ErrorDetails()}}
	default:
		ts.Fatalf("loadpack: %v", err)
	}
	b, jerr := json.Marshal(out)
	ts.Check(jerr)
	ts.Stdout().Write(append(b, '\n'))
	if neg != (err != nil) {
		ts.Fatalf("loadpack %s: %s", args[1], b)
	}
}
