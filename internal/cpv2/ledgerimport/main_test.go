package ledgerimport

import (
	"testing"

	"github.com/control-plane/cp/internal/testenv"
)

// TestMain keeps the plane keys the tests make out of the home directory
// (testenv.Main).
func TestMain(m *testing.M) { testenv.Main(m) }
