package gate

import (
	"testing"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/internal/testenv"
)

// TestMain keeps the checkpoint keys of the planes these tests bootstrap out
// of the home directory (testenv.Main), and starts a throwaway PostgreSQL
// for G6 over a tier whose ledger is in a database (pgtest).
func TestMain(m *testing.M) { testenv.Main(pgtest.M(m)) }
