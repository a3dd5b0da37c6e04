// Package llm is the one gateway to model providers (DESIGN.md §9). This
// first step holds its provider layer: which provider and model a request
// goes to (Resolve, from config/providers.json), what the call may cost at
// most and did cost (Target.MaxCost, Target.Cost, in integer micro-USD,
// package price), and the provider itself, opened with its key from the
// gateway's environment (Open). The providers are one package per kind
// beside this one: internal/llm/anthropic, internal/llm/openai,
// internal/llm/mock, behind internal/llm/provider's interface. Prompt packs,
// budgets and evidence (LLM_RESERVED, LLM_CALL) build on it in cp-llm.
//
// Keys. A provider's API key is read only from the environment of the
// process that runs the gateway: from the variable its api_key_env names,
// else ANTHROPIC_API_KEY (anthropic) or OPENAI_API_KEY (openai). It is never
// read from the plane, never written to a ledger, a log or an error. In
// the enforced setup of DESIGN.md §8 that process is the service user's,
// so workers, who hold tokens and no keys, cannot go around the gateway.
//
// The built-in configuration (no config package installed) lists only the
// mock provider, so a plane without keys has a working, offline gateway. A
// configured provider whose key variable is unset fails closed
// (LLM_KEY_MISSING): a request is never answered by another provider than
// the one it resolved to. An openai provider with a base_url (a local
// Ollama or llama.cpp server) needs no key; OpenAI's own API does.
//
// This package links both provider SDKs: only the gateway's binaries
// (cp-llm, and cp-route and cp-mcp through it) may import it. Built with
// -tags noanthropic (make build TAGS=noanthropic) it does not link the
// Anthropic SDK, which costs every process that links it 1-2 ms of
// start-up (a binary 36 MB larger, and its packages' init): a provider of
// type anthropic is then refused (LLM_PROVIDER_UNKNOWN, naming the tag),
// never answered by another.
package llm

import (
	"fmt"
	"net/http"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm/mock"
	"github.com/control-plane/cp/internal/llm/openai"
	"github.com/control-plane/cp/internal/llm/price"
	"github.com/control-plane/cp/internal/llm/provider"
)

// Codes of this package's errors (internal/cli: LLM_PROVIDER_UNKNOWN and
// LLM_MODEL_UNKNOWN 1, LLM_KEY_MISSING 4).
const (
	CodeProviderUnknown = "LLM_PROVIDER_UNKNOWN"
	CodeModelUnknown    = "LLM_MODEL_UNKNOWN"
	CodeKeyMissing      = "LLM_KEY_MISSING"
)

// Error is a request the configuration cannot serve.
type Error struct {
	code     string
	Provider string
	Model    string
	KeyEnv   string // for LLM_KEY_MISSING: the variable's name, never its value
	Message  string
}

func (e *Error) Error() string { return e.Message }

// Code returns the error's code.
func (e *Error) Code() string { return e.code }

// ErrorDetails names the provider, the model and the key's variable.
func (e *Error) ErrorDetails() map[string]any {
	d := map[string]any{"provider_id": e.Provider}
	if e.Model != "" {
		d["model"] = e.Model
	}
	if e.KeyEnv != "" {
		d["key_env"] = e.KeyEnv
	}
	return d
}

// ErrorHint says where providers are configured and keys come from.
func (e *Error) ErrorHint() string {
	if e.code == CodeKeyMissing {
		return "set " + e.KeyEnv + " in the environment of the process that runs the gateway (the service user's, never a worker's)"
	}
	return "providers and their models' prices are in config/providers.json, installed by a config package (cp-pkg init-config)"
}

// Target is the provider and model a request resolved to, with the
// model's prices.
type Target struct {
	Provider config.Provider
	Model    config.Model
	Rates    price.Rates
}

