package ledgercmd

import (
	"testing"

	"github.com/control-plane/cp/internal/clitest"
)

// TestCapabilities holds cp-ledger's --capabilities document to its verb table.
func TestCapabilities(t *testing.T) {
	clitest.Capabilities(t, tool(&writers{}), "../../cmd/cp-ledger/capabilities.json")
}
