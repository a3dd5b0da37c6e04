package workorder

import (
	"encoding/json"
	"testing"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/stretchr/testify/require"
)

// oldHeader is the path HeaderOf replaced: the members' JSON decoded by
// DecodeHeader.
func oldHeader(m map[string]any) (*Header, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return DecodeHeader(b)
}

var headerSeeds = []string{
	`{"turn_number":1,"work_order_id":"WO-20261206-001","declared_inputs":[]}`,
	`{"turn_number":2,"work_order_id":"WO-20261206-001","declared_inputs":[{"path":"notes/a.txt","sha256":"sha256:5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c9070"},{"ledger":"p/ho2/workorder","seq":0,"entry_hash":"c99283360f3c5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c47d6"},{"artifact":"PKG-TOOLS-001","version":"0.1.0"}],"prompts_used":["PRM-A-001"],"outputs":[{"text_sha256":"sha256:0f3c5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c"},{"path":"out/<&>\u2028","sha256":"sha256:0f3c5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c5c175fdd0f3c"}]}`,
	`{"turn_number":9007199254740993,"work_order_id":"WO-20261206-001","declared_inputs":[]}`,
	`{"turn_number":1.0,"work_order_id":"WO-20261206-001","declared_inputs":[]}`,
	`{"turn_number":1,"work_order_id":"WO-20261206-001","declared_inputs":[],"prompts_used":[],"outputs":[]}`,
	`{"turn_number":1,"work_order_id":"WO-20261206-001","declared_inputs":[{"path":"a","sha256":"x","extra":1}]}`,
	`{"turn_number":1,"work_order_id":"WO-20261206-001","declared_inputs":[],"other":true}`,
}

// FuzzHeaderOf holds HeaderOf to the JSON round trip it replaced, and
// Hash and TURN's metadata to what encoding/json made of the header, for
// every header turn_header.schema.json accepts; on anything else HeaderOf
// refuses or agrees.
func FuzzHeaderOf(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s))
	}
	s, err := headerSchema()
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := jcs.Decode(b)
		if err != nil {
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		got, gerr := HeaderOf(m)
		want, werr := oldHeader(m)
		valid := len(s.Validate(v)) == 0
		if valid && (gerr != nil) != (werr != nil) {
			t.Fatalf("%s: HeaderOf error %v, DecodeHeader error %v", b, gerr, werr)
		}
		if gerr != nil {
			return
		}
		if werr != nil {
			if valid {
				t.Fatalf("%s: HeaderOf accepts what DecodeHeader refuses (%v)", b, werr)
			}
			return
		}
		require.Equal(t, want, got, "%s", b)
		gh, gerr := got.Hash()
		wh, werr := want.hashJSON()
		require.Equal(t, werr == nil, gerr == nil, "%s: %v / %v", b, gerr, werr)
		require.Equal(t, wh, gh, "%s", b)
		if gerr != nil {
			return
		}
		inputs := make([]any, len(want.DeclaredInputs))
		for i, in := range want.DeclaredInputs {
			inputs[i] = in
		}
		outputs := make([]any, len(want.Outputs))
		for i, o := range want.Outputs {
			outputs[i] = o
		}
		wm, err := jcs.Marshal(map[string]any{"declared_inputs": jsonValue(inputs), "outputs": jsonValue(outputs)})
		require.NoError(t, err)
		gm, err := jcs.Marshal(turnMetadata(got))
		require.NoError(t, err)
		require.Equal(t, string(wm), string(gm), "%s", b)
	})
}

func TestHeaderOfRefuses(t *testing.T) {
	for _, s := range headerSeeds[3:] {
		if s == headerSeeds[4] {
			continue
		}
		v, err := jcs.Decode([]byte(s))
		require.NoError(t, err)
		_, err = HeaderOf(v.(map[string]any))
		require.ErrorContains(t, err, "turn header", s)
		var e *Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, CodeInvalid, e.code)
	}
}
