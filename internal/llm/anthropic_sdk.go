//go:build !noanthropic

package llm

import (
	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm/anthropic"
	"github.com/control-plane/cp/internal/llm/provider"
)

// anthropicType is the providers.json type of the Anthropic provider.
const anthropicType = anthropic.Name

// AnthropicLinked reports whether this build links the Anthropic SDK
// (false when built with -tags noanthropic).
const AnthropicLinked = true

func openAnthropic(p config.Provider, key string, opts Options) (provider.Provider, error) {
	return anthropic.New(anthropic.Config{BaseURL: p.BaseURL, APIKey: key, HTTPClient: opts.HTTPClient, Retry: opts.Retry})
}
