package plane

import (
	"regexp"
	"testing"
)

// FuzzValidSessionID holds ValidSessionID to the pattern DESIGN.md §13
// gives (and the schemas hold a session_id to).
func FuzzValidSessionID(f *testing.F) {
	re := regexp.MustCompile(`^SES-[0-9]{8}-[0-9a-f]{8}$`)
	for _, s := range []string{"SES-20261206-0a0b0c0d", "SES-20261206-0A0B0C0D", "SES-2026120-60a0b0c0d", "SES-20261206-0a0b0c0", "SES-20261206-0a0b0c0d\n",
		"SES-20261206_0a0b0c0d", "ses-20261206-0a0b0c0d", "SES-2026120a-0a0b0c0d", "SES-20261206-0a0b0c0g", "", "SES-20261206-0a0b0c0dé"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidSessionID(s), re.MatchString(s); got != want {
			t.Fatalf("ValidSessionID(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}
