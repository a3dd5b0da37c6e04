// Package openai is the provider of kind openai (DESIGN.md §9): the Chat
// Completions API through the official SDK, github.com/openai/openai-go/v3,
// against OpenAI or any OpenAI-compatible server (Ollama, vLLM, llama.cpp,
// OpenRouter) at the configured base URL.
//
// The SDK's client is never built from the environment (no OPENAI_*
// variable of the process is read): the chat service gets the base URL,
// the key internal/llm read from the variable config/providers.json names
// (none for a local server that needs none), and no retries of its own.
//
// What differs between servers, and what this package does about it:
//
//   - A base URL without a path ("http://localhost:11434") gets "/v1":
//     compatible servers serve the API there. One with a path is kept.
//   - max_tokens: OpenAI itself takes max_completion_tokens (max_tokens is
//     refused by its newer models); compatible servers know max_tokens,
//     and may ignore the other, which would lift the bound a budget
//     reserved for. So the default base URL gets max_completion_tokens
//     and any other gets max_tokens.
//   - Usage in a stream: stream_options.include_usage is asked for, and
//     the usage arrives in the last chunk, whose choices are empty.
//   - An error inside a stream (data: {"error": ...}), an error body that
//     is a plain string, an answer whose content is an array of parts
//     instead of a string, an empty choices array: handled, and the last
//     two are not errors (an empty answer is an answer).
//   - A stream that ends without [DONE] and without a finish reason is a
//     provider failure, charged for the usage reported.
//
// Structured output is response_format json_schema (strict off: the
// schema is enforced here, with package schema, on every server alike).
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/control-plane/cp/internal/llm/provider"
)

// Name is the provider kind: its type in config/providers.json and its
// gen_ai.provider.name.
const Name = "openai"

// DefaultBaseURL is OpenAI's API.
const DefaultBaseURL = "https://api.openai.com/v1/"

// Config is what a provider is opened with.
type Config struct {
	BaseURL    string // "" means DefaultBaseURL
	APIKey     string // "" sends no Authorization header (a local server)
	HTTPClient *http.Client
	Retry      provider.Retry
}

// Provider is an OpenAI-compatible provider, safe for concurrent use.
type Provider struct {
	chat     sdk.ChatCompletionService
	key      string
	retry    provider.Retry
	official bool
}

// BaseURL returns base as the SDK is given it: DefaultBaseURL for "", "/v1/"
// added to one without a path, a final "/" added to any other.
func BaseURL(base string) (string, error) {
	if base == "" {
		return DefaultBaseURL, nil
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("openai: base_url must be an http or https URL")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/"
	} else if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u.String(), nil
}

// New returns a provider for cfg.
func New(cfg Config) (*Provider, error) {
	base, err := BaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	opts := []option.RequestOption{
		option.WithBaseURL(base),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	} else {
		opts = append(opts, option.WithHeaderDel("Authorization"))
	}
	return &Provider{chat: sdk.NewChatCompletionService(opts...), key: cfg.APIKey, retry: cfg.Retry,
		official: base == DefaultBaseURL}, nil
}

// Name returns "openai".
func (p *Provider) Name() string { return Name }

func (p *Provider) params(req *provider.Request) (sdk.ChatCompletionNewParams, *provider.Output, error) {
	if err := req.Check(); err != nil {
		return sdk.ChatCompletionNewParams{}, nil, err
	}
	params := sdk.ChatCompletionNewParams{Model: shared.ChatModel(req.Model)}
	if p.official {
		params.MaxCompletionTokens = sdk.Int(req.MaxTokens)
	} else {
		params.MaxTokens = sdk.Int(req.MaxTokens)
	}
	if req.Temperature != nil {
		params.Temperature = sdk.Float(*req.Temperature)
	}
	if req.System != "" {
		params.Messages = append(params.Messages, sdk.SystemMessage(req.System))
	}
	for _, m := range req.Conversation() {
		if m.Role == provider.RoleUser {
			params.Messages = append(params.Messages, sdk.UserMessage(m.Content))
		} else {
			params.Messages = append(params.Messages, sdk.AssistantMessage(m.Content))
		}
	}
	var out *provider.Output
	if req.Schema != nil {
		var err error
		if out, err = provider.CompileSchema(req.Schema); err != nil {
			return params, nil, err
		}
		params.ResponseFormat = sdk.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "output", Schema: provider.WireSchema(req.Schema)}}}
	}
	return params, out, nil
}

// exchange records what the server answered in one attempt, whatever the
// SDK makes of it: the status, the headers, and an error body.
type exchange struct {
	mu     sync.Mutex
	status int
	header http.Header
	body   []byte
}

