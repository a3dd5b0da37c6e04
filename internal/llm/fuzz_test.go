package llm_test

import (
	"encoding/json"
	"testing"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm"
	"github.com/control-plane/cp/internal/llm/provider"
)

// FuzzProviders holds the providers.json loader's rule together with the
// gateway's use of it: every file config.Validate accepts resolves, for
// each of its providers and models, to a target whose prices parsed and
// whose reservation for a large request is a cost, not an overflow; and
// Open never needs the network to fail or succeed.
func FuzzProviders(f *testing.F) {
	f.Add(config.DefaultProviders)
	f.Add([]byte(`{"default_provider":"c","providers":[{"id":"c","type":"anthropic","models":[{"id":"claude","input_usd_per_mtok":"3","output_usd_per_mtok":"15","max_tokens":8192}]},{"id":"o","type":"openai","base_url":"http://localhost:11434","models":[{"id":"llama3","input_usd_per_mtok":"0.000001","output_usd_per_mtok":"999999999.999999"}]}],"caps":{"plane_micro_usd":1,"providers":{"o":2},"subjects":{"w":3}}}`))
	f.Add([]byte(`{"default_provider":"m","providers":[{"id":"m","type":"mock","base_url":"http://x","models":[{"id":"a","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if config.Validate(config.ProvidersPath, b) != nil {
			return
		}
		var d config.ProvidersDoc
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("valid, yet does not decode: %v", err)
		}
		if _, err := llm.Resolve(&d, "", ""); err != nil {
			t.Fatalf("the default provider does not resolve: %v", err)
		}
		for _, p := range d.Providers {
			for _, m := range p.Models {
				tg, err := llm.Resolve(&d, p.ID, m.ID)
				if err != nil {
					t.Fatalf("%s/%s: %v", p.ID, m.ID, err)
				}
				req := provider.Request{Model: m.ID, Prompt: "hello", MaxTokens: 1 << 20}
				if _, err := tg.MaxCost(&req); err != nil {
					t.Fatalf("%s/%s: reservation: %v", p.ID, m.ID, err)
				}
				if _, err := llm.Open(tg, llm.Options{Getenv: func(string) string { return "" }}); err != nil {
					var e *llm.Error
					if !errorsAs(err, &e) || e.Code() != llm.CodeKeyMissing {
						t.Fatalf("%s: Open: %v", p.ID, err)
					}
				}
			}
		}
	})
}
