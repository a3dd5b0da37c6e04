package gatecmd

import (
	"os"
	"testing"

	"github.com/control-plane/cp/internal/cli"
)

// TestCapabilities holds cp-gate's --capabilities document to its verb table.
func TestCapabilities(t *testing.T) {
	doc, err := os.ReadFile("../../cmd/cp-gate/capabilities.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.CheckCapabilities(tool, doc); err != nil {
		t.Fatal(err)
	}
}
