package prompt_test

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/prompt/prompttest"
)

// BenchmarkLoadRender is what a governed call pays for its prompt: Load
// (the registry row, both files read through os.Root and digested,
// pack.json parsed and its variables schema compiled, the template
// parsed) and Render (variables validated, text rendered and hashed).
// BenchmarkLoadRenderBare, its baseline in the same run, only reads and
// hashes the two files.
func BenchmarkLoadRender(b *testing.B) {
	root := benchPlane(b)
	vars := map[string]any{"name": "Ada", "tone": "warm"}
	b.ResetTimer()
	for b.Loop() {
		p, err := prompt.Load(root, "PRM-GREET-001")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Render(vars); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadRenderBare(b *testing.B) {
	root := benchPlane(b)
	dir := filepath.Join(root, "governed_prompts", "PRM-GREET-001")
	b.ResetTimer()
	for b.Loop() {
		for _, f := range []string{"pack.json", "template.txt"} {
			data, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				b.Fatal(err)
			}
			sha256.Sum256(data)
		}
	}
}

func benchPlane(b *testing.B) string {
	b.Helper()
	root, key := prompttest.Plane(b)
	prompttest.Publish(b, root, key, "PKG-PROMPTS-001", prompttest.Source(b, "PKG-PROMPTS-001", "1.0.0",
		greetFiles("1.0.0", "Say hello to {{.name}}{{if .tone}} in a {{.tone}} tone{{end}}.\n")))
	return root
}
