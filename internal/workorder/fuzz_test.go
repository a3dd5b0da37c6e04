package workorder

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"testing"
	"time"
)

// FuzzParse: the work-order reader never panics, and what it accepts has
// one payload hash whatever its layout (the hash is of the canonical form,
// and the canonical form reads back to the same work order).
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"wo_id":"WO-20261206-001","type":"investigation","title":"t","description":"","tier":"ho1","scope":{"paths":["lib/**"]},"budget":{"turns":1,"llm_cost_usd":1.50},"expires_at":"2099-01-01T00:00:00Z","created_by":"ops","created_at":"2026-12-06T00:00:00Z"}`))
	f.Add([]byte(`{"wo_id":"WO-20261206-001","wo_id":"WO-20261206-002"}`))
	f.Add([]byte(`{"scope":{"paths":["../x"]}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, h, err := Parse(b)
		if err != nil {
			return
		}
		canon, err := w.Canonical()
		if err != nil {
			t.Fatalf("accepted but does not encode: %v", err)
		}
		w2, h2, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form refused: %v\n%s", err, canon)
		}
		if h != h2 || h != PayloadHash(canon) {
			t.Fatalf("hash %s of the input, %s of its canonical form", h, h2)
		}
		if w2.ID != w.ID || w2.ExpiresAt != w.ExpiresAt {
			t.Fatalf("canonical form reads back differently")
		}
	})
}

// FuzzPattern: CheckPattern and Match never panic, the compiled Matcher
// answers as Scope.Covers, and a pattern accepted matches itself when it
// holds no metacharacter.
func FuzzPattern(f *testing.F) {
	for _, s := range []string{"lib/**", "a/*.go", "[", "**/x", "a\\b", "/abs", "a//b"} {
		f.Add(s, "lib/a/b.go")
	}
	f.Fuzz(func(t *testing.T, p, name string) {
		if CheckPattern(p) != nil {
			return
		}
		s := Scope{Paths: []string{p, "lib/fixed/**"}}
		if got, want := s.Matcher().Covers(name), s.Covers(name); got != want {
			t.Fatalf("Matcher.Covers(%q) = %v, Scope.Covers = %v, for %q", name, got, want, p)
		}
		if !containsAny(p, "*?[\\") && !Match(p, p) {
			t.Fatalf("%q does not match itself", p)
		}
	})
}

func containsAny(s, chars string) bool {
	for _, c := range chars {
		for _, d := range s {
			if c == d {
				return true
			}
		}
	}
	return false
}

// FuzzValidID holds ValidID to the pattern it replaced,
// ^WO-([0-9]{8})-([0-9]{3})$ with a real date and NNN from 001.
func FuzzValidID(f *testing.F) {
	re := regexp.MustCompile(`^WO-([0-9]{8})-([0-9]{3})$`)
	for _, s := range []string{"WO-20261206-001", "WO-20261206-000", "WO-20261306-001", "WO-20260229-001", "WO-20240229-001", "WO-20261206-01",
		"WO-20261206-0011", "WO-20261206-001\n", "wo-20261206-001", "WO-2026120a-001", "WO-20261206_001", "", "WO-20261206-00é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := false
		if m := re.FindStringSubmatch(s); m != nil && m[2] != "000" {
			_, err := time.Parse("20060102", m[1])
			want = err == nil
		}
		if got := ValidID(s); got != want {
			t.Fatalf("ValidID(%q) = %v, want %v", s, got, want)
		}
	})
}

// FuzzKnownOf: what knownOf decodes (a work order file of the plain
// shape), encoding/json's strict decode, which readKnown used alone
// before, decodes the same; what it declines is left to that decoder.
func FuzzKnownOf(f *testing.F) {
	f.Add([]byte(`{"wo_id":"WO-20261206-001","type":"investigation","title":"t","description":"","tier":"ho1","scope":{"paths":["lib/**"],"packages":[],"event_types":["TURN"]},"budget":{"turns":1,"llm_cost_usd":1.50,"llm_tokens":-0,"llm_calls":7},"expires_at":"2099-01-01T00:00:00Z","created_by":"ops","created_at":"2026-12-06T00:00:00Z"}`))
	f.Add([]byte(`{"wo_id":"WO-20261206-001","budget":{"turns":1e3}}`))
	f.Add([]byte(`{"WO_ID":"x","scope":{"paths":null}}`))
	f.Add([]byte(`{"budget":{"llm_cost_usd":"1.5"},"title":"\u00e9\ud83d\ude00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, ok := knownOf(b)
		if !ok {
			return
		}
		var want WorkOrder
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		d.DisallowUnknownFields()
		if err := d.Decode(&want); err != nil {
			t.Fatalf("knownOf accepted what encoding/json refuses (%v): %s", err, b)
		}
		if !reflect.DeepEqual(*w, want) {
			t.Fatalf("knownOf %+v, encoding/json %+v, of %s", *w, want, b)
		}
	})
}
