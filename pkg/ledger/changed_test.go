package ledger

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestChangedOf(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want Changed
	}{
		{`{"added":["a"],"modified":[],"removed":["b","c"]}`, true, Changed{Added: []string{"a"}, Removed: []string{"b", "c"}}},
		{`{"modified":["m"]}`, true, Changed{Modified: []string{"m"}}},
		{`{"added":null}`, true, Changed{}},
		{`{}`, true, Changed{}},
		{`{"added":["a",1]}`, false, Changed{}},
		{`{"added":"a"}`, false, Changed{}},
		{`{"extra":[]}`, false, Changed{}},
		{`["a"]`, false, Changed{}},
		{`"a"`, false, Changed{}},
	} {
		var v any
		require.NoError(t, json.Unmarshal([]byte(tc.in), &v), tc.in)
		c, ok := ChangedOf(map[string]any{ChangedKey: v})
		require.Equal(t, tc.ok, ok, tc.in)
		if ok {
			require.Equal(t, slices.Concat(tc.want.Added, tc.want.Modified, tc.want.Removed), c.Paths(), tc.in)
		}
	}
	_, ok := ChangedOf(map[string]any{})
	require.False(t, ok, "no changed set: not one that changed nothing")
	c := Changed{Added: []string{"a"}, Modified: []string{"m"}, Removed: []string{"r"}}
	for p, want := range map[string]string{"a": "added", "m": "modified", "r": "removed", "x": ""} {
		require.Equal(t, want, c.Change(p), p)
	}
}

// FuzzChangedOf: whatever a changed set holds, reading it never panics,
// and one read as valid says the same after its metadata form is written
// and read again (what an append writes and a reader parses).
func FuzzChangedOf(f *testing.F) {
	f.Add([]byte(`{"added":["a"],"modified":[],"removed":["b"]}`))
	f.Add([]byte(`{"added":[1]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		c, ok := ChangedOf(map[string]any{ChangedKey: v})
		if !ok {
			return
		}
		out, err := json.Marshal(c.Metadata())
		require.NoError(t, err)
		var back any
		require.NoError(t, json.Unmarshal(out, &back))
		c2, ok := ChangedOf(map[string]any{ChangedKey: back})
		require.True(t, ok)
		require.Equal(t, c.Paths(), c2.Paths())
		for _, p := range c.Paths() {
			require.NotEmpty(t, c.Change(p))
		}
	})
}
