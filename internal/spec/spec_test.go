package spec

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"lib/**", "lib/a.py", true},
		{"lib/**", "lib/x/y/z.py", true},
		{"lib/**", "lib", true}, // ** matches zero segments
		{"lib/**", "libx/a.py", false},
		{"config/*.json", "config/a.json", true},
		{"config/*.json", "config/sub/a.json", false},
		{"config/demo.json", "config/demo.json", true},
		{"**/x.md", "a/b/x.md", true},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "a/b/c/y", false},
		{"a/?.md", "a/b.md", true},
		{"a/[bc].md", "a/d.md", false},
	} {
		require.Equal(t, tc.want, Match(tc.pattern, tc.name), "%s ~ %s", tc.pattern, tc.name)
	}
}

func TestParse(t *testing.T) {
	s, err := Parse([]byte(`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["lib/**"]}`), false)
	require.NoError(t, err)
	require.Equal(t, "1.0.0", s.Version)
	require.Equal(t, "active", s.Status)
	require.True(t, s.Covers("lib/a/b.py"))
	require.False(t, s.Covers("config/a.json"))

	y, err := Parse([]byte("spec_id: SPEC-1\nframework_id: FMWK-1\nassets: [\"lib/**\"]\n"), true)
	require.NoError(t, err)
	require.Equal(t, s, y)

	for _, bad := range []struct {
		doc  string
		yaml bool
	}{
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":[]}`, false},
		{`{"spec_id":"spec-1","framework_id":"FMWK-1","assets":["a"]}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["../a"]}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["/a"]}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a//b"]}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a/[b"]}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a"],"extra":1}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a"],"version":"v1"}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a"],"status":"gone"}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a"]} {}`, false},
		{"spec_id: SPEC-1\nframework_id: FMWK-1\nassets: [a]\nunknown: 1\n", true},
	} {
		_, err := Parse([]byte(bad.doc), bad.yaml)
		require.Error(t, err, "%s", bad.doc)
		require.Equal(t, "SPEC_INVALID", err.(*Error).Code())
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["lib/**"]}`), false)
	f.Add([]byte("spec_id: SPEC-1\nframework_id: FMWK-1\nassets: [\"lib/**\"]\n"), true)
	f.Fuzz(func(t *testing.T, doc []byte, isYAML bool) {
		s, err := Parse(doc, isYAML)
		if err != nil {
			return
		}
		for _, p := range s.Assets {
			if p == "" || p[0] == '/' {
				t.Fatalf("accepted pattern %q", p)
			}
			_ = s.Covers(p)
		}
	})
}

func FuzzMatch(f *testing.F) {
	f.Add("lib/**/x", "lib/a/b/x")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if checkPattern(pattern) != nil {
			return
		}
		if Match(pattern, name) && !Match(pattern+"/**", name) {
			t.Fatalf("%q matches %q but %q does not", pattern, name, pattern+"/**")
		}
	})
}

func TestVersionMustBeFull(t *testing.T) {
	for _, v := range []string{"1", "1.2", "1.2.3+build", "v1.2.3"} {
		_, err := Parse([]byte(`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a"],"version":"`+v+`"}`), false)
		require.Error(t, err, v)
	}
}
