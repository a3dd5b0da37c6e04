package framework

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const doc = `---
framework_id: FMWK-001
title: Tools
version: 1.2.0
---
# Tools
- MUST declare   every tool.
* **MUST** log every call.
- SHOULD be small.
  - MUST be nested too.
`

func TestParse(t *testing.T) {
	f, err := Parse([]byte(doc))
	require.NoError(t, err)
	require.Equal(t, "FMWK-001", f.ID)
	require.Equal(t, "active", f.Status)
	require.Equal(t, []string{"declare every tool.", "log every call.", "be nested too."}, f.Invariants)

	for _, bad := range []string{
		"", "# no metadata\n", "---\nframework_id: FMWK-1\ntitle: t\nversion: 1.0.0\n",
		"---\nframework_id: fmwk-1\ntitle: t\nversion: 1.0.0\n---\n",
		"---\nframework_id: FMWK-1\nversion: 1.0.0\n---\n",
		"---\nframework_id: FMWK-1\ntitle: t\nversion: 1\n---\n",
		"---\nframework_id: FMWK-1\ntitle: t\nversion: 1.0.0\nstatus: gone\n---\n",
		"---\nframework_id: FMWK-1\ntitle: t\ntitle: u\nversion: 1.0.0\n---\n",
		"---\nframework_id: FMWK-1\ntitle: t\nversion: 1.0.0\nowner: x\n---\n",
		"---\nframework_id FMWK-1\n---\n",
	} {
		_, err := Parse([]byte(bad))
		require.Error(t, err, "%q", bad)
		require.Equal(t, "FRAMEWORK_INVALID", err.(*Error).Code())
	}
}

func TestRemoved(t *testing.T) {
	old := &Framework{Invariants: []string{"a", "b", "c"}}
	next := &Framework{Invariants: []string{"c", "a", "d"}}
	require.Equal(t, []string{"b"}, Removed(old, next))
	require.Equal(t, []string{"d"}, Removed(next, old))
	require.Empty(t, Removed(old, old))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(doc))
	f.Fuzz(func(t *testing.T, b []byte) {
		fw, err := Parse(b)
		if err != nil {
			return
		}
		if fw.ID == "" || fw.Title == "" || fw.Version == "" {
			t.Fatalf("accepted a document without id, title or version: %+v", fw)
		}
		if len(Removed(fw, fw)) != 0 {
			t.Fatal("a framework removes invariants from itself")
		}
	})
}
