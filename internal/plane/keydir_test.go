package plane

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidPlaneName(t *testing.T) {
	for name, want := range map[string]bool{"a": true, "plane-0f3a": true, "ops-1": true, strings.Repeat("a", 63): true,
		"": false, "-a": false, "A": false, "a/b": false, "..": false, "a b": false, "a_b": false, strings.Repeat("a", 64): false, "é": false} {
		require.Equal(t, want, ValidPlaneName(name), "%q", name)
	}
}
