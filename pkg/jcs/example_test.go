package jcs_test

import (
	"encoding/json"
	"fmt"

	"github.com/control-plane/cp/pkg/jcs"
)

func ExampleCanonicalize() {
	out, err := jcs.Canonicalize([]byte(`{"b": [1.0, 1E3, "\u0041\/"], "a": 2e-7}`))
	fmt.Println(string(out), err)
	// Output: {"a":2e-7,"b":[1,1000,"A/"]} <nil>
}

func ExampleCheck() {
	fmt.Println(jcs.Check([]byte(`{"a":1,"b":[true]}`)))
	fmt.Println(jcs.Check([]byte(`{"b":1,"a":2}`)))
	fmt.Println(jcs.Check([]byte(`{"a": 1}`)))
	fmt.Println(jcs.Check([]byte(`[1.50]`)))
	// Output:
	// <nil>
	// jcs: offset 7: keys not sorted
	// jcs: offset 5: whitespace
	// jcs: offset 1: number not in canonical form (want 1.5)
}

func ExampleMarshal() {
	out, err := jcs.Marshal(map[string]any{
		"event_type": "TOOL_CALL",
		"metadata":   map[string]any{"n": 3, "ratio": 0.25, "args": []string{"ls", "-la"}},
		"seq":        json.Number("12"),
	})
	fmt.Println(string(out), err)
	_, err = jcs.Marshal(map[string]any{"id": json.Number("12345678901234567890")})
	fmt.Println(err)
	// Output:
	// {"event_type":"TOOL_CALL","metadata":{"args":["ls","-la"],"n":3,"ratio":0.25},"seq":12} <nil>
	// jcs: integer above 2^53 cannot be represented exactly: 12345678901234567890
}
