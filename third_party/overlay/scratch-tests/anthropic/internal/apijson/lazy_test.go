package apijson_test

import (
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2/internal/apijson"

	_ "github.com/anthropics/anthropic-sdk-go/v2"
	_ "github.com/anthropics/anthropic-sdk-go/v2/shared"
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
