package installcmd

import (
	"os"
	"testing"

	"github.com/control-plane/cp/internal/cli"
)

// TestCapabilities holds cp-install's --capabilities document to its verb table.
func TestCapabilities(t *testing.T) {
	doc, err := os.ReadFile("../../cmd/cp-install/capabilities.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.CheckCapabilities(tool, doc); err != nil {
		t.Fatal(err)
	}
}
