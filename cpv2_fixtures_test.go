package cp_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// TestCPv2ScriptFixtures keeps the copies in testdata/script/cpv2.txtar
// the same as the CPv2 fixtures under testdata/cpv2 that the packages'
// tests read (fw/X is testdata/cpv2/frameworks/X, specs/X is
// testdata/cpv2/specs/X; the others are the script's own).
func TestCPv2ScriptFixtures(t *testing.T) {
	a, err := txtar.ParseFile("testdata/script/cpv2.txtar")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range a.Files {
		var src string
		switch {
		case strings.HasPrefix(f.Name, "fw/"):
			src = filepath.Join("testdata/cpv2/frameworks", strings.TrimPrefix(f.Name, "fw/"))
		case strings.HasPrefix(f.Name, "specs/"):
			src = filepath.Join("testdata/cpv2/specs", strings.TrimPrefix(f.Name, "specs/"))
		}
		want, err := os.ReadFile(src)
		if src == "" || os.IsNotExist(err) {
			continue // the script's own
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if string(want) != string(f.Data) {
			t.Errorf("%s in cpv2.txtar differs from %s", f.Name, src)
		}
	}
	if n < 15 {
		t.Fatalf("only %d fixtures compared", n)
	}
}
