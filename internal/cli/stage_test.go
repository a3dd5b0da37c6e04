package cli

import (
	"testing"
)

var benchLine = []byte(`{"event_type":"TOOL_CALL","submission_id":"WO-20261124-000001","decision":"ALLOW","reason":"tool call within work-order scope","prompts_used":["PRM-ADMIN-EXPLAIN-001"],"metadata":{"tool":"bash","args":["ls","-la"],"n":3,"ratio":0.25}}`)

func BenchmarkStageDecode(b *testing.B) {
	for range b.N {
		if _, err := parseInput(benchLine); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStageValidate(b *testing.B) {
	s, err := compileSchema("cp-ledger.append.request.json")
	if err != nil {
		b.Fatal(err)
	}
	in, _ := parseInput(benchLine)
	verb := &Verb{Name: "append"}
	b.ResetTimer()
	for range b.N {
		if err := validate(s, verb, in.req); err != nil {
			b.Fatal(err)
		}
	}
}
