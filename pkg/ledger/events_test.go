package ledger

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestReserved(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		want bool
	}{
		{"INSTALLED", true}, {"INSTALL_STARTED", true}, {"INSTALL_ANYTHING", true}, {"GENESIS", true},
		{"LLM_CALL", true}, {"WO_NEW", true}, {"TURN", true}, {"GATE_PASSED", true}, {"AUTHZ_DENIED", true},
		{"ROUTE_DECISION", true}, {"FRAMEWORK_REGISTERED", true}, {"TRUST_CHANGED", true},
		{"TOOL_CALL", false}, {"SESSION_START", false}, {"INSTALLEDX", false}, {"TURNS", false}, {"", false},
		{"installed", true}, {" INSTALLED", true}, {"Llm_Call\n", true}, {"tool_call", false},
	} {
		if got := Reserved(tc.typ); got != tc.want {
			t.Errorf("Reserved(%q) = %v, want %v", tc.typ, got, tc.want)
		}
	}
}

// TestEventsComplete holds the catalogue complete: every event type a tool
// writes in the source (EventType: "X", or the gate verdicts) is reserved.
func TestEventsComplete(t *testing.T) {
	re := regexp.MustCompile(`(?:EventType:\s*|event, decision :?= |event, decision = )"([A-Z0-9_]+)"`)
	root := filepath.Join("..", "..")
	seen := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			seen++
			if !Reserved(string(m[1])) {
				t.Errorf("%s writes event type %s, which the event catalogue (Events) does not list", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 10 {
		t.Fatalf("found only %d event types in the source: the scan is broken", seen)
	}
}
