package manifest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.2.0", "1.2.0", 0},
		{"1.2.0", "1.10.0", -1},
		{"2.0.0", "1.99.99", 1},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-2", "1.0.0-10", -1},
		{"1.0.0-rc.1", "1.0.0-rc.1", 0},
		{"0.0.1", "0.0.0", 1},
		// Not versions: below every version, equal to each other.
		{"v1.0.0", "0.0.0", -1},
		{"1.0.0+build", "0.0.1", -1},
		{"1.0", "junk", 0},
		{"0.0.0-0", "", 1},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, CompareVersions(tt.a, tt.b), "CompareVersions(%q, %q)", tt.a, tt.b)
		require.Equal(t, -tt.want, CompareVersions(tt.b, tt.a), "CompareVersions(%q, %q)", tt.b, tt.a)
	}
}

func TestParseDependency(t *testing.T) {
	good := map[string]Dependency{
		"PKG-A":                       {"PKG-A", ""},
		"PKG-KERNEL-001@>=1.0.0":      {"PKG-KERNEL-001", ">=1.0.0"},
		"PKG-A@<2.0.0":                {"PKG-A", "<2.0.0"},
		"PKG-A@=1.2.3":                {"PKG-A", "=1.2.3"},
		"PKG-A@^1.2.0":                {"PKG-A", "^1.2.0"},
		"PKG-A@~1.2.0":                {"PKG-A", "~1.2.0"},
		"PKG-A@>1.2.0":                {"PKG-A", ">1.2.0"},
		"PKG-A@<=1.2.0-rc.1":          {"PKG-A", "<=1.2.0-rc.1"},
		"PKG-A@>=1.0.0,<2.0.0":        {"PKG-A", ">=1.0.0,<2.0.0"},
		"PKG-A@>=1.0.0,<2.0.0,=1.5.0": {"PKG-A", ">=1.0.0,<2.0.0,=1.5.0"},
	}
	for s, want := range good {
		got, err := ParseDependency(s)
		require.NoError(t, err, s)
		require.Equal(t, want, got, s)
		require.Equal(t, s, got.String())
	}
	bad := []string{
		"", "PKG-", "PKG-a", "pkg-A", "SPEC-A", "PKG-A ", " PKG-A", "PKG-A@", "PKG-A@1.0.0",
		"PKG-A@>=1.0", "PKG-A@>=v1.0.0", "PKG-A@>=1.0.0+b", "PKG-A@>=01.0.0", "PKG-A@>=1.0.0,",
		"PKG-A@,>=1.0.0", "PKG-A@>=1.0.0 ,<2.0.0", "PKG-A@>= 1.0.0", "PKG-A@==1.0.0", "PKG-A@!=1.0.0",
		"PKG-A@>=1.0.0||<0.5.0", "PKG-A@*", "PKG-A@latest", "PKG-A@@>=1.0.0", "PKG-A@>=1.0.0@x",
	}
	for _, s := range bad {
		_, err := ParseDependency(s)
		require.Error(t, err, "%q", s)
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		dep     string
		allowed []string
		refused []string
	}{
		{"PKG-A", []string{"0.0.0", "1.0.0", "9.9.9-rc.1"}, []string{"", "v1.0.0", "1.0", "1.0.0+b"}},
		{"PKG-A@>=1.2.0", []string{"1.2.0", "1.2.1", "3.0.0"}, []string{"1.1.9", "1.2.0-rc.1"}},
		{"PKG-A@>1.2.0", []string{"1.2.1", "1.3.0-rc.1"}, []string{"1.2.0", "1.2.0-rc.1"}},
		{"PKG-A@<2.0.0", []string{"1.9.9", "0.0.1", "2.0.0-rc.1"}, []string{"2.0.0", "2.0.1"}},
		{"PKG-A@<2.0.0-0", []string{"1.9.9"}, []string{"2.0.0-0", "2.0.0-rc.1", "2.0.0"}},
		{"PKG-A@<=2.0.0", []string{"2.0.0", "2.0.0-rc.1"}, []string{"2.0.1"}},
		{"PKG-A@=1.2.3", []string{"1.2.3"}, []string{"1.2.4", "1.2.3-rc.1", "1.2.2"}},
		{"PKG-A@=1.2.3-rc.1", []string{"1.2.3-rc.1"}, []string{"1.2.3"}},
		{"PKG-A@^1.2.0", []string{"1.2.0", "1.2.5", "1.9.0", "1.3.0-rc.1"}, []string{"1.1.9", "1.2.0-rc.1", "2.0.0-rc.1", "2.0.0"}},
		{"PKG-A@^0.2.3", []string{"0.2.3", "0.2.9"}, []string{"0.2.2", "0.3.0-0", "0.3.0", "1.0.0"}},
		{"PKG-A@^0.0.3", []string{"0.0.3"}, []string{"0.0.4-0", "0.0.4", "0.1.0"}},
		{"PKG-A@^0.0.0", []string{"0.0.0"}, []string{"0.0.1"}},
		{"PKG-A@^1.2.0-rc.1", []string{"1.2.0-rc.1", "1.2.0-rc.2", "1.2.0"}, []string{"1.2.0-beta", "2.0.0"}},
		{"PKG-A@~1.2.0", []string{"1.2.0", "1.2.9"}, []string{"1.3.0-0", "1.3.0", "1.1.0"}},
		{"PKG-A@~0.0.1", []string{"0.0.1", "0.0.9"}, []string{"0.1.0"}},
		{"PKG-A@^9.0.0", []string{"9.99.0"}, []string{"10.0.0"}},
		{"PKG-A@^99999999999999999999.0.0", []string{"99999999999999999999.1.0"}, []string{"100000000000000000000.0.0"}},
		{"PKG-A@~1.99999999999999999999.0", []string{"1.99999999999999999999.5"}, []string{"1.100000000000000000000.0"}},
		{"PKG-A@>=1.0.0,<2.0.0", []string{"1.0.0", "1.5.0", "2.0.0-rc.1"}, []string{"0.9.0", "2.0.0"}},
		{"PKG-A@>=2.0.0,<1.0.0", nil, []string{"0.5.0", "1.5.0", "2.5.0"}},
	}
	for _, tt := range tests {
		d, err := ParseDependency(tt.dep)
		require.NoError(t, err, tt.dep)
		for _, v := range tt.allowed {
			require.True(t, d.Allows(v), "%s allows %s", tt.dep, v)
		}
		for _, v := range tt.refused {
			require.False(t, d.Allows(v), "%s refuses %s", tt.dep, v)
		}
	}
	// A hand-made Dependency with a broken constraint allows nothing.
	require.False(t, Dependency{PackageID: "PKG-A", Constraint: ">=1"}.Allows("2.0.0"))
}

func TestIncrement(t *testing.T) {
	for in, want := range map[string]string{"0": "1", "9": "10", "199": "200", "99": "100", "1234": "1235"} {
		require.Equal(t, want, increment(in))
	}
}
