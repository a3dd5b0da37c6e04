package jcs

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestObject holds an Object to Marshal: members added in key order give
// Marshal's bytes for the same map, and anything else is refused.
func TestObject(t *testing.T) {
	inner, err := MarshalRaw(map[string]any{"z": 1, "a": []any{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{
		"_auth": "off", "by": "rule", "deny": map[string]any{"reason": "r\n\"", "index": 2},
		"llm_calls": int64(1), "request": inner, "é": "ü", "\U0001F600": "astral", "\uFB01": "bmp",
	}
	want, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var o Object
	o.AddString("_auth", "off")
	o.AddString("by", "rule")
	o.Add("deny", m["deny"])
	o.AddInt("llm_calls", 1)
	o.Add("request", inner)
	o.AddString("é", "ü")
	o.AddString("\U0001F600", "astral") // UTF-16 order: a surrogate pair sorts before U+FB01
	o.AddString("\uFB01", "bmp")
	r, err := o.Raw()
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Bytes()) != string(want) {
		t.Fatalf("got %s\nwant %s", r.Bytes(), want)
	}
	if r.depth != 3 {
		t.Fatalf("depth %d, want 3", r.depth)
	}
	if _, err := o.Raw(); err == nil {
		t.Fatal("Raw twice: no error")
	}
	o.AddString("zzz", "x")
	if _, err := o.Raw(); err == nil {
		t.Fatal("Add after Raw: no error")
	}
	if got := string(r.Bytes()); got != string(want) {
		t.Fatalf("an Add after Raw changed its bytes: %s", got)
	}

	var empty Object
	if r, err := empty.Raw(); err != nil || string(r.Bytes()) != "{}" {
		t.Fatalf("empty: %s, %v", r.Bytes(), err)
	}

	for name, build := range map[string]func(*Object){
		"out of order":     func(o *Object) { o.AddString("b", "x"); o.AddString("a", "y") },
		"repeated":         func(o *Object) { o.AddString("a", "x"); o.AddInt("a", 1) },
		"utf-16 order":     func(o *Object) { o.AddString("\uFB01", "x"); o.AddString("\U0001F600", "y") },
		"bad key":          func(o *Object) { o.AddString("\xff", "x") },
		"bad string":       func(o *Object) { o.AddString("a", "\xff") },
		"bad value":        func(o *Object) { o.Add("a", struct{}{}) },
		"big int":          func(o *Object) { o.AddInt("a", 1<<53+1) },
		"error then valid": func(o *Object) { o.Add("a", json.Number("x")); o.AddString("b", "fine") },
	} {
		t.Run(name, func(t *testing.T) {
			var o Object
			build(&o)
			if r, err := o.Raw(); err == nil {
				t.Fatalf("no error: %s", r.Bytes())
			}
		})
	}
}

// FuzzObject: for any members, an Object fed them in key order gives
// Marshal's bytes, and fed them in another order is refused.
func FuzzObject(f *testing.F) {
	f.Add(`{"b":1,"a":"x","é":[1,{"y":null}]}`)
	f.Add(`{"\ufb01":1,"\ud83d\ude00":2}`)
	f.Fuzz(func(t *testing.T, doc string) {
		v, err := Decode([]byte(doc))
		if err != nil {
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		want, err := Marshal(m)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareKeys[string])
		var o Object
		for _, k := range keys {
			if s, ok := m[k].(string); ok {
				o.AddString(k, s)
			} else {
				o.Add(k, m[k])
			}
		}
		got, gerr := o.Raw()
		if (err == nil) != (gerr == nil) {
			t.Fatalf("Marshal %v, Object %v", err, gerr)
		}
		if err == nil && string(got.Bytes()) != string(want) {
			t.Fatalf("got %s, want %s", got.Bytes(), want)
		}
		if err == nil && len(keys) > 1 {
			var back Object
			for _, k := range slices.Backward(keys) {
				back.Add(k, m[k])
			}
			if _, err := back.Raw(); err == nil || !strings.Contains(err.Error(), "out of order") {
				t.Fatalf("members in reverse: %v", err)
			}
		}
	})
}

// TestRawIsObject: only an object is one, and asking allocates nothing.
func TestRawIsObject(t *testing.T) {
	obj, _ := MarshalRaw(map[string]any{})
	str, _ := MarshalRaw("{")
	if !obj.IsObject() || str.IsObject() || (Raw{}).IsObject() {
		t.Fatal("IsObject")
	}
	if n := testing.AllocsPerRun(100, func() { _ = (Raw{}).IsObject() }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
