package plane_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNoPostgresLinksNoPgx: built with -tags nopostgres, no binary links
// pgx (whose packages' init and size cost every process ~0.4 ms): every
// use of pgstore in what the binaries link must sit behind the tag, as
// internal/plane's does (postgres.go). Without the tag they do link it.
func TestNoPostgresLinksNoPgx(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over ./cmd/...")
	}
	deps := func(tags string) string {
		t.Helper()
		cmd := exec.Command("go", "list", "-deps", "-tags", tags, "github.com/control-plane/cp/cmd/...")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "go list: %s", stderr.String())
		return string(out)
	}
	var linked []string
	for _, p := range strings.Fields(deps("nopostgres")) {
		if strings.HasPrefix(p, "github.com/jackc/") || p == "github.com/control-plane/cp/pkg/ledger/pgstore" {
			linked = append(linked, p)
		}
	}
	require.Empty(t, linked, "linked by a binary built with -tags nopostgres (go list -deps -tags nopostgres ./cmd/... | grep jackc; go mod why)")
	require.Contains(t, deps(""), "github.com/jackc/pgx/v5\n")
}
