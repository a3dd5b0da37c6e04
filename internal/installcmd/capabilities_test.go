package installcmd

import (
	"testing"

	"github.com/control-plane/cp/internal/clitest"
)

// TestCapabilities holds cp-install's --capabilities document to its verb table.
func TestCapabilities(t *testing.T) {
	clitest.Capabilities(t, tool, "../../cmd/cp-install/capabilities.json")
}
