package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRequestCheck(t *testing.T) {
	ok := Request{Model: "m", Prompt: "hi", MaxTokens: 1}
	require.NoError(t, ok.Check())
	hot, cold := 2.5, -0.1
	for name, r := range map[string]Request{
		"no model":             {Prompt: "hi", MaxTokens: 1},
		"max_tokens 0":         {Model: "m", Prompt: "hi"},
		"max_tokens negative":  {Model: "m", Prompt: "hi", MaxTokens: -5},
		"nothing to say":       {Model: "m", MaxTokens: 1},
		"assistant first":      {Model: "m", MaxTokens: 1, Messages: []Message{{Role: RoleAssistant, Content: "x"}}},
		"a system message":     {Model: "m", MaxTokens: 1, Messages: []Message{{Role: RoleUser, Content: "x"}, {Role: "system", Content: "y"}}},
		"temperature too high": {Model: "m", Prompt: "hi", MaxTokens: 1, Temperature: &hot},
		"temperature negative": {Model: "m", Prompt: "hi", MaxTokens: 1, Temperature: &cold},
	} {
		err := r.Check()
		var e *Error
		require.ErrorAs(t, err, &e, name)
		require.Equal(t, CodeRequestInvalid, e.Code(), name)
	}
	conv := Request{Messages: []Message{{Role: RoleUser, Content: "a"}, {Role: RoleAssistant, Content: "b"}}, Prompt: "c"}
	require.Equal(t, []Message{{RoleUser, "a"}, {RoleAssistant, "b"}, {RoleUser, "c"}}, conv.Conversation())
	require.Len(t, conv.Messages, 2, "Conversation does not change the request")
}

// fail is an attempt that fails with status (and retry-after).
func fail(status int, retryAfter time.Duration) *AttemptError {
	return &AttemptError{Status: status, RetryAfter: retryAfter, Message: http.StatusText(status)}
}

func TestRetryDo(t *testing.T) {
	ok := &Response{Text: "ok", Usage: Usage{InputTokens: 3, OutputTokens: 2}}
	for _, tc := range []struct {
		name     string
		script   []error // nil: success
		max      int
		code     string
		statuses []int
		waits    []time.Duration
		usage    Usage
	}{
		{name: "first time", script: []error{nil}, statuses: []int{200}, usage: Usage{3, 2, false}},
		{name: "429 then ok", script: []error{fail(429, 0), nil}, statuses: []int{429, 200}, waits: []time.Duration{time.Second}, usage: Usage{3, 2, false}},
		{name: "retry-after honoured", script: []error{fail(429, 3*time.Second), fail(503, 0), nil}, statuses: []int{429, 503, 200},
			waits: []time.Duration{3 * time.Second, 2 * time.Second}, usage: Usage{3, 2, false}},
		{name: "backoff capped", max: 5, script: []error{fail(500, 0), fail(500, 0), fail(500, 0), fail(500, 0), nil}, statuses: []int{500, 500, 500, 500, 200},
			waits: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}, usage: Usage{3, 2, false}},
		{name: "exhausted", script: []error{fail(529, 0), fail(529, 0), fail(529, 0)}, code: CodeProviderError, statuses: []int{529, 529, 529},
			waits: []time.Duration{time.Second, 2 * time.Second}},
		{name: "400 is final", script: []error{fail(400, 0)}, code: CodeProviderError, statuses: []int{400}},
		{name: "404 is final", script: []error{fail(404, 0)}, code: CodeProviderError, statuses: []int{404}},
		{name: "no response is retried", script: []error{errors.New("connection refused"), nil}, statuses: []int{0, 200}, waits: []time.Duration{time.Second}, usage: Usage{3, 2, false}},
		{name: "retry-after beyond the cap ends it", script: []error{fail(429, time.Hour)}, code: CodeProviderError, statuses: []int{429}},
		{name: "a final failure is not retried", script: []error{&AttemptError{Status: 500, Final: true, Usage: Usage{InputTokens: 9, OutputTokens: 4}}},
			code: CodeProviderError, statuses: []int{500}, usage: Usage{9, 4, false}},
		{name: "a stopped caller is CANCELLED", script: []error{&AttemptError{Status: 200, Final: true, Err: ErrStopped, Usage: Usage{InputTokens: 9, OutputTokens: 4}}},
			code: CodeCancelled, statuses: []int{200}, usage: Usage{9, 4, false}},
		{name: "a broken stream is retried, its usage charged", script: []error{&AttemptError{Status: 200, Broken: true, Usage: Usage{InputTokens: 9}}, nil},
			statuses: []int{200, 200}, waits: []time.Duration{time.Second}, usage: Usage{12, 2, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var waits []time.Duration
			r := Retry{MaxAttempts: tc.max, BaseDelay: time.Second, MaxDelay: 3 * time.Second,
				Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
			if r.MaxAttempts == 0 {
				r.MaxAttempts = 3
			}
			n := 0
			resp, err := r.Do(context.Background(), "test", func(context.Context) (*Response, error) {
				step := tc.script[n]
				n++
				if step == nil {
					c := *ok
					return &c, nil
				}
				return nil, step
			})
			require.Equal(t, len(tc.script), n, "attempts made")
			require.Equal(t, tc.waits, waits)
			var attempts []Attempt
			var usage Usage
			if tc.code == "" {
				require.NoError(t, err)
				require.Equal(t, "test", resp.Provider)
				attempts, usage = resp.Attempts, resp.Usage
			} else {
				var e *Error
				require.ErrorAs(t, err, &e)
				require.Equal(t, tc.code, e.Code())
				require.Equal(t, tc.statuses[len(tc.statuses)-1], e.Status)
				attempts, usage = e.Attempts, e.Usage
			}
			var statuses []int
			for i, a := range attempts {
				statuses = append(statuses, a.Status)
				if i < len(waits) {
					require.Equal(t, waits[i].Milliseconds(), a.WaitMS, "the wait is recorded")
				}
			}
			require.Equal(t, tc.statuses, statuses)
			require.Equal(t, tc.usage, usage)
		})
	}
}

