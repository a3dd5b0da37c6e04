package routecmd

import (
	"testing"

	"github.com/control-plane/cp/internal/clitest"
)

// TestCapabilities holds cp-route's --capabilities document to its verb
// table.
func TestCapabilities(t *testing.T) {
	clitest.Capabilities(t, tool(&router{}), "../../cmd/cp-route/capabilities.json")
}
