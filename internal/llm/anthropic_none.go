//go:build noanthropic

package llm

import (
	"fmt"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm/provider"
)

// anthropicType is the providers.json type of the Anthropic provider.
const anthropicType = "anthropic"

// AnthropicLinked reports whether this build links the Anthropic SDK
// (false when built with -tags noanthropic).
const AnthropicLinked = false

// openAnthropic refuses: this build does not link the Anthropic SDK. The
// call is never answered by another provider.
func openAnthropic(p config.Provider, _ string, _ Options) (provider.Provider, error) {
	return nil, &Error{code: CodeProviderUnknown, Provider: p.ID,
		Message: fmt.Sprintf("provider %s: type anthropic is not in this build (built with -tags noanthropic: rebuild without it to call Anthropic)", p.ID)}
}
