package schema

import (
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

const base = "https://example.test/schemas/"

func compile(t *testing.T, doc string) (*Schema, error) {
	t.Helper()
	fsys := fstest.MapFS{"s.json": {Data: []byte(doc)}}
	return NewCompiler(fsys, base).Compile("s.json")
}

// A pattern is compiled on its first match, but a bad one is still a
// compile error of the schema, and a match is still exact.
func TestPatternLazy(t *testing.T) {
	_, err := compile(t, `{"type":"string","pattern":"^SES-[0-9"}`)
	require.ErrorContains(t, err, "pattern")

	s, err := compile(t, `{"type":"object","properties":{"id":{"type":"string","pattern":"^SES-[0-9]{8}-[0-9a-f]{8}$"}}}`)
	require.NoError(t, err)
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"SES-20261206-0a1b2c3d", true},
		{"SES-20261206-0A1B2C3D", false},
		{"SES-2026120-0a1b2c3d", false},
		{"xSES-20261206-0a1b2c3d", false},
		{"SES-20261206-0a1b2c3d\n", false},
	} {
		require.Equal(t, tc.ok, s.Valid(map[string]any{"id": tc.id}), "%q", tc.id)
	}
	require.True(t, s.Valid(map[string]any{}), "a member that is absent is not matched")

	// Validations from several goroutines (a stream's workers) share it.
	s, err = compile(t, `{"type":"string","pattern":"^[a-z]+$"}`)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			require.Equal(t, i%2 == 0, s.Valid(map[bool]string{true: "abc", false: "ABC"}[i%2 == 0]))
		})
	}
	wg.Wait()
}
