package prompt_test

import (
	"testing"

	"github.com/control-plane/cp/internal/testenv"
)

// TestMain keeps the checkpoint keys of the planes these tests bootstrap out
// of the home directory (testenv.Main).
func TestMain(m *testing.M) { testenv.Main(m) }
