package apijson_test

import (
	"testing"

	"github.com/openai/openai-go/v3/internal/apijson"

	_ "github.com/openai/openai-go/v3"
	_ "github.com/openai/openai-go/v3/conversations"
	_ "github.com/openai/openai-go/v3/live"
	_ "github.com/openai/openai-go/v3/realtime"
	_ "github.com/openai/openai-go/v3/responses"
	_ "github.com/openai/openai-go/v3/webhooks"
)

// Every registration recorded at init builds (upstream checked each at init:
// a registration naming a missing field panics here instead).
func TestLazyRegistriesBuild(t *testing.T) {
	validators, unions := apijson.RegisteredTypes()
	t.Logf("%d types with field validators, %d unions", len(validators), len(unions))
	if len(validators) == 0 || len(unions) == 0 {
		t.Fatal("no registrations recorded")
	}
	for _, typ := range validators {
		if apijson.FieldValidatorCount(typ) == 0 {
			t.Errorf("%v: no validators built", typ)
		}
		if apijson.FieldValidatorCount(typ) == 0 {
			t.Errorf("%v: second read lost them", typ)
		}
	}
	for _, typ := range unions {
		if !apijson.IsUnion(typ) {
			t.Errorf("%v: union lost", typ)
		}
	}
}
