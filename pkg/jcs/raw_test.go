package jcs

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRaw holds a Raw to what it stands for: embedded, it gives the bytes
// Marshal gives for the value it was made from, and the depth limit holds
// across the embedding.
func TestRaw(t *testing.T) {
	inner := map[string]any{"b": []any{json.Number("1.0"), "x\"y"}, "a": map[string]any{"z": nil, "é": true}}
	r, err := MarshalRaw(inner)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Marshal(map[string]any{"k": inner, "j": 1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Marshal(map[string]any{"k": r, "j": 1})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("embedded Raw: got %s, want %s", got, want)
	}
	if err := Check(got); err != nil {
		t.Fatalf("not canonical: %v", err)
	}
	if b, _ := Marshal([]any{Raw{}}); string(b) != "[null]" {
		t.Fatalf("zero Raw: %s", b)
	}
	if b, _ := json.Marshal(map[string]any{"k": r}); !strings.Contains(string(b), string(r.Bytes())) {
		t.Fatalf("encoding/json: %s", b)
	}

	// Depth: a value nested 999 deep embeds one level down, not two.
	deep := any("x")
	for range 999 {
		deep = []any{deep}
	}
	dr, err := MarshalRaw(deep)
	if err != nil {
		t.Fatal(err)
	}
	if dr.depth != 999 {
		t.Fatalf("depth %d, want 999", dr.depth)
	}
	if _, err := Marshal([]any{dr}); err != nil {
		t.Fatalf("999 inside one: %v", err)
	}
	_, errRaw := Marshal([]any{[]any{dr}})
	_, errPlain := Marshal([]any{[]any{deep}})
	if errRaw == nil || errPlain == nil {
		t.Fatalf("999 inside two: raw %v, plain %v: both must refuse", errRaw, errPlain)
	}
	if n := nesting([]byte(`{"a":"[[{\"","b":[{}]}`)); n != 3 {
		t.Fatalf("nesting skips strings: %d", n)
	}
}
