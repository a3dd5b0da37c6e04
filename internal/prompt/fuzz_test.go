package prompt

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts holds together: an
// id, a semver version, a template name it can digest, limits within the
// schema's bounds, no duplicates, and a variables schema that validates.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"prompt_pack_id":"PRM-A","version":"1.0.0","template":"t.txt","variables":{"type":"object","required":["x"]},"providers":["mock"],"models":["m"],"max_tokens":5}`,
		`{"prompt_pack_id":"PRM-A","version":"1.0.0","template":"t.txt","variables":{"$defs":{"a":{"type":"string"}},"properties":{"x":{"$ref":"#/$defs/a"}}},"providers":["mock"],"models":["m"],"max_tokens":5,"description":"d"}`,
		`{"prompt_pack_id":"PRM-A","version":"1.0.0","template":"pack.json","variables":{},"providers":["mock"],"models":["m"],"max_tokens":5}`,
		`{"prompt_pack_id":"PRM-A","version":"1.0.0","template":"t","variables":{"$ref":"https://example.com/x"},"providers":["a","a"],"models":["m"],"max_tokens":5}`,
		`{"prompt_pack_id":"PRM-A","version":"01.0.0","template":"../t","variables":[],"providers":[],"models":[""],"max_tokens":0}`,
		`{} {}`, `[`, `null`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sp, err := Parse(b)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("an error that is not *Error: %T %v", err, err)
			}
			return
		}
		if !ValidID(sp.PromptPackID) || sp.MaxTokens < 1 || len(sp.Providers) == 0 || len(sp.Models) == 0 || sp.vars == nil {
			t.Fatalf("accepted %q as %+v", b, sp)
		}
		if _, err := Digest("sha256:"+hex64, sp.Template, "sha256:"+hex64); err != nil {
			t.Fatalf("accepted template name %q that cannot be digested", sp.Template)
		}
		if sp.Template == PackFile {
			t.Fatal("accepted pack.json as its own template")
		}
		seen := map[string]bool{}
		for _, p := range sp.Providers {
			if seen[p] {
				t.Fatalf("provider %q twice", p)
			}
			seen[p] = true
		}
		// The round trip parses to the same pack.
		rb, err := json.Marshal(sp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(rb); err != nil {
			t.Fatalf("re-encoded %s does not parse: %v", rb, err)
		}
	})
}

const hex64 = "0000000000000000000000000000000000000000000000000000000000000000"

// FuzzRender: a pack whose template is fuzzed renders or fails with a
// coded error; never a panic, never "<no value>", never past the cap.
func FuzzRender(f *testing.F) {
	for _, s := range []string{"Hello {{.name}}", "{{.missing}}", "{{range .list}}{{.}}{{end}}", "{{index .list 5}}", "{{call .name}}", "{{template \"x\"}}"} {
		f.Add(s, "Ada")
	}
	sp, err := Parse([]byte(`{"prompt_pack_id":"PRM-F","version":"1.0.0","template":"t.txt","variables":{"type":"object","properties":{"name":{"type":"string"}}},"providers":["mock"],"models":["m"],"max_tokens":5}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tmpl, name string) {
		tt, err := ParseTemplate("t.txt", []byte(tmpl))
		if err != nil {
			return
		}
		p := &Pack{ID: "PRM-F", vars: sp.vars, text: tt, MaxTokens: 5}
		r, err := p.Render(map[string]any{"name": name, "list": []any{"a"}})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("an error that is not *Error: %T %v", err, err)
			}
			return
		}
		if len(r.Text) > MaxTextBytes {
			t.Fatalf("%d bytes rendered", len(r.Text))
		}
	})
}

// FuzzValidID holds the hand-written ValidID to the rule it replaces:
// ^PRM-[A-Z0-9-]+$, at most 128 bytes.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"PRM-A", "PRM-", "PRM-GREET-001", "prm-x", "PRM-a", "PRM-X\n", "xPRM-X", "PRM-" + strings.Repeat("A", 124), "PRM-" + strings.Repeat("A", 125)} {
		f.Add(s)
	}
	re := regexp.MustCompile(`^PRM-[A-Z0-9-]+$`)
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := ValidID(id), len(id) <= 128 && re.MatchString(id); got != want {
			t.Fatalf("ValidID(%q) = %v, want %v", id, got, want)
		}
	})
}
