package gate

import (
	"io/fs"
	"testing"

	"github.com/stretchr/testify/require"
)

// modeProblem: the receipt's mode, and never a setuid, setgid or write bit.
func TestModeProblem(t *testing.T) {
	for _, tc := range []struct {
		got, want fs.FileMode
		problem   string // "" when the mode is right
	}{
		{0o444, 0o444, ""},
		{0o555, 0o555, ""},
		{0o555, 0o444, "mode 0555; its receipt records 0444"},
		{0o444, 0o555, "mode 0444; its receipt records 0555"},
		{0o644, 0o444, "mode 0644 is writable"},
		{0o575, 0o555, "mode 0575 is writable"},
		{0o555 | fs.ModeSetuid, 0o555, "mode 4555 has the setuid or setgid bit"},
		{0o555 | fs.ModeSetgid, 0o555, "mode 2555 has the setuid or setgid bit"},
		{0o444 | fs.ModeSticky, 0o444, "mode 1444; its receipt records 0444"},
	} {
		got := modeProblem(tc.got, tc.want)
		if tc.problem == "" {
			require.Empty(t, got, "%v", tc.got)
		} else {
			require.Contains(t, got, tc.problem, "%v", tc.got)
		}
	}
}
