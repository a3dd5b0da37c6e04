package config_test

import (
	"encoding/json"
	"testing"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm/price"
)

// FuzzValidate holds Validate to never panicking, and to accepting only
// what it can load: a valid JSON file decodes again without error.
func FuzzValidate(f *testing.F) {
	for _, p := range config.Paths {
		f.Add(uint8(len(p)), config.Defaults()[p])
	}
	f.Add(uint8(0), []byte(`{"work_orders":"required"}`))
	f.Add(uint8(1), []byte("forbid (principal, action, resource);"))
	f.Add(uint8(2), []byte(`{"default_provider":"o","providers":[{"id":"o","type":"openai","models":[{"id":"m","input_usd_per_mtok":"1.5","output_usd_per_mtok":"2"}]}],"caps":{"providers":{"o":1}}}`))
	f.Add(uint8(3), []byte(`{"routes":[{"when":"true","handler":"h","mode":"tools_first"}],"default_route":{"handler":"h","mode":"llm_assisted"}}`))
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		p := config.Paths[int(which)%len(config.Paths)]
		if err := config.Validate(p, b); err != nil {
			return
		}
		if err := config.Validate(p, b); err != nil {
			t.Fatalf("%s: valid once, then %v", p, err)
		}
		if p == config.ProvidersPath {
			providersPrice(t, b)
		}
	})
}

// providersPrice holds a providers.json that validates to prices that
// parse and cost: every model's rates, for any usage up to a billion
// tokens, give a cost (no overflow) without a float in sight.
func providersPrice(t *testing.T, b []byte) {
	var d config.ProvidersDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("valid providers.json does not decode: %v", err)
	}
	for _, p := range d.Providers {
		for _, m := range p.Models {
			r, err := price.ParseRates(m.InputUSD, m.OutputUSD)
			if err != nil {
				t.Fatalf("valid providers.json, price does not parse: %v", err)
			}
			if _, err := price.Cost(1e9, 1e9, r); err != nil {
				t.Fatalf("a billion tokens at %v: %v", r, err)
			}
		}
	}
}
