package jcs

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// addSeeds adds every text the table tests know, and the node-made
// documents, to f's seed corpus.
func addSeeds(f *testing.F) {
	for _, s := range canonicalTexts {
		f.Add([]byte(s))
	}
	for _, tt := range nonCanonicalTexts {
		f.Add([]byte(tt.in))
	}
	for _, tt := range decodeErrors {
		f.Add([]byte(tt.in))
	}
	file, err := os.Open("testdata/documents.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	for n := 0; sc.Scan() && n < 50; n++ {
		var pair [2]string
		if err := json.Unmarshal(sc.Bytes(), &pair); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(pair[0]))
		f.Add([]byte(pair[1]))
	}
}

// FuzzCanonicalize checks that Canonicalize is idempotent, that its output
// passes Check and means what its input meant, that it agrees with Marshal
// of Decode, and that what Decode accepts encoding/json accepts too.
func FuzzCanonicalize(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkConsistent(t, data)
		out, err := Canonicalize(data)
		v, derr := Decode(data)
		if derr == nil && !json.Valid(data) {
			t.Fatalf("Decode accepts %q, encoding/json does not", data)
		}
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Offset < 0 || e.Offset > len(data) {
				t.Fatalf("Canonicalize(%q): error %#v", data, err)
			}
			return
		}
		if derr != nil {
			t.Fatalf("Canonicalize(%q) = %q, but Decode fails: %v", data, out, derr)
		}
		if err := Check(out); err != nil {
			t.Fatalf("Check(Canonicalize(%q) = %q): %v", data, out, err)
		}
		again, err := Canonicalize(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("Canonicalize not idempotent on %q: %q, %v", out, again, err)
		}
		if m, err := Marshal(v); err != nil || string(m) != string(out) {
			t.Fatalf("Marshal(Decode(%q)) = %q, %v; Canonicalize gave %q", data, m, err, out)
		}
		w, err := Decode(out)
		if err != nil || !sameValue(v, w) {
			t.Fatalf("Decode(%q) = %#v, %v; differs from Decode(%q) = %#v", out, w, err, data, v)
		}
	})
}

// FuzzCheck checks that Check(x) == nil exactly when Canonicalize(x)
// returns x, and that errors point into x.
func FuzzCheck(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkConsistent(t, data)
		if err := Check(data); err != nil {
			if e, ok := err.(*Error); !ok || e.Offset < 0 || e.Offset > len(data) {
				t.Fatalf("Check(%q): error %#v", data, err)
			}
		}
	})
}

// FuzzFloat checks the number writer on arbitrary doubles: the text must
// pass Check, read back as the same double, and have the fewest digits that
// do (the digits strconv finds; ECMAScript's choice is checked against node
// by TestNumberNode).
func FuzzFloat(f *testing.F) {
	for _, x := range []float64{0, 1, -1, 0.1, 1e21, 1e-7, 5e-324, math.MaxFloat64, two53 + 2} {
		f.Add(math.Float64bits(x))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		x := math.Float64frombits(bits)
		got, err := Marshal(x)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			if err == nil {
				t.Fatalf("Marshal(%v) = %s", x, got)
			}
			return
		}
		if err != nil || len(got) > maxCanonNumber {
			t.Fatalf("Marshal(%v) = %s, %v", x, got, err)
		}
		if err := Check(got); err != nil {
			t.Fatalf("Check(%s): %v", got, err)
		}
		if back, err := strconv.ParseFloat(string(got), 64); err != nil || back != x {
			t.Fatalf("%s reads back as %v, want %v", got, back, x)
		}
		digits := func(s string) string { // significant digits of s
			s, _, _ = strings.Cut(strings.TrimLeft(s, "-"), "e")
			return strings.Trim(strings.ReplaceAll(s, ".", ""), "0")
		}
		if d, want := digits(string(got)), digits(strconv.FormatFloat(x, 'e', -1, 64)); d != want {
			t.Fatalf("%s has digits %s, want %s", got, d, want)
		}
	})
}

// sameValue reports whether two values from Decode are the same JSON value,
// with numbers compared as the doubles they round to.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		fx, errx := strconv.ParseFloat(string(x), 64)
		fy, erry := strconv.ParseFloat(string(y), 64)
		return errx == nil && erry == nil && fx == fy
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}
