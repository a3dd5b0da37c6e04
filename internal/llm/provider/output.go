package provider

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/control-plane/cp/internal/schema"
)

// outputBase is the base URL a request schema is compiled under: it is
// not one of the embedded schemas, so a $ref can only point inside the
// request's own schema (#/...), never at a file or the network.
const (
	outputBase = "urn:cp:llm-output/"
	outputName = "output.schema.json"
)

// Output is a compiled request schema.
type Output struct {
	s *schema.Schema
}

// CompileSchema compiles a request's schema with package schema, the
// project's validator: a keyword it does not support, or a $ref outside
// the schema, is LLM_SCHEMA_UNSUPPORTED (never partly enforced).
func CompileSchema(m map[string]any) (*Output, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, &Error{code: CodeSchemaUnsupported, Message: "schema: " + err.Error()}
	}
	s, err := schema.CompileDocument(outputBase, outputName, b)
	if err != nil {
		return nil, &Error{code: CodeSchemaUnsupported, Message: "schema: " + err.Error()}
	}
	return &Output{s: s}, nil
}

// Check decodes text as one JSON value (numbers kept exact) and validates
// it: the decoded value, or LLM_OUTPUT_INVALID with the problems.
func (o *Output) Check(kind, text string) (any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(text)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &Error{code: CodeOutputInvalid, Provider: kind, Message: "the answer is not JSON: " + err.Error(), Text: text}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &Error{code: CodeOutputInvalid, Provider: kind, Message: "the answer holds more than one JSON value", Text: text}
	}
	if probs := o.s.Validate(v); len(probs) > 0 {
		e := &Error{code: CodeOutputInvalid, Provider: kind, Text: text,
			Message: "the answer does not match the schema: " + pointer(probs[0].Path) + ": " + probs[0].Message}
		for _, p := range probs {
			e.Problems = append(e.Problems, pointer(p.Path)+": "+p.Message)
		}
		return nil, e
	}
	return v, nil
}

func pointer(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// Structured validates resp.Text against out when the request had a
// schema, setting resp.Output; the error keeps the call's evidence
// (attempts, usage) so it is charged and recorded like any other.
func Structured(out *Output, resp *Response) error {
	if out == nil {
		return nil
	}
	v, err := out.Check(resp.Provider, resp.Text)
	if err != nil {
		e := err.(*Error)
		e.Attempts, e.Usage = resp.Attempts, resp.Usage
		e.Status = lastStatus(resp.Attempts)
		return e
	}
	resp.Output = v
	return nil
}

// InputTokenBound is the input-token estimate a budget reserves for before
// a call (DESIGN.md §9): one token per UTF-8 byte of everything sent (the
// system prompt, each message, the schema), plus 16 tokens per message
// and 512 for the request's framing and a provider's own instructions for
// structured output. Byte-level BPE tokenizers never make more tokens of
// a text than it has bytes, so the text part holds as a bound; the
// overheads are estimates, and a call is settled to the usage reported.
func InputTokenBound(req *Request) int64 {
	n := int64(512 + len(req.System))
	for _, m := range req.Conversation() {
		n += 16 + int64(len(m.Content))
	}
	if req.Schema != nil {
		if b, err := json.Marshal(req.Schema); err == nil {
			n += int64(len(b))
		}
	}
	return n
}

// WireSchema is a request's schema as an SDK is given it: a deep copy with
// every json.Number turned into an int64 (or a float64 when it is not an
// integer that fits), since the SDKs' encoders write a json.Number as a
// string. The schema enforced on return is the original, numbers exact.
func WireSchema(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out, _ := wire(m).(map[string]any)
	return out
}

func wire(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = wire(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = wire(e)
		}
		return out
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return string(x)
	}
	return v
}
