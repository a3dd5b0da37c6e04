// Package anthropic is the provider of kind anthropic (DESIGN.md §9): the
// Messages API through the official SDK, github.com/anthropics/anthropic-sdk-go/v2
// (API version 2026-10-21).
//
// The client is built without the SDK's environment defaults: its key is
// the one internal/llm read from the variable config/providers.json names,
// its base URL the configured one, and no profile, federation token or
// ANTHROPIC_* variable of the process is consulted. The SDK's retries are
// off (provider.Retry counts them instead).
//
// Structured output uses the API's structured-output feature
// (output_config.format, a json_schema); the answer is validated on return
// with package schema. The Messages API of this version has no
// temperature: a request that sets one is refused (LLM_REQUEST_INVALID)
// rather than silently sent without it.
//
// Input tokens are the sum of input_tokens, cache_creation_input_tokens
// and cache_read_input_tokens (all billed). A stream that ends without
// message_stop is a provider failure, charged for the usage its events
// reported.
package anthropic

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/control-plane/cp/internal/llm/provider"
)

// Name is the provider kind: its type in config/providers.json and its
// gen_ai.provider.name.
const Name = "anthropic"

// DefaultBaseURL is where the Messages API is when base_url is not set.
const DefaultBaseURL = "https://api.anthropic.com"

// Config is what a provider is opened with.
type Config struct {
	BaseURL string // "" means DefaultBaseURL
	APIKey  string // required
	// HTTPClient is the client the SDK sends with (default
	// http.DefaultClient's transport with no overall timeout: Retry.Timeout
	// bounds each attempt).
	HTTPClient *http.Client
	Retry      provider.Retry
}

// Provider is an Anthropic provider, safe for concurrent use.
type Provider struct {
	client sdk.Client
	key    string
	retry  provider.Retry
}

// New returns a provider for cfg.
func New(cfg Config) (*Provider, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("anthropic: no API key")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	timeout := cfg.Retry.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	c := sdk.NewClient(
		option.WithoutEnvironmentDefaults(),
		option.WithAPIKey(cfg.APIKey),
		option.WithBaseURL(base),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
		option.WithRequestTimeout(timeout),
	)
	return &Provider{client: c, key: cfg.APIKey, retry: cfg.Retry}, nil
}

// Name returns "anthropic".
func (p *Provider) Name() string { return Name }

func (p *Provider) params(req *provider.Request) (sdk.MessageNewParams, *provider.Output, error) {
	if err := req.Check(); err != nil {
		return sdk.MessageNewParams{}, nil, err
	}
	if req.Temperature != nil {
		return sdk.MessageNewParams{}, nil, provider.RequestInvalid(Name, "the Anthropic Messages API (version 2026-10-21) takes no temperature; leave it unset for this provider")
	}
	params := sdk.MessageNewParams{Model: sdk.Model(req.Model), MaxTokens: req.MaxTokens}
	if req.System != "" {
		params.System = []sdk.TextBlockParam{{Text: req.System}}
	}
	for _, m := range req.Conversation() {
		if m.Role == provider.RoleUser {
			params.Messages = append(params.Messages, sdk.NewUserMessage(sdk.NewTextBlock(m.Content)))
		} else {
			params.Messages = append(params.Messages, sdk.NewAssistantMessage(sdk.NewTextBlock(m.Content)))
		}
	}
	var out *provider.Output
	if req.Schema != nil {
		var err error
		if out, err = provider.CompileSchema(req.Schema); err != nil {
			return params, nil, err
		}
		params.OutputConfig = sdk.OutputConfigParam{Format: sdk.JSONOutputFormatParam{Schema: provider.WireSchema(req.Schema)}}
	}
	return params, out, nil
}

// warmAnswer is a message with every field Complete reads.
const warmAnswer = `{"id":"w","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"w"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`

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
	provider.WarmUp(params, &sdk.Message{}, warmAnswer)
}