// answered reports whether the server accepted the request (a 2xx):
// from then on it may bill tokens.
func (x *exchange) answered() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.status >= 200 && x.status < 300
}

func (x *exchange) middleware(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	res, err := next(req)
	if res != nil {
		x.mu.Lock()
		defer x.mu.Unlock()
		x.status, x.header = res.StatusCode, res.Header
		if res.StatusCode >= 400 && res.Body != nil {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
			res.Body.Close()
			x.body = b
			res.Body = io.NopCloser(bytes.NewReader(b))
		}
	}
	return res, err
}

// warmAnswer is a chat completion with every field Complete reads.
const warmAnswer = `{"id":"w","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"w"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

// Warm (provider.Warmer) encodes req's parameters as Complete would and
// decodes warmAnswer, so the SDK's encoders and decoders are built before
// the call; nothing is sent. The schema, if any, is left out: the
// parameters Warm builds share nothing with the call's.
func (p *Provider) Warm(req provider.Request) {
	req.Schema = nil
	params, _, err := p.params(&req)
	if err != nil {
		return
	}
	provider.WarmUp(params, &sdk.ChatCompletion{}, warmAnswer)
}

// Complete makes the call with POST {base}/chat/completions.
func (p *Provider) Complete(ctx context.Context, req provider.Request) (*provider.Response, error) {
	params, out, err := p.params(&req)
	if err != nil {
		return nil, err
	}
	resp, err := p.retry.Do(ctx, Name, func(ctx context.Context) (*provider.Response, error) {
		x := &exchange{}
		cc, err := p.chat.New(ctx, params, option.WithMiddleware(x.middleware))
		if err != nil {
			return nil, p.attemptError(err, x, provider.Usage{}, "", false)
		}
		r := &provider.Response{ID: cc.ID, Model: cc.Model,
			Usage:         provider.Usage{InputTokens: cc.Usage.PromptTokens, OutputTokens: cc.Usage.CompletionTokens},
			FinishReasons: []string{}}
		var text strings.Builder
		for _, c := range cc.Choices {
			if c.Index != 0 {
				continue
			}
			text.WriteString(content(c.Message.Content, c.Message.JSON.Content.Raw()))
			if c.FinishReason != "" {
				r.FinishReasons = append(r.FinishReasons, c.FinishReason)
			}
		}
		r.Text = text.String()
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	return resp, provider.Structured(out, resp)
}

// content is a message's text: the string, or the text parts of an array
// some compatible servers send instead (which the SDK hands over as the
// array's JSON text; raw, the field as it came, says which it was).
func content(s, raw string) string {
	if !strings.HasPrefix(strings.TrimSpace(raw), "[") {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal([]byte(raw), &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, part := range parts {
		if part.Type == "" || part.Type == "text" || part.Type == "output_text" {
			b.WriteString(part.Text)
		}
	}
	return b.String()
}

// Stream makes the call streamed, with stream_options.include_usage.
func (p *Provider) Stream(ctx context.Context, req provider.Request, onDelta func(provider.Delta) error) (*provider.Response, error) {
	params, out, err := p.params(&req)
	if err != nil {
		return nil, err
	}
	params.StreamOptions = sdk.ChatCompletionStreamOptionsParam{IncludeUsage: sdk.Bool(true)}
	resp, err := p.retry.Do(ctx, Name, func(ctx context.Context) (*provider.Response, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		x := &exchange{}
		stream := p.chat.NewStreaming(ctx, params, option.WithMiddleware(x.middleware))
		defer stream.Close()
		r := &provider.Response{FinishReasons: []string{}}
		var text strings.Builder
		streamed := false
		for stream.Next() {
			ch := stream.Current()
			if r.ID == "" {
				r.ID = ch.ID
			}
			if ch.Model != "" {
				r.Model = ch.Model
			}
			if ch.JSON.Usage.Valid() {
				r.Usage = provider.Usage{InputTokens: ch.Usage.PromptTokens, OutputTokens: ch.Usage.CompletionTokens}
			}
			for _, c := range ch.Choices {
				if c.Index != 0 {
					continue
				}
				if c.FinishReason != "" {
					r.FinishReasons = append(r.FinishReasons, c.FinishReason)
				}
				if c.Delta.Content == "" {
					continue
				}
				text.WriteString(c.Delta.Content)
				streamed = true
				if onDelta != nil {
					if err := onDelta(provider.Delta{Text: c.Delta.Content}); err != nil {
						u := r.Usage
						if u == (provider.Usage{}) {
							u = provider.EstimateUsage(&req, text.String())
						}
						return nil, &provider.AttemptError{Status: http.StatusOK, Message: err.Error(), Final: true,
							Err: errors.Join(provider.ErrStopped, err), Usage: u, Text: text.String()}
					}
				}
			}
		}
		if err := stream.Err(); err != nil {
			ae := p.attemptError(err, x, r.Usage, text.String(), streamed)
			// A connection cut or a caller gone: the server may have billed
			// what it had done. An error it sent (status >= 400) billed nothing.
			if ae.Usage == (provider.Usage{}) && x.answered() && ae.Status < 400 {
				ae.Usage = provider.EstimateUsage(&req, text.String())
			}
			return nil, ae
		}
		if r.Usage == (provider.Usage{}) && (len(r.FinishReasons) == 0 || streamed) {
			// usage comes only in the last chunk; a stream without it
			// (cut short, or a server that ignores include_usage) is
			// charged the bound.
			r.Usage = provider.EstimateUsage(&req, text.String())
		}
		if len(r.FinishReasons) == 0 {
			return nil, &provider.AttemptError{Status: http.StatusOK, Message: "the stream ended without a finish reason",
				Usage: r.Usage, Text: text.String(), Final: streamed, Broken: true}
		}
		r.Text = text.String()
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	return resp, provider.Structured(out, resp)
}

// attemptError turns an SDK error into an attempt's failure, from what the
// server answered (the exchange) rather than from the SDK's string, with
// the key redacted.
func (p *Provider) attemptError(err error, x *exchange, u provider.Usage, text string, final bool) *provider.AttemptError {
	ae := &provider.AttemptError{Usage: u, Text: text, Final: final}
	x.mu.Lock()
	ae.Status = x.status
	ae.RetryAfter = provider.RetryAfter(x.header, time.Now())
	body := x.body
	x.mu.Unlock()
	var apiErr *sdk.Error
	var streamErr interface{ Error() string }
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		ae.Message, ae.Err = err.Error(), err
		if ae.Status == http.StatusOK {
			ae.Status = 0
		}
	case ae.Status >= 400:
		ae.Message = bodyMessage(body, ae.Status)
	case errors.As(err, &apiErr):
		ae.Status, ae.Message = apiErr.StatusCode, apiErr.Message
	case ae.Status == http.StatusOK && strings.Contains(err.Error(), "error while streaming"):
		// data: {"error": {...}} inside a 200 stream: the server failed
		// part-way; a status of its own, if it gave one, says how.
		streamErr = err
		raw := strings.TrimPrefix(streamErr.Error(), "received error while streaming: ")
		ae.Status = streamStatus(raw)
		ae.Message = bodyMessage([]byte(`{"error":`+raw+`}`), ae.Status)
	case provider.Network(err):
		ae.Message, ae.Broken = "request failed: "+err.Error(), true
	default:
		// an answer that came but cannot be read: not the Chat Completions API
		ae.Message = "unreadable answer: " + err.Error()
		if ae.Status == 0 {
			ae.Status = http.StatusOK
		}
	}
	ae.Message = provider.Redact(ae.Message, p.key)
	return ae
}

// bodyMessage is the message of an error body: {"error":{"message":...}},
// {"error":"..."} (Ollama), {"message":...}, or the start of the text.
func bodyMessage(b []byte, status int) string {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(b, &v) == nil {
		var obj struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		}
		var s string
		switch {
		case json.Unmarshal(v.Error, &obj) == nil && obj.Message != "":
			if obj.Type != "" {
				return obj.Type + ": " + obj.Message
			}
			return obj.Message
		case json.Unmarshal(v.Error, &s) == nil && s != "":
			return s
		case v.Message != "":
			return v.Message
		}
	}
	if s := strings.TrimSpace(string(b)); s != "" && len(s) < 300 {
		return s
	}
	return http.StatusText(status)
}

// streamStatus reads a status from an in-stream error ({"code": 429} or
// a "code" or "type" naming one); 500 when it names none: the server
// failed, which a retry may mend.
func streamStatus(msg string) int {
	var v struct {
		Code any    `json:"code"`
		Type string `json:"type"`
	}
	if json.Unmarshal([]byte(msg), &v) == nil {
		if n, ok := v.Code.(float64); ok && n >= 400 && n < 600 {
			return int(n)
		}
		switch {
		case v.Code == "rate_limit_exceeded" || v.Type == "rate_limit_error":
			return 429
		case v.Type == "invalid_request_error":
			return 400
		}
	}
	return 500
}
