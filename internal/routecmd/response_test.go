package routecmd

import (
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/control-plane/cp/internal/schematest"
)

// TestResponsesConform holds every verb's result to the response schema
// capabilities.json names for it, as jsonschema/v6 judges it: a decision,
// a replay, the handlers.
func TestResponsesConform(t *testing.T) {
	root := newPlane(t, testPolicy)
	conform := func(verb, out string) {
		t.Helper()
		env, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
		require.NoError(t, err)
		s, err := schematest.Oracle("cp-route." + verb + ".response.json")
		require.NoError(t, err)
		require.NoError(t, s.Validate(env.(map[string]any)["result"]), "%s: %s", verb, out)
	}
	out := must(t, Run, `{"intent":"deploy","variables":{"x":1}}`, "--root", root, "--session", "SES-20261206-0a1b2c3d", "--wo", "WO-20261206-001")
	conform("route", out)
	conform("route", must(t, Run, `{"intent":"chat"}`, "--root", root))
	conform("route", must(t, Run, "", "--root", root, "--replay", gjson.Get(out, "result.decision_seq").String()))
	conform("list-handlers", must(t, Run, "", "list-handlers", "--root", root))
}