// Complete makes the call with POST /v1/messages.
func (p *Provider) Complete(ctx context.Context, req provider.Request) (*provider.Response, error) {
	params, out, err := p.params(&req)
	if err != nil {
		return nil, err
	}
	resp, err := p.retry.Do(ctx, Name, func(ctx context.Context) (*provider.Response, error) {
		msg, err := p.client.Messages.New(ctx, params)
		if err != nil {
			return nil, p.attemptError(err, provider.Usage{}, "", false)
		}
		r := &provider.Response{ID: msg.ID, Model: string(msg.Model), Usage: usage(msg.Usage), FinishReasons: []string{}}
		var text strings.Builder
		for _, b := range msg.Content {
			if b.Type == "text" {
				text.WriteString(b.Text)
			}
		}
		r.Text = text.String()
		if msg.StopReason != "" {
			r.FinishReasons = []string{string(msg.StopReason)}
		}
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	return resp, provider.Structured(out, resp)
}

// Stream makes the call with POST /v1/messages and "stream": true.
func (p *Provider) Stream(ctx context.Context, req provider.Request, onDelta func(provider.Delta) error) (*provider.Response, error) {
	params, out, err := p.params(&req)
	if err != nil {
		return nil, err
	}
	resp, err := p.retry.Do(ctx, Name, func(ctx context.Context) (*provider.Response, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // closes the connection when the caller stops reading
		stream := p.client.Messages.NewStreaming(ctx, params)
		defer stream.Close()
		r := &provider.Response{FinishReasons: []string{}}
		var text strings.Builder
		streamed, stopped := false, false
		for stream.Next() {
			ev := stream.Current()
			switch ev.Type {
			case "message_start":
				r.ID, r.Model = ev.Message.ID, string(ev.Message.Model)
				r.Usage = maxUsage(r.Usage, usage(ev.Message.Usage))
			case "content_block_delta":
				if ev.Delta.Type != "text_delta" || ev.Delta.Text == "" {
					continue
				}
				text.WriteString(ev.Delta.Text)
				streamed = true
				if onDelta != nil {
					if err := onDelta(provider.Delta{Text: ev.Delta.Text}); err != nil {
						return nil, &provider.AttemptError{Status: http.StatusOK, Message: err.Error(), Final: true,
							Err: errors.Join(provider.ErrStopped, err), Usage: r.Usage, Text: text.String()}
					}
				}
			case "message_delta":
				u := provider.Usage{InputTokens: ev.Usage.InputTokens + ev.Usage.CacheCreationInputTokens + ev.Usage.CacheReadInputTokens,
					OutputTokens: ev.Usage.OutputTokens}
				r.Usage = maxUsage(r.Usage, u)
				if ev.Delta.StopReason != "" {
					r.FinishReasons = []string{string(ev.Delta.StopReason)}
				}
			case "message_stop":
				stopped = true
			}
		}
		if err := stream.Err(); err != nil {
			return nil, p.attemptError(err, r.Usage, text.String(), streamed)
		}
		if !stopped {
			return nil, &provider.AttemptError{Status: http.StatusOK, Message: "the stream ended before message_stop",
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

// errorStatus is the HTTP status an error type stands for, for an error
// that arrives inside a 200 stream.
var errorStatus = map[string]int{
	"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402, "permission_error": 403,
	"not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
	"timeout_error": 504, "overloaded_error": 529,
}

// attemptError turns an SDK error into an attempt's failure: the status,
// the retry-after, and the message of the provider's error body (never the
// SDK's own string, which names the request), with the key redacted.
func (p *Provider) attemptError(err error, u provider.Usage, text string, final bool) *provider.AttemptError {
	ae := &provider.AttemptError{Usage: u, Text: text, Final: final, Err: err}
	var apiErr *sdk.Error
	switch {
	case errors.As(err, &apiErr):
		ae.Status = apiErr.StatusCode
		if s, ok := errorStatus[string(apiErr.Type())]; ok && (ae.Status == 0 || ae.Status == http.StatusOK) {
			ae.Status = s
		}
		if apiErr.Response != nil {
			ae.RetryAfter = provider.RetryAfter(apiErr.Response.Header, time.Now())
		}
		ae.Message = apiErr.Message
		if t := string(apiErr.Type()); t != "" {
			ae.Message = t + ": " + ae.Message
		}
		if ae.Message == "" {
			ae.Message = http.StatusText(ae.Status)
		}
		ae.Err = nil // the SDK error holds the request: not kept
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		ae.Message = err.Error()
	case provider.Network(err):
		ae.Message = "request failed: " + err.Error()
		ae.Err, ae.Broken = nil, true
	default:
		// an answer that came but cannot be read: not the Messages API
		ae.Status, ae.Message, ae.Err = http.StatusOK, "unreadable answer: "+err.Error(), nil
	}
	ae.Message = provider.Redact(ae.Message, p.key)
	return ae
}

func usage(u sdk.Usage) provider.Usage {
	return provider.Usage{InputTokens: u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens, OutputTokens: u.OutputTokens}
}

// maxUsage keeps the larger of each count: a stream's events report
// cumulative usage, some of it more than once.
func maxUsage(a, b provider.Usage) provider.Usage {
	return provider.Usage{InputTokens: max(a.InputTokens, b.InputTokens), OutputTokens: max(a.OutputTokens, b.OutputTokens)}
}
