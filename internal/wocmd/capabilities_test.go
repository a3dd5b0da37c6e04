package wocmd

import (
	"testing"

	"github.com/control-plane/cp/internal/clitest"
)

// TestCapabilities holds cp-wo's --capabilities document to its verb table.
func TestCapabilities(t *testing.T) {
	clitest.Capabilities(t, tool(), "../../cmd/cp-wo/capabilities.json")
}
