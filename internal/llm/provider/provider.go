// Package provider is the seam between the LLM gateway (DESIGN.md §9) and
// the model providers: a Provider completes a Request, whole or streamed,
// and answers with a Response that says what the provider answered and
// what it cost in tokens. One package per kind implements it beside this
// one (internal/llm/anthropic, internal/llm/openai, internal/llm/mock);
// internal/llm opens the one config/providers.json names.
//
// What every implementation guarantees, so the gateway can price, budget
// and evidence a call without knowing the kind:
//
//   - The SDKs' own retries are off: Retry is the only retry loop, so every
//     attempt is counted and recorded (Response.Attempts, Error.Attempts).
//   - Usage is reported even when a call fails part-way (a stream cut, a
//     caller that hangs up, a cancelled context): Error.Usage holds the
//     tokens the provider had reported by then, which the gateway charges.
//   - A Schema is asked from the provider the way its API supports it and
//     the answer is validated on return with the project's own validator
//     (package schema): LLM_OUTPUT_INVALID when it does not hold.
//   - API keys never appear in an error, a Response or a log line: errors
//     are built from the provider's status and its error body's message,
//     with the key redacted should a server echo it.
package provider

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Roles of a Message.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"` // user or assistant
	Content string `json:"content"`
}

// Request is one model call.
type Request struct {
	// Model is the provider's model id; "" is refused (the gateway picks
	// one from config/providers.json before calling).
	Model string `json:"model"`
	// System is the system prompt, if any.
	System string `json:"system,omitempty"`
	// Messages is the conversation; Prompt is shorthand for one user
	// message after them.
	Messages []Message `json:"messages,omitempty"`
	Prompt   string    `json:"prompt,omitempty"`
	// MaxTokens caps the output tokens (at least 1): the bound the budget
	// reserves for.
	MaxTokens int64 `json:"max_tokens"`
	// Temperature, when set, is sent as is (the openai and mock kinds);
	// see the anthropic package for its kind.
	Temperature *float64 `json:"temperature,omitempty"`
	// Schema, when set, asks for structured output: a JSON Schema of the
	// keywords package schema supports (decoded with UseNumber).
	Schema map[string]any `json:"schema,omitempty"`
}

// Conversation returns the messages a provider is sent: Messages, then
// Prompt as a user message.
func (r *Request) Conversation() []Message {
	msgs := slices.Clone(r.Messages)
	if r.Prompt != "" {
		msgs = append(msgs, Message{Role: RoleUser, Content: r.Prompt})
	}
	return msgs
}

// Check refuses a request no provider should be sent (LLM_REQUEST_INVALID).
func (r *Request) Check() error {
	msgs := r.Conversation()
	switch {
	case r.Model == "":
		return invalidRequest("no model")
	case r.MaxTokens < 1:
		return invalidRequest("max_tokens is %d; at least 1", r.MaxTokens)
	case len(msgs) == 0:
		return invalidRequest("no prompt and no messages")
	case msgs[0].Role != RoleUser:
		return invalidRequest("the conversation starts with a %s message; the first is the user's", msgs[0].Role)
	case r.Temperature != nil && (*r.Temperature < 0 || *r.Temperature > 2):
		return invalidRequest("temperature %v is outside [0, 2]", *r.Temperature)
	}
	for i, m := range msgs {
		if m.Role != RoleUser && m.Role != RoleAssistant {
			return invalidRequest("message %d: role %q; user or assistant (the system prompt is its own field)", i, m.Role)
		}
	}
	return nil
}

// Usage counts a call's tokens as the provider reported them.
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	// Estimated marks counts the provider never reported (an OpenAI
	// stream stopped before its last chunk, the only one with usage):
	// then they are upper bounds, EstimateUsage's, charged as such.
	Estimated bool `json:"estimated,omitempty"`
}

// EstimateUsage bounds what a call that stopped part-way used when the
// provider reported nothing: InputTokenBound for the input, one token per
// byte of the text received for the output.
func EstimateUsage(req *Request, text string) Usage {
	return Usage{InputTokens: InputTokenBound(req), OutputTokens: int64(len(text)), Estimated: true}
}

func (u Usage) add(v Usage) Usage {
	return Usage{InputTokens: u.InputTokens + v.InputTokens, OutputTokens: u.OutputTokens + v.OutputTokens,
		Estimated: u.Estimated || v.Estimated}
}

// Attempt is one HTTP exchange with a provider: its status (0 when no
// response came: a network error, a timeout) and, for a failed one, why
// and how long the loop waited before the next.
type Attempt struct {
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
	// WaitMS is the pause after this attempt, before the next (the
	// provider's retry-after when it gave one).
	WaitMS int64 `json:"wait_ms,omitempty"`
}

// Response is a completed call.
type Response struct {
	// Provider is the kind (gen_ai.provider.name): anthropic, openai, mock.
	Provider string `json:"provider"`
	// ID is the provider's id for the response, if it gave one.
	ID string `json:"id,omitempty"`
	// Model is the model as the provider answered (gen_ai.response.model).
	Model string `json:"model"`
	Text  string `json:"text"`
	// Output is Text decoded, for a request with a Schema (it validated).
	Output any `json:"output,omitempty"`
	// FinishReasons are the provider's own words (end_turn, stop,
	// max_tokens, length, tool_use, ...): gen_ai.response.finish_reasons.
	FinishReasons []string  `json:"finish_reasons"`
	Usage         Usage     `json:"usage"`
	Attempts      []Attempt `json:"attempts"`
}

// Delta is a piece of a streamed answer's text.
type Delta struct {
	Text string `json:"text"`
}

// Provider is a model provider.
type Provider interface {
	// Name is anthropic, openai or mock.
	Name() string
	// Complete makes the call and returns the whole answer. An error is an
	// *Error (or its cause is the context's).
	Complete(ctx context.Context, req Request) (*Response, error)
	// Stream makes the call streamed: each piece of text goes to onDelta
	// as it arrives, then the whole Response is returned. An error from
	// onDelta (the caller hung up) stops the stream: the *Error returned
	// then is CANCELLED with the usage reported so far.
	Stream(ctx context.Context, req Request, onDelta func(Delta) error) (*Response, error)
}

// Warmer is a Provider whose SDK does first-use work inside a call (the
// request's encoders and the answer's decoders, built by reflection, and
// the registrations they read) that it can do ahead: the gateway calls
// Warm on another goroutine while the call's reservation is made durable,
// so that work runs on the other core instead of after the fsync. Warm
// sends nothing, touches no file and changes nothing a call returns; it
// may run while Complete does.
type Warmer interface {
	Warm(req Request)
}

// WarmUp is a Warmer's work on its SDK's types: params (the call's, as
// Complete builds them) encoded and body (a sample answer) decoded into
// answer, both results dropped.
func WarmUp(params json.Marshaler, answer json.Unmarshaler, body string) {
	_, _ = params.MarshalJSON()
	_ = answer.UnmarshalJSON([]byte(body))
}

// Redact replaces every occurrence of secret in s. Errors built from a
// provider's answer pass through it with the API key, so a server that
// echoes the key cannot put it into a ledger or a log.
func Redact(s, secret string) string {
	if len(secret) < 4 {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// trim shortens a provider's message for an error.
func trim(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