// A context cancelled while waiting to retry ends the loop at once.
func TestRetryCancelledWhileWaiting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := Retry{BaseDelay: time.Hour, MaxDelay: 2 * time.Hour}.Do(ctx, "test", func(context.Context) (*Response, error) {
		n++
		cancel()
		return nil, fail(503, 0)
	})
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, CodeCancelled, e.Code())
	require.Equal(t, 1, n)
	require.ErrorIs(t, err, context.Canceled)
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"3"}}, 3 * time.Second},
		{http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"9"}}, 250 * time.Millisecond},
		{http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{http.Header{"Retry-After": {"-3"}}, 0},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{"Retry-After": {"1e300"}}, 0},
		{nil, 0},
	} {
		require.Equal(t, tc.want, RetryAfter(tc.h, now), "%v", tc.h)
	}
}

func TestCompileSchema(t *testing.T) {
	for name, s := range map[string]map[string]any{
		"an unsupported keyword":     {"type": "object", "patternProperties": map[string]any{}},
		"a format keyword's sibling": {"type": "string", "contentEncoding": "base64"},
		"a remote $ref":              {"$ref": "https://example.test/s.json"},
		"a file $ref":                {"$ref": "providers.schema.json"},
		"another draft":              {"$schema": "http://json-schema.org/draft-07/schema#"},
		"not a schema":               {"type": 5},
	} {
		_, err := CompileSchema(s)
		var e *Error
		require.ErrorAs(t, err, &e, name)
		require.Equal(t, CodeSchemaUnsupported, e.Code(), name)
	}
	out, err := CompileSchema(map[string]any{"type": "object", "required": []any{"n"},
		"properties": map[string]any{"n": map[string]any{"$ref": "#/$defs/count"}},
		"$defs":      map[string]any{"count": map[string]any{"type": "integer", "minimum": 1}}})
	require.NoError(t, err)
	v, err := out.Check("test", `{"n": 12345678901234567890}`)
	require.NoError(t, err, "numbers kept exact")
	require.Equal(t, "12345678901234567890", v.(map[string]any)["n"].(interface{ String() string }).String())
	for text, want := range map[string]string{
		`{"n": 0}`:         "/n: ",
		`{}`:               "/: ",
		`{"n": 1} {"n":2}`: "more than one JSON value",
		`Sure: {"n": 1}`:   "not JSON",
		``:                 "not JSON",
	} {
		_, err := out.Check("test", text)
		var e *Error
		require.ErrorAs(t, err, &e, text)
		require.Equal(t, CodeOutputInvalid, e.Code())
		require.Contains(t, e.Error(), want, text)
		require.Equal(t, text, e.Text, "the answer is kept as evidence")
	}
}

