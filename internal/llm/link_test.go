package llm

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoAnthropicLinksNoSDK: built with -tags noanthropic, no binary links
// the Anthropic SDK (nor what it brings: yaml, invopop/jsonschema, the
// OpenTelemetry API), which the default build links into cp-llm, cp-route
// and cp-mcp.
func TestNoAnthropicLinksNoSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over ./cmd/...")
	}
	deps := func(tags string) string {
		t.Helper()
		cmd := exec.Command("go", "list", "-deps", "-tags", tags, "github.com/control-plane/cp/cmd/...")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "go list: %s", stderr.String())
		return string(out)
	}
	var linked []string
	for _, p := range strings.Fields(deps("noanthropic")) {
		if strings.HasPrefix(p, "github.com/anthropics/") {
			linked = append(linked, p)
		}
	}
	require.Empty(t, linked, "linked by a binary built with -tags noanthropic (go list -deps -tags noanthropic ./cmd/... | grep anthropics; go mod why)")
	require.Contains(t, deps(""), "github.com/anthropics/anthropic-sdk-go/v2\n")
}
