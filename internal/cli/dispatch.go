package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
)

// Response is one in-process request's answer: what the binary would have
// written and its exit code.
type Response struct {
	Exit int
	// Stdout holds the envelope (one JSON line), or a raw verb's lines
	// (cp-ledger show's entries).
	Stdout []byte
	// Stderr holds the "cp-x: error: ..." lines a person would read.
	Stderr []byte
}

// Envelope decodes the response's envelope: the last line of Stdout.
func (r Response) Envelope() (Envelope, error) {
	out := bytes.TrimSpace(r.Stdout)
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	var env Envelope
	if len(out) == 0 {
		return env, errors.New("no envelope: stdout is empty")
	}
	d := json.NewDecoder(bytes.NewReader(out))
	d.UseNumber()
	return env, d.Decode(&env)
}

// Dispatch runs one request in-process and returns its answer. The
// request is what a caller would pipe to the binary: an object whose
// "operation" names the verb (without one, the tool's default verb). It
// takes the binary's path, word for word (Run over the request as stdin):
// the same validation, firewall (opts.Firewall), refusal recording and
// envelope. The plane is opts.Env's Root (a request carries no --root).
// The answer is JSON whatever the verb's text view.
func Dispatch(ctx context.Context, tool *Tool, req Request, opts Options) Response {
	in, err := json.Marshal(req)
	if err != nil {
		e := Invalidf("INVALID_INPUT", "request does not encode as JSON: %v", err)
		env, _ := json.Marshal(Envelope{Status: "error", Error: e})
		return Response{Exit: e.Exit, Stdout: append(env, '\n')}
	}
	var stdout, stderr bytes.Buffer
	exit := RunWith(ctx, tool, opts, []string{"--format", "json"}, bytes.NewReader(in), &stdout, &stderr)
	return Response{Exit: exit, Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
}
