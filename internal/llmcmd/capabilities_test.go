package llmcmd

import (
	"testing"

	"github.com/control-plane/cp/internal/clitest"
)

// TestCapabilities holds cp-llm's --capabilities document to its verb table.
func TestCapabilities(t *testing.T) {
	clitest.Capabilities(t, tool(), "../../cmd/cp-llm/capabilities.json")
}
