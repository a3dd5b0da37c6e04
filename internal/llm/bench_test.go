package llm_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	asdk "github.com/anthropics/anthropic-sdk-go/v2"
	aopt "github.com/anthropics/anthropic-sdk-go/v2/option"
	osdk "github.com/openai/openai-go/v3"
	oopt "github.com/openai/openai-go/v3/option"

	"github.com/control-plane/cp/internal/llm/anthropic"
	"github.com/control-plane/cp/internal/llm/mock"
	"github.com/control-plane/cp/internal/llm/openai"
	"github.com/control-plane/cp/internal/llm/price"
	"github.com/control-plane/cp/internal/llm/provider"
)

// BenchmarkProviderOverSDK pairs each provider's Complete with the same
// SDK call made bare, against the same local server in the same run: the
// difference is what the provider layer adds (request checks, the retry
// loop, the attempt record, error shaping).
func BenchmarkProviderOverSDK(b *testing.B) {
	anth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"m","type":"message","role":"assistant","model":"claude-test","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}`)
	}))
	defer anth.Close()
	oai := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"chat.completion","model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}`)
	}))
	defer oai.Close()
	ctx := context.Background()
	req := provider.Request{Model: "m", Prompt: "hi", MaxTokens: 16}

	b.Run("anthropic/sdk", func(b *testing.B) {
		c := asdk.NewClient(aopt.WithoutEnvironmentDefaults(), aopt.WithAPIKey("k"), aopt.WithBaseURL(anth.URL), aopt.WithMaxRetries(0))
		params := asdk.MessageNewParams{Model: "m", MaxTokens: 16, Messages: []asdk.MessageParam{asdk.NewUserMessage(asdk.NewTextBlock("hi"))}}
		for b.Loop() {
			if _, err := c.Messages.New(ctx, params); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("anthropic/provider", func(b *testing.B) {
		p, err := anthropic.New(anthropic.Config{BaseURL: anth.URL, APIKey: "k"})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := p.Complete(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("openai/sdk", func(b *testing.B) {
		c := osdk.NewChatCompletionService(oopt.WithBaseURL(oai.URL+"/v1/"), oopt.WithAPIKey("k"), oopt.WithMaxRetries(0))
		params := osdk.ChatCompletionNewParams{Model: "m", MaxTokens: osdk.Int(16), Messages: []osdk.ChatCompletionMessageParamUnion{osdk.UserMessage("hi")}}
		for b.Loop() {
			if _, err := c.New(ctx, params); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("openai/provider", func(b *testing.B) {
		p, err := openai.New(openai.Config{BaseURL: oai.URL, APIKey: "k"})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := p.Complete(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mock", func(b *testing.B) {
		for b.Loop() {
			if _, err := (mock.Provider{}).Complete(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCost(b *testing.B) {
	r, err := price.ParseRates("3", "15")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := price.Cost(123456, 7890, r); err != nil {
			b.Fatal(err)
		}
	}
}