func TestInputTokenBound(t *testing.T) {
	r := Request{System: "sys", Messages: []Message{{RoleUser, "héllo"}}, Prompt: "x"}
	require.Equal(t, int64(512+3+16+6+16+1), InputTokenBound(&r), "bytes, not runes")
	r.Schema = map[string]any{"type": "string"}
	require.Equal(t, int64(512+3+16+6+16+1+len(`{"type":"string"}`)), InputTokenBound(&r))
}

func TestRedact(t *testing.T) {
	require.Equal(t, "bad key [redacted] sent", Redact("bad key sk-123456 sent", "sk-123456"))
	require.Equal(t, "abc", Redact("abc", ""), "no key, nothing to redact")
	require.False(t, strings.Contains(Redact("k=sk-1234 and sk-1234", "sk-1234"), "sk-1234"))
}

func TestWireSchema(t *testing.T) {
	in := map[string]any{"minimum": json.Number("1"), "maximum": json.Number("10.5"),
		"enum": []any{json.Number("99999999999999999999"), "x"}, "properties": map[string]any{"n": map[string]any{"maxLength": json.Number("3")}}}
	got := WireSchema(in)
	require.Equal(t, int64(1), got["minimum"])
	require.Equal(t, 10.5, got["maximum"])
	require.Equal(t, []any{1e20, "x"}, got["enum"])
	require.Equal(t, int64(3), got["properties"].(map[string]any)["n"].(map[string]any)["maxLength"])
	require.Equal(t, json.Number("1"), in["minimum"], "the original is left exact")
	require.Nil(t, WireSchema(nil))
}

// TestCompileSchemaHostile: a request's schema whose $refs loop without
// consuming the answer (validating any answer against it overflowed the
// goroutine's stack: a fatal error that killed cp-llm, or cp-mcp serve
// with it) is LLM_SCHEMA_UNSUPPORTED before any call; one whose branches
// multiply is refused at the answer (LLM_OUTPUT_INVALID) in bounded time.
func TestCompileSchemaHostile(t *testing.T) {
	for name, s := range map[string]map[string]any{
		"itself":         {"$ref": "#"},
		"under not":      {"not": map[string]any{"$ref": "#"}},
		"through $defs":  {"$defs": map[string]any{"a": map[string]any{"anyOf": []any{map[string]any{"$ref": "#/$defs/a"}}}}, "properties": map[string]any{"x": map[string]any{"$ref": "#/$defs/a"}}},
		"through allOf":  {"allOf": []any{map[string]any{"type": "object"}, map[string]any{"$ref": "#"}}},
		"through oneOf":  {"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"$ref": "#"}}},
		"through anyOf ": {"anyOf": []any{map[string]any{"$ref": "#"}}},
	} {
		_, err := CompileSchema(s)
		var e *Error
		require.ErrorAs(t, err, &e, name)
		require.Equal(t, CodeSchemaUnsupported, e.Code(), name)
	}
	defs := map[string]any{"d40": map[string]any{"type": "string"}}
	for i := range 40 {
		next := map[string]any{"$ref": fmt.Sprintf("#/$defs/d%d", i+1)}
		defs[fmt.Sprintf("d%d", i)] = map[string]any{"oneOf": []any{next, next}}
	}
	out, err := CompileSchema(map[string]any{"$defs": defs, "$ref": "#/$defs/d0"})
	require.NoError(t, err)
	_, err = out.Check("test", `"x"`)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, CodeOutputInvalid, e.Code())
}
