package ledgercmd

import (
	"os"
	"testing"

	"github.com/control-plane/cp/internal/cli"
)

// TestCapabilities holds cp-ledger's --capabilities document to its verb table.
func TestCapabilities(t *testing.T) {
	doc, err := os.ReadFile("../../cmd/cp-ledger/capabilities.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.CheckCapabilities(tool(&writers{}), doc); err != nil {
		t.Fatal(err)
	}
}
