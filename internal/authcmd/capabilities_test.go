package authcmd

import (
	"testing"

	"github.com/control-plane/cp/internal/clitest"
)

// TestCapabilities holds cp-auth's --capabilities document to its verb table.
func TestCapabilities(t *testing.T) {
	clitest.Capabilities(t, tool(), "../../cmd/cp-auth/capabilities.json")
}
