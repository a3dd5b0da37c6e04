// Package mock is the offline provider (DESIGN.md §9): deterministic, its
// answer a pure function of the request, its usage counted. It is the
// provider of the built-in configuration, so a plane without a provider
// key still has a governed gateway to demonstrate and test.
//
// The answer: for a request without a schema, "mock reply <h>: <text>"
// where h is the first 12 hex digits of the SHA-256 of the request's
// canonical JSON and text is the start of the last user message; for a
// request with a schema, the smallest JSON value the schema's const, enum,
// type, required, minItems, minimum and minLength ask for. Tokens are
// counted as one per four UTF-8 bytes, rounded up: input over the system
// prompt and the messages (plus 4 a message), output over the answer. An
// answer longer than max_tokens is cut there (finish reason max_tokens).
package mock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/control-plane/cp/internal/llm/provider"
)

// Name is the provider kind: its type in config/providers.json and its
// gen_ai.provider.name.
const Name = "mock"

// Provider is the mock provider. The zero value is ready; it is safe for
// concurrent use.
type Provider struct {
	// ChunkBytes is the size of a streamed delta (default 16 bytes).
	ChunkBytes int
}

// Name returns "mock".
func (Provider) Name() string { return Name }

// Complete answers req.
func (p Provider) Complete(ctx context.Context, req provider.Request) (*provider.Response, error) {
	return p.Stream(ctx, req, nil)
}

// Stream answers req in deltas of ChunkBytes. A context that ends or a
// callback that fails stops it: CANCELLED with the usage so far.
func (p Provider) Stream(ctx context.Context, req provider.Request, onDelta func(provider.Delta) error) (*provider.Response, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	var out *provider.Output
	if req.Schema != nil {
		var err error
		if out, err = provider.CompileSchema(req.Schema); err != nil {
			return nil, err
		}
	}
	text := answer(&req)
	finish := "end_turn"
	if max := int(min(req.MaxTokens, 1<<40)) * 4; len(text) > max {
		text, finish = cut(text, max), "max_tokens"
	}
	in := inputTokens(&req)
	chunk := p.ChunkBytes
	if chunk <= 0 {
		chunk = 16
	}
	sent := ""
	for rest := text; onDelta != nil && rest != ""; {
		piece := cut(rest, chunk)
		if piece == "" { // a rune wider than a chunk
			_, n := utf8.DecodeRuneInString(rest)
			piece = rest[:n]
		}
		rest = rest[len(piece):]
		stop := ctx.Err()
		if stop == nil {
			if err := onDelta(provider.Delta{Text: piece}); err != nil {
				stop = fmt.Errorf("%w: %v", provider.ErrStopped, err)
			}
		}
		if stop != nil {
			return nil, cancelled(in, sent, stop)
		}
		sent += piece
	}
	if err := ctx.Err(); err != nil {
		return nil, cancelled(in, sent, err)
	}
	resp := &provider.Response{Provider: Name, ID: "mock-" + digest(&req)[:24], Model: req.Model, Text: text,
		FinishReasons: []string{finish}, Usage: provider.Usage{InputTokens: in, OutputTokens: tokens(text)},
		Attempts: []provider.Attempt{{Status: 200}}}
	return resp, provider.Structured(out, resp)
}

// cancelled is a stopped answer, charged for what it used. It goes
// through provider.Retry like the other kinds' failures, so the error has
// the same shape.
func cancelled(in int64, sent string, cause error) error {
	_, err := provider.Retry{MaxAttempts: 1}.Do(context.Background(), Name, func(context.Context) (*provider.Response, error) {
		return nil, &provider.AttemptError{Message: cause.Error(), Final: true, Err: errors.Join(provider.ErrStopped, cause), Text: sent,
			Usage: provider.Usage{InputTokens: in, OutputTokens: tokens(sent)}}
	})
	return err
}

func tokens(s string) int64 { return int64(len(s)+3) / 4 }

func inputTokens(req *provider.Request) int64 {
	n := tokens(req.System)
	for _, m := range req.Conversation() {
		n += 4 + tokens(m.Content)
	}
	return n
}

// cut returns the longest prefix of s of at most n bytes that ends on a
// rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// digest is the hex SHA-256 of the request's JSON encoding (maps sort
// their keys, so it is canonical for what a request holds).
func digest(req *provider.Request) string {
	b, _ := json.Marshal(req)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func answer(req *provider.Request) string {
	if req.Schema != nil {
		b, _ := json.Marshal(instance(req.Schema, req.Schema, 0))
		return string(b)
	}
	last := ""
	for _, m := range req.Conversation() {
		if m.Role == provider.RoleUser {
			last = m.Content
		}
	}
	last = strings.Join(strings.Fields(last), " ")
	return fmt.Sprintf("mock reply %s: %s", digest(req)[:12], cut(last, 200))
}

// instance is the smallest value s asks for (see the package comment);
// root resolves "#/..." references.
func instance(s any, root map[string]any, depth int) any {
	m, ok := s.(map[string]any)
	if !ok || depth > 32 {
		return nil
	}
	if ref, ok := m["$ref"].(string); ok && strings.HasPrefix(ref, "#") {
		var target any = root
		for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			if tok == "" {
				continue
			}
			tm, _ := target.(map[string]any)
			target = tm[strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")]
		}
		return instance(target, root, depth+1)
	}
	if c, ok := m["const"]; ok {
		return c
	}
	if e, ok := m["enum"].([]any); ok && len(e) > 0 {
		return e[0]
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if subs, ok := m[k].([]any); ok && len(subs) > 0 {
			return instance(subs[0], root, depth+1)
		}
	}
	typ, _ := m["type"].(string)
	if ts, ok := m["type"].([]any); ok && len(ts) > 0 {
		typ, _ = ts[0].(string)
	}
	switch typ {
	case "object":
		obj := map[string]any{}
		props, _ := m["properties"].(map[string]any)
		req, _ := m["required"].([]any)
		for _, r := range req {
			if k, ok := r.(string); ok {
				obj[k] = instance(props[k], root, depth+1)
			}
		}
		return obj
	case "array":
		arr := []any{}
		if n, ok := number(m["minItems"]); ok {
			for i := int64(0); i < n && i < 64; i++ {
				arr = append(arr, instance(m["items"], root, depth+1))
			}
		}
		return arr
	case "integer", "number":
		if n, ok := number(m["minimum"]); ok {
			return n
		}
		return 0
	case "boolean":
		return false
	case "string":
		s := "mock"
		if n, ok := number(m["minLength"]); ok && n > 4 {
			s += strings.Repeat("-", int(min(n, 4096))-4)
		}
		return s
	}
	return nil
}

func number(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		return int64(n), true
	case int:
		return int64(n), true
	}
	return 0, false
}