// Resolve picks the provider (providerID, else the configuration's
// default_provider) and the model (model, else the provider's first) a
// request goes to. A provider or model the configuration does not list is
// refused: a model without a price cannot be budgeted.
func Resolve(doc *config.ProvidersDoc, providerID, model string) (*Target, error) {
	if providerID == "" {
		providerID = doc.DefaultProvider
	}
	p := doc.Provider(providerID)
	if p == nil {
		return nil, &Error{code: CodeProviderUnknown, Provider: providerID,
			Message: fmt.Sprintf("provider %q is not in config/providers.json", providerID)}
	}
	var m *config.Model
	for i := range p.Models {
		if model == "" || p.Models[i].ID == model {
			m = &p.Models[i]
			break
		}
	}
	if m == nil {
		return nil, &Error{code: CodeModelUnknown, Provider: providerID, Model: model,
			Message: fmt.Sprintf("model %q of provider %s has no price in config/providers.json", model, providerID)}
	}
	rates, err := price.ParseRates(m.InputUSD, m.OutputUSD)
	if err != nil {
		// config validated them; a drift here is a bug, never a free call.
		return nil, &config.Error{Path: config.ProvidersPath, Reason: err.Error(), Err: err}
	}
	return &Target{Provider: *p, Model: *m, Rates: rates}, nil
}

// Check refuses a request the target's model does not allow: max_tokens
// above the model's configured max_tokens.
func (t *Target) Check(req *provider.Request) error {
	if t.Model.MaxTokens > 0 && req.MaxTokens > t.Model.MaxTokens {
		return provider.RequestInvalid(t.Provider.Type, "max_tokens %d is above the %d config/providers.json allows for %s",
			req.MaxTokens, t.Model.MaxTokens, t.Model.ID)
	}
	return nil
}

// MaxCost is the largest cost in micro-USD the request could reach, the
// amount a budget reserves before the call: max_tokens output tokens and
// provider.InputTokenBound input tokens at the model's prices, rounded up.
func (t *Target) MaxCost(req *provider.Request) (int64, error) {
	return price.Cost(provider.InputTokenBound(req), req.MaxTokens, t.Rates)
}

// Cost is what a call that used u cost in micro-USD, rounded up.
func (t *Target) Cost(u provider.Usage) (int64, error) {
	return price.Cost(u.InputTokens, u.OutputTokens, t.Rates)
}

// KeyEnv is the environment variable that holds p's key: its api_key_env,
// else the kind's usual one ("" for mock).
func KeyEnv(p config.Provider) string {
	if p.APIKeyEnv != "" {
		return p.APIKeyEnv
	}
	switch p.Type {
	case anthropicType:
		return "ANTHROPIC_API_KEY"
	case openai.Name:
		return "OPENAI_API_KEY"
	}
	return ""
}

// Options are how Open reaches the outside.
type Options struct {
	// Getenv reads the gateway process's environment (os.Getenv; tests
	// pass their own). Required for anthropic and openai.
	Getenv func(string) string
	// HTTPClient sends the SDKs' requests (default: a new http.Client).
	HTTPClient *http.Client
	// Retry is the one retry loop (zero: provider.Retry's defaults).
	Retry provider.Retry
}

// Open returns the provider of t, its key read through opts.Getenv.
func Open(t *Target, opts Options) (provider.Provider, error) {
	p := t.Provider
	key := ""
	if env := KeyEnv(p); env != "" && opts.Getenv != nil {
		key = opts.Getenv(env)
	}
	missing := &Error{code: CodeKeyMissing, Provider: p.ID, KeyEnv: KeyEnv(p),
		Message: fmt.Sprintf("provider %s: %s is not set in the gateway's environment", p.ID, KeyEnv(p))}
	switch p.Type {
	case mock.Name:
		return mock.Provider{}, nil
	case anthropicType:
		if key == "" {
			return nil, missing
		}
		return openAnthropic(p, key, opts)
	case openai.Name:
		if key == "" && p.BaseURL == "" {
			return nil, missing
		}
		return openai.New(openai.Config{BaseURL: p.BaseURL, APIKey: key, HTTPClient: opts.HTTPClient, Retry: opts.Retry})
	}
	return nil, &Error{code: CodeProviderUnknown, Provider: p.ID, Message: fmt.Sprintf("provider %s: unknown type %q", p.ID, p.Type)}
}
