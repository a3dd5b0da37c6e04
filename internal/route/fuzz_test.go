package route

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/stretchr/testify/require"
)

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	v, err := jcs.Decode([]byte(s))
	require.NoError(t, err)
	return v.(map[string]any)
}

// FuzzCompile feeds the policy loader arbitrary bytes: it never panics,
// refuses with a coded error, and a policy it accepts decides a request
// (or fails with a coded error) within the deadline, and again the same
// way.
func FuzzCompile(f *testing.F) {
	f.Add([]byte(fullPolicy))
	f.Add([]byte(`{"default_route":{"handler":"default","mode":"tools_first"}}`))
	f.Add([]byte(`{"routes":[{"when":"def f: f; f","handler":"support","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`))
	f.Add([]byte(`{"routes":[{"when":"now > 0","handler":"support","mode":"tools_first"}],"default_route":{"handler":"default","mode":"tools_first"}}`))
	f.Add([]byte(`{"deny":[{"when":".a | test(\"x\")","reason":"r"}],"default_route":{"handler":"ghost","mode":"llm_assisted"}}`))
	f.Add([]byte(`{"classifier":{"prompt_pack_id":"PRM-R","threshold":1e-1},"default_route":{"handler":"default","mode":"tools_first"}}`))
	defer func(d time.Duration) { EvalTimeout = d }(EvalTimeout)
	EvalTimeout = 500 * time.Millisecond
	req := map[string]any{"intent": "deploy", "user": "x", "tags": []any{"billing"}, "n": json.Number("3")}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Compile(b, testHandlers)
		if err != nil {
			var c interface{ Code() string }
			require.ErrorAs(t, err, &c, "an uncoded refusal: %v", err)
			return
		}
		d1, err1 := p.Decide(context.Background(), req, 0, &fakeClassifier{handler: "support", conf: "0.9"})
		d2, err2 := p.Decide(context.Background(), req, 0, &fakeClassifier{handler: "support", conf: "0.9"})
		if err1 != nil {
			var c interface{ Code() string }
			require.ErrorAs(t, err1, &c)
			require.Error(t, err2)
			return
		}
		require.NoError(t, err2)
		require.Equal(t, d1, d2, "a decision is a function of the request and the policy")
	})
}
