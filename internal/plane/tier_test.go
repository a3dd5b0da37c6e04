package plane

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// tierSeeds are tier.json files: the shapes planes write, and the odd
// ones encoding/json reads differently from a strict decoder.
var tierSeeds = []string{
	`{"tier":"HO3","plane_id":"ho3","plane_name":"p-1","ledger_path":"ledger/governance.jsonl","parent_ledger":null,"created_at":"2026-12-06T00:00:00Z"}`,
	`{"tier":"HO2","plane_id":"ho2","ledger_path":"ledger/ho2.jsonl","parent_ledger":"../../ledger/governance.jsonl","created_at":"x"}`,
	`{"tier":"HO3","plane_id":"ho3","ledger_path":"ledger/governance.jsonl","parent_ledger":null,"created_at":"x","ledger_store":{"kind":"postgres","dsn_env":"CONTROL_PLANE_LEDGER_DSN","name":"governance"}}`,
	`{"tier":"HO3","ledger_path":"ledger/g.jsonl","ledger_store":{"kind":"file"}}`,
	`{"tier":"HO3","ledger_path":"ledger/g.jsonl","ledger_store":{}}`,
	`{"tier":"HO3","ledger_path":"ledger/g.jsonl","ledger_store":null}`,
	`{"tier":"HO3","ledger_path":"ledger/g.jsonl","plane_name":null}`,
	`{"tier":"HO3","ledger_path":"ledger/g.jsonl","plane_name":""}`,
	`{"Tier":"HO3","ledger_path":"ledger/g.jsonl"}`,
	`{"tier":"HO3","TIER":"HO1","ledger_path":"ledger/g.jsonl"}`,
	`{"tier":"HO1","tier":"HO3","ledger_path":"ledger/g.jsonl"}`,
	`{"tier":"HO3","ledger_path":"ledger/g.jsonl","extra":1}`,
	`{"tier":"HO3","ledger_path":"ledger/g.jsonl","ledger_store":{"kind":"file","x":1}}`,
	`{"tier":"HO3","ledger_path":"ledger/g.jsonl"} {}`,
	`{"tier":"HO3","ledger_path":"ledger/g.jsonl"}` + "\n",
	`{"tier":"H\u004f3","ledger_path":"ledger/g.jsonl"}`,
	"{\"tier\":\"HO3\xff\",\"ledger_path\":\"ledger/g.jsonl\"}",
	`{"tier":3,"ledger_path":"ledger/g.jsonl"}`,
	`{"tier":"HO3","ledger_path":"../g.jsonl"}`,
	`{"tier":"HO9","ledger_path":"ledger/g.jsonl"}`,
	`{}`, `[]`, `null`, ``, `{"tier":"HO3","parent_ledger":1}`,
}

// decodeTierReference is how ReadTier decoded every tier.json before its
// fast path, and still decodes what the fast path leaves to it.
func decodeTierReference(b []byte) (Tier, map[string]bool, error) {
	var t Tier
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, nil, err
	}
	if dec.More() {
		return t, nil, os.ErrInvalid
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return t, nil, err
	}
	present := map[string]bool{}
	for k := range raw {
		present[k] = true
	}
	return t, present, nil
}

// checkTierFast: whatever the fast path accepts, encoding/json accepts too
// and decodes to the same Tier with the same members present.
func checkTierFast(t *testing.T, b []byte) {
	got, raw, ok := decodeTierFast(b)
	if !ok {
		return
	}
	want, wantRaw, err := decodeTierReference(b)
	require.NoError(t, err, "%q: the fast path accepted what encoding/json refuses", b)
	require.Equal(t, want, got, "%q", b)
	require.Equal(t, wantRaw, raw, "%q", b)
}

func TestDecodeTierFast(t *testing.T) {
	accepted := 0
	for _, s := range tierSeeds {
		checkTierFast(t, []byte(s))
		if _, _, ok := decodeTierFast([]byte(s)); ok {
			accepted++
		}
	}
	require.GreaterOrEqual(t, accepted, 8, "the shapes planes write take the fast path")
	// What the plane writes takes it: bootstrap's tier.json.
	_, _, ok := decodeTierFast([]byte(tierSeeds[0]))
	require.True(t, ok)
}

// TestReadTierSameAnswers: ReadTier answers each seed as it did with
// encoding/json alone: the same Tier, or an error (TIER_INVALID) where
// that refused.
func TestReadTierSameAnswers(t *testing.T) {
	for _, s := range tierSeeds {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tier.json"), []byte(s), 0o644))
		got, err := ReadTier(dir)
		want, _, rerr := decodeTierReference([]byte(s))
		if rerr != nil {
			require.Error(t, err, "%q", s)
			continue
		}
		if err == nil {
			require.Equal(t, want, got, "%q", s)
		}
	}
}

func FuzzDecodeTierFast(f *testing.F) {
	for _, s := range tierSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkTierFast(t, b) })
}
