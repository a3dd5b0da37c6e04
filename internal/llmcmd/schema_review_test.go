package llmcmd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHostileOutputSchema: a caller's structured-output schema whose $refs
// loop without consuming the answer is refused before anything is
// reserved (LLM_SCHEMA_UNSUPPORTED, exit 3); it used to compile, and the
// mock's answer checked against it overflowed the goroutine's stack, a
// fatal error that no recover catches (this in-process Run, and cp-mcp
// serve, died with it). One whose branches multiply is answered with
// LLM_OUTPUT_INVALID in bounded time, never hangs.
func TestHostileOutputSchema(t *testing.T) {
	p := newPlane(t)
	for _, schema := range []string{
		`{"$ref":"#"}`,
		`{"type":"object","allOf":[{"$ref":"#"}]}`,
		`{"not":{"not":{"$ref":"#"}}}`,
	} {
		code, out, _ := p.call(`{"prompt":"x","schema":` + schema + `}`)
		require.Equal(t, 3, code, "%s: %s", schema, out)
		require.Equal(t, "LLM_SCHEMA_UNSUPPORTED", errCode(t, out), schema)
	}
	require.Empty(t, p.entries("LLM_RESERVED"), "nothing reserved for a refused schema")

	var defs []string
	for i := range 40 {
		defs = append(defs, fmt.Sprintf(`"d%d":{"oneOf":[{"$ref":"#/$defs/d%d"},{"$ref":"#/$defs/d%d"}]}`, i, i+1, i+1))
	}
	defs = append(defs, `"d40":{"type":"string"}`)
	code, out, _ := p.call(`{"prompt":"x","schema":{"$defs":{` + strings.Join(defs, ",") + `},"$ref":"#/$defs/d0"}}`)
	require.NotEqual(t, 0, code, out)
	require.Equal(t, "LLM_OUTPUT_INVALID", errCode(t, out), out)
}
