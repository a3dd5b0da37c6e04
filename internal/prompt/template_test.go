package prompt

import (
	"strings"
	"testing"
)

// TestParseTemplateBounds: templates whose loops could run without
// writing (and so without meeting the output cap) are refused.
func TestParseTemplateBounds(t *testing.T) {
	for _, ok := range []string{
		"Hello {{.name}}",
		"{{range .items}}- {{.}}\n{{end}}",
		"{{range $i, $x := .items}}{{$i}} {{$x}}{{else}}none{{end}}",
		"{{range .a}}{{range .b}}{{range .c}}x{{end}}{{end}}{{end}}",
		"{{with .a}}{{range .}}{{.}}{{end}}{{end}}",
		`{{define "row"}}{{.}}{{end}}{{range .items}}{{.}}{{end}}{{template "row" .name}}`,
	} {
		if _, err := ParseTemplate("t.txt", []byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"{{range 1000000000}}{{end}}": "not a number",
		"{{range len .s}}{{end}}":     "function's result",
		"{{range (len .s)}}{{end}}":   "not a number or a function's result",
		"{{range .a}}{{range .b}}{{range .c}}{{range .d}}{{end}}{{end}}{{end}}{{end}}": "nest more than 3",
		`{{define "a"}}{{range .x}}{{template "a" .}}{{end}}{{end}}`:                   "inside a range",
		"{{if .x}}{{range 5}}{{end}}{{end}}":                                           "not a number",
		"{{.name":                                                                      "does not parse",
	} {
		_, err := ParseTemplate("t.txt", []byte(bad))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error holding %q", bad, err, want)
		}
	}
}
